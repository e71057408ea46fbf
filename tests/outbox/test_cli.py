"""``intentq init`` for the outbox table, ``intentq relay`` and ``intentq outbox``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from intentq.cli.exits import ExitCode
from intentq.outbox import Outbox
from tests.cli.conftest import Env
from tests.support.net import free_port, wait_until
from tests.support.services import SqsServer


def outbox_env(tmp_path: Path, sqs_server: SqsServer, **more: str) -> Env:
    return Env(
        {
            "INTENTQ_DEDUP_URL": f"sqlite:///{tmp_path / 'store.db'}",
            "INTENTQ_DLQ_URL": f"sqlite:///{tmp_path / 'store.db'}",
            "INTENTQ_OUTBOX_URL": f"sqlite:///{tmp_path / 'app.db'}",
            "INTENTQ_TRANSPORT": "sqs",
            "INTENTQ_SQS_QUEUE": sqs_server.new_queue(),
            "INTENTQ_SQS_DLQ": sqs_server.new_queue(),
            "INTENTQ_SQS_ENDPOINT_URL": sqs_server.endpoint_url,
            "INTENTQ_TRACING": "false",
            **more,
        },
        tmp_path,
    )


def add(env: Env, count: int, queue: str | None = None) -> None:
    settings = env.settings()
    engine = sa.create_engine(str(settings.outbox_url))
    with engine.begin() as conn:
        Outbox(settings).add_many(
            conn, [("book_slot", {"n": i}) for i in range(count)], queue=queue
        )
    engine.dispose()


def test_init_creates_the_outbox_table_and_check_covers_it(
    tmp_path: Path, sqs_server: SqsServer
) -> None:
    env = outbox_env(tmp_path, sqs_server)
    before = env.run("init", "--check", "--json")
    assert before.code == ExitCode.SCHEMA
    schemas = {s["what"]: s for s in json.loads(before.stdout)["schemas"]}
    assert schemas["outbox table"]["state"] == "absent"
    assert not (tmp_path / "app.db").exists()  # a check creates nothing
    ran = env.run("init", "--json")
    assert ran.code == 0, ran
    steps = {s["what"]: s for s in json.loads(ran.stdout)["steps"]}
    assert steps["outbox table"]["detail"] == "created at version 1"
    after = env.run("init", "--check", "--json")
    assert after.code == 0, after
    schemas = {s["what"]: s for s in json.loads(after.stdout)["schemas"]}
    assert schemas["outbox table"]["state"] == "current"
    assert "outbox table" in env.run("init", "--sql").stdout


def test_operators_see_count_retry_and_purge_rows(tmp_path: Path, sqs_server: SqsServer) -> None:
    env = outbox_env(tmp_path, sqs_server)
    assert env.run("init").code == 0
    add(env, 3)
    add(env, 1, queue="no-such-queue")
    once = env.run("relay", "--once", "--json")
    assert once.code == 0, once
    assert json.loads(once.stdout)["sent"] == 3 and json.loads(once.stdout)["failed"] == 1
    stats = json.loads(env.run("outbox", "stats", "--json").stdout)
    assert (stats["sent"], stats["failed"], stats["pending"]) == (3, 1, 0)
    assert "cannot be sent" in env.run("outbox", "stats").stdout
    failed = json.loads(env.run("outbox", "list", "--state", "failed", "--json").stdout)["rows"]
    assert len(failed) == 1 and "unknown queue" in failed[0]["error"]
    row_id = str(failed[0]["id"])
    refused = env.run("outbox", "retry", row_id)  # no terminal to ask on, no --yes
    assert refused.code == ExitCode.USAGE and "--yes" in refused.one_error_line()
    assert json.loads(env.run("outbox", "retry", row_id, "--yes", "--json").stdout) == {
        "retried": 1
    }
    purged = env.run("outbox", "purge", "--older-than", "0s", "--json")
    assert json.loads(purged.stdout) == {"purged": 3}
    gone = env.run("outbox", "purge", "--failed", "--yes", "--json")  # it is pending again
    assert json.loads(gone.stdout) == {"purged": 0}
    listed = env.run("outbox", "list")
    assert listed.code == 0 and "no-such-queue" in listed.stdout


def test_the_relay_needs_its_database(tmp_path: Path, sqs_server: SqsServer) -> None:
    unset = outbox_env(tmp_path, sqs_server)
    del unset.vars["INTENTQ_OUTBOX_URL"]
    ran = unset.run("relay", "--once")
    assert ran.code == ExitCode.CONFIG and "INTENTQ_OUTBOX_URL" in ran.one_error_line()
    missing = outbox_env(tmp_path, sqs_server).run("outbox", "stats")
    assert missing.code == ExitCode.CONFIG and "intentq init" in missing.one_error_line()
    down = outbox_env(
        tmp_path, sqs_server,
        INTENTQ_OUTBOX_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/app",
    ).run("relay", "--once")  # fmt: skip
    assert down.code == ExitCode.UNAVAILABLE
    assert "database unavailable" in down.one_error_line()


def test_a_relay_process_sends_then_stops_on_sigterm(tmp_path: Path, sqs_server: SqsServer) -> None:
    env = outbox_env(tmp_path, sqs_server, INTENTQ_OUTBOX_POLL_INTERVAL="0.2")
    assert env.run("init").code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "intentq.cli", "relay", "--json"], cwd=tmp_path,
        env=env.process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        add(env, 4)

        def sent() -> bool:
            stats: dict[str, Any] = json.loads(env.run("outbox", "stats", "--json").stdout)
            return bool(stats["sent"] == 4)

        wait_until(sent, timeout=30, what="the relay to send 4 rows")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out)["sent"] == 4
    assert "stopping" in err
    stats = json.loads(env.run("outbox", "stats", "--json").stdout)
    assert stats["relay_owner"] is None  # it let go of the table's lease
