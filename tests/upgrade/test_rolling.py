"""A rolling upgrade from intentq 0.1, on PostgreSQL and SQLite, with 0.1's real code.

intentq 0.1 (commit 0577eb5, run from this repository's history by this environment's
Python) makes its tables and works; ``intentq init`` upgrades them while a 0.1 process keeps
writing; then 0.1 and today's workers take the same messages side by side. Every intent runs
once, every record and letter reads with today's code, and replay takes letters either wrote.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from intentq.dedup.base import State
from intentq.dedup.sql import SqlDedupStore
from intentq.dlq import Reason
from intentq.dlq.replay import Action, replay
from intentq.dlq.sql import SqlDeadLetterStore
from intentq.executor import Executor
from intentq.intent import Intent
from intentq.migrations import DEDUP, DLQ, Family
from intentq.outcome import Ack, Delivery
from tests.upgrade.conftest import ROOT
from tests.upgrade.worker import registry

WORKER = Path(__file__).resolve().parent / "worker.py"
LOAD_BEFORE, LOAD_AFTER = 20, 20  # writes the 0.1 writer makes before init, and after it
SLOWEST_WRITE = 5.0  # seconds: the upgrade may hold a 0.1 write up, never for long


def adopted(family: Family) -> str:
    """What ``intentq init`` says of a 0.1 table it adopts and brings to ``family.needs``."""
    if family.needs == 1:
        return "0.1 table adopted as version 1"
    return f"0.1 table adopted as version 1, upgraded to {family.needs}"


def envelope(tool: str, key: str, slot: str = "15:00", version: int = 1) -> str:
    body = Intent.create(tool, {"slot": slot}, key=key).to_json()
    if version != 1:
        data = json.loads(body)
        data["v"] = version
        body = json.dumps(data).encode()
    return body.decode("latin-1")


class Fleet:
    """Processes of either intentq on one store and one DLQ."""

    def __init__(self, db_url: str, intentq_0_1: Path, workdir: Path) -> None:
        self.db_url = db_url
        self.paths = {"old": str(intentq_0_1), "new": str(ROOT)}
        self.workdir = workdir
        self.effects = workdir / "effects.txt"
        self.closed = workdir / "closed"  # while it exists, `flaky` fails: dead letters
        self.count = 0

    def env(self, role: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
        return {**clean, "PYTHONPATH": self.paths[role],
                "INTENTQ_DEDUP_URL": self.db_url, "INTENTQ_DLQ_URL": self.db_url}  # fmt: skip

    def job(self, role: str, mode: str, **extra: Any) -> dict[str, Any]:
        self.count += 1
        return {
            "role": role, "mode": mode, "store": self.db_url, "dlq": self.db_url,
            "effects": str(self.effects), "closed": str(self.closed),
            "report": str(self.workdir / f"report-{self.count}.json"), **extra,
        }  # fmt: skip

    def spawn(self, role: str, mode: str, **extra: Any) -> tuple[subprocess.Popen[bytes], Path]:
        job = self.job(role, mode, **extra)
        path = self.workdir / f"job-{self.count}.json"
        path.write_text(json.dumps(job))
        with (self.workdir / f"log-{self.count}.txt").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(WORKER), str(path)], cwd=self.workdir, env=self.env(role),
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return proc, Path(job["report"])

    def wait(self, proc: subprocess.Popen[bytes], report: Path, role: str) -> dict[str, Any]:
        code = proc.wait(120)
        log = (self.workdir / f"log-{report.stem.split('-')[1]}.txt").read_text(errors="replace")
        assert code == 0, log
        result: dict[str, Any] = json.loads(report.read_text())
        assert result["intentq"].startswith(self.paths[role]), result["intentq"]
        return result

    def run(self, role: str, mode: str, **extra: Any) -> dict[str, Any]:
        return self.wait(*self.spawn(role, mode, **extra), role)

    def intentq(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Today's command line, as an operator runs it."""
        return subprocess.run(
            [sys.executable, "-m", "intentq.cli", *args], cwd=self.workdir,
            env=self.env("new"), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def ran(self) -> Counter[str]:
        """How many times each ``tool key`` ran its side effect."""
        lines = self.effects.read_text().splitlines() if self.effects.exists() else []
        return Counter(" ".join(line.split()[:2]) for line in lines)


def wait_for(probe: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def progress(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


@pytest.mark.timeout(300)
def test_a_rolling_upgrade_from_0_1(db_url: str, intentq_0_1: Path, tmp_path: Path) -> None:
    fleet = Fleet(db_url, intentq_0_1, tmp_path)

    # Given intentq 0.1's tables, and its work: results, dead letters, a v2 envelope
    fleet.closed.touch()
    before = [envelope("book", f"a{i}") for i in range(6)]
    before += [envelope("flaky", f"old-{i}") for i in range(2)] + [
        envelope("book", "v2", version=2)
    ]
    fleet.run("old", "work", bodies=before, create=True)

    # When intentq init upgrades the tables while a 0.1 process keeps writing to them
    stop, written = tmp_path / "stop", tmp_path / "progress"
    writer = fleet.spawn("old", "write", stop=str(stop), progress=str(written))
    wait_for(lambda: progress(written) >= LOAD_BEFORE, "the 0.1 writer to get going")
    init = fleet.intentq("init", "--json")
    assert init.returncode == 0, init.stderr
    details = [step["detail"] for step in json.loads(init.stdout)["steps"][:2]]
    assert details == [adopted(DEDUP), adopted(DLQ)]
    reached = progress(written)
    wait_for(lambda: progress(written) >= reached + LOAD_AFTER, "0.1 writes after the upgrade")
    stop.touch()
    load = fleet.wait(*writer, "old")

    # Then the 0.1 writer never failed, and was never held up long
    assert load["errors"] == []
    assert load["slowest"] < SLOWEST_WRITE

    # When 0.1 and today's workers take the same messages, side by side
    shared = [envelope("book", f"c{i}") for i in range(16)] + [
        envelope("flaky", f"mix-{i}") for i in range(2)
    ]
    old_bodies = [*shared, envelope("flaky", "old-2")]
    new_bodies = [*shared, envelope("flaky", "new-0"), envelope("book", "v2-new", version=2)]
    random.Random(1).shuffle(old_bodies)
    random.Random(2).shuffle(new_bodies)
    old = fleet.spawn("old", "work", bodies=old_bodies)
    new = fleet.spawn("new", "work", bodies=new_bodies)
    old_report, new_report = fleet.wait(*old, "old"), fleet.wait(*new, "new")
    assert old_report["errors"] == [] and new_report["errors"] == []

    # Then every intent ran once, and nothing that failed ran
    ran = fleet.ran()
    books = [f"book a{i}" for i in range(6)] + [f"book c{i}" for i in range(16)]
    assert {key: ran[key] for key in books} == dict.fromkeys(books, 1)
    assert not [key for key in ran if key.startswith("flaky")]

    with (
        closing(SqlDedupStore.from_url(db_url)) as store,
        closing(SqlDeadLetterStore.from_url(db_url)) as dlq,
    ):
        store.check_schema()
        dlq.check_schema()
        # Every record reads with today's code, whichever intentq wrote it
        formats = _formats(store)
        assert formats[None] > 0 and formats[1] > 0, formats  # 0.1's rows and today's
        for key in [k.split()[1] for k in books] + load["written"]:
            record = store.get("book", key)
            assert record is not None and record.state is State.COMPLETED, key
        for key in ("old-0", "old-1", "old-2", "mix-0", "mix-1", "new-0"):
            record = store.get("flaky", key)
            assert record is not None and record.state is State.FAILED, key

        # And every letter reads, 0.1's and today's
        letters = dlq.list(limit=1000).letters
        by_key = Counter(letter.key for letter in letters)
        flaky_keys = {"old-0", "old-1", "old-2", "mix-0", "mix-1", "new-0"}
        assert {k for k in by_key if k in flaky_keys} == flaky_keys
        unsupported = [
            letter for letter in letters
            if letter.error_type == "InvalidIntent.unsupported_version"
        ]  # fmt: skip
        assert len(unsupported) == 2  # a v2 envelope: 0.1 and today both dead-letter it
        assert {letter.reason for letter in unsupported} == {Reason.POISON}

        # And replay runs the letters of either once more, now that the slot is open
        fleet.closed.unlink()
        executor = Executor(registry(fleet.job("replay", "work")), store)

        def send(letter: Any, _to: str | None) -> None:
            outcome = executor.process(letter.body, Delivery("memory", "replay", letter.id))
            assert isinstance(outcome, Ack), outcome

        summary = replay(dlq, store, letters, send)
        actions = Counter(r.action for r in summary.results)
        assert actions[Action.RESET_REPLAYED] == len([x for x in letters if x.tool == "flaky"])
        assert actions[Action.REFUSED] == 2  # the v2 envelopes: nothing to send them as
        ran = fleet.ran()
        assert {key: ran[f"flaky {key}"] for key in flaky_keys} == dict.fromkeys(flaky_keys, 1)


def _formats(store: SqlDedupStore) -> Counter[int | None]:
    column = store.table.c.record_format
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(column, sa.func.count()).group_by(column))
        return Counter({row[0]: int(row[1]) for row in rows})
