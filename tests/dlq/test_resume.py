"""A filtered replay or purge stopped part way (a real SIGKILL, or Ctrl-C) and run again
finishes the job: no letter is sent twice but the one caught between send and mark, none is
missed, none outside the filter or dead since the first run began is touched."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intentq.dlq import DeadLetter, LetterFilter
from intentq.dlq.purge import purge
from intentq.dlq.replay import as_of, replay
from intentq.dlq.sql import SqlDeadLetterStore
from tests.dlq.many import make_letters, opened, put_all, sql_url

ROOT = Path(__file__).resolve().parents[2]
LETTERS = 240


@dataclass
class Filled:
    dlq: SqlDeadLetterStore
    url: str
    wanted: list[str]  # tool "a": what the replay or purge is for
    others: list[str]  # tool "b": never touched
    when: datetime  # the first run's start: every letter above died before it


@pytest.fixture(params=["sqlite", "postgresql"])
def filled(request: pytest.FixtureRequest, unique: str, tmp_path: Path) -> Iterator[Filled]:
    pg = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    url = sql_url(request.param, tmp_path, pg)
    when = datetime.now(UTC)
    letters = [
        replace(x, tool="a" if i % 3 else "b")
        for i, x in enumerate(make_letters(LETTERS, seed=4, now=when - timedelta(seconds=1)))
    ]
    for dlq in opened(url, f"dr_{unique}"):
        put_all(dlq, letters)
        wanted = [x.id for x in letters if x.tool == "a"]
        others = [x.id for x in letters if x.tool == "b"]
        yield Filled(dlq, url, wanted, others, when)


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.dlq.resume_run", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def ids_of(dlq: SqlDeadLetterStore, tool: str) -> set[str]:
    return {x.id for x in dlq.iter(LetterFilter(tool=tool))}


def died_since(filled: Filled, n: int) -> list[str]:
    """Letters of tool "a" dead after the first run began (a replayed message failing
    again): a replay continued with the same as-of time leaves them alone."""
    later = make_letters(n, seed=8, now=filled.when + timedelta(minutes=1))
    fresh = [replace(x, tool="a", dead_at=filled.when + timedelta(seconds=i + 1))
             for i, x in enumerate(later)]  # fmt: skip
    put_all(filled.dlq, fresh)
    return [x.id for x in fresh]


@pytest.mark.parametrize("keep", [False, True], ids=["remove", "keep"])
def test_a_replay_killed_mid_run_and_run_again_sends_each_letter_once(
    filled: Filled, tmp_path: Path, keep: bool
) -> None:
    outbox = tmp_path / "outbox"
    table = filled.dlq.table.name
    flags = ["keep"] if keep else []

    # Given a replay SIGKILLed right after its 60th send, in its third page
    first = run("replay", filled.url, table, "a", filled.when.isoformat(), outbox, 60, *flags)
    assert first.returncode == -9, first.stderr
    assert len(outbox.read_bytes().splitlines()) == 60
    # and letters that died since it began
    later = died_since(filled, 5)

    # When it is run again with the same as-of time
    second = run("replay", filled.url, table, "a", filled.when.isoformat(), outbox, 0, *flags)
    assert second.returncode == 0, second.stderr

    # Then every letter was sent, once, but the one killed between its send and its mark
    sent = Counter(outbox.read_text().split())
    assert set(sent) == set(filled.wanted)
    assert sorted(sent.values()) == [1] * (len(filled.wanted) - 1) + [2]
    # and nothing outside the filter, nor anything dead since, was touched
    assert ids_of(filled.dlq, "b") == set(filled.others)
    if keep:
        assert ids_of(filled.dlq, "a") == set(filled.wanted) | set(later)
        counts = {x.id: x.replay_count for x in filled.dlq.iter(LetterFilter(tool="a"))}
        assert all(counts[i] == 1 for i in filled.wanted)
        assert all(counts[i] == 0 for i in later)
    else:
        assert ids_of(filled.dlq, "a") == set(later)


def test_a_replay_interrupted_by_ctrl_c_continues_without_a_repeat(filled: Filled) -> None:
    sent: list[str] = []

    def send(letter: DeadLetter, _to: str | None) -> None:
        if len(sent) == 50 and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt  # before anything went out
        sent.append(letter.id)

    interrupted: list[bool] = []
    f = as_of(LetterFilter(tool="a"), filled.when)
    with pytest.raises(KeyboardInterrupt):
        replay(filled.dlq, None, filled.dlq.iter(f, page_size=20), send)
    assert len(sent) == 50
    died_since(filled, 3)

    summary = replay(filled.dlq, None, filled.dlq.iter(f, page_size=20), send)

    assert summary.replayed == len(filled.wanted) - 50
    assert sorted(sent) == sorted(filled.wanted)  # each once
    assert ids_of(filled.dlq, "b") == set(filled.others)


def test_a_purge_killed_mid_run_and_run_again_removes_exactly_the_filter(filled: Filled) -> None:
    table = filled.dlq.table.name

    first = run("purge", filled.url, table, "a", 25, 3)

    assert first.returncode == -9, first.stderr
    assert first.stdout.split() == ["25", "50", "75"]  # whole batches, each reported once done
    assert ids_of(filled.dlq, "a") < set(filled.wanted)
    assert len(ids_of(filled.dlq, "a")) == len(filled.wanted) - 75

    second = run("purge", filled.url, table, "a", 25, 0)

    assert second.returncode == 0, second.stderr
    assert int(second.stdout.split()[-1]) == len(filled.wanted) - 75
    assert ids_of(filled.dlq, "a") == set()
    assert ids_of(filled.dlq, "b") == set(filled.others)


def test_a_purge_interrupted_by_ctrl_c_keeps_what_it_reported(filled: Filled) -> None:
    reported: list[int] = []

    def progress(deleted: int) -> None:
        reported.append(deleted)
        if len(reported) == 2:
            raise KeyboardInterrupt

    f = LetterFilter(tool="a")
    with pytest.raises(KeyboardInterrupt):
        purge(filled.dlq, all_letters=True, filter=f, batch_size=30, on_progress=progress)
    assert filled.dlq.count(f) == len(filled.wanted) - 60

    assert purge(filled.dlq, all_letters=True, filter=f, batch_size=30) == len(filled.wanted) - 60
    assert filled.dlq.count(f) == 0
    assert ids_of(filled.dlq, "b") == set(filled.others)
