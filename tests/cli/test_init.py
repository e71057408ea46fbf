"""``intentq init``: tables, and for SQS the queue with a redrive policy to its DLQ; rerunnable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from intentq.cli.exits import ExitCode
from intentq.ops.init import DLQ_RETENTION_SECONDS, REDRIVE_MARGIN
from tests.cli.conftest import Env
from tests.support.services import SqsServer


def attributes(sqs: Any, name: str) -> dict[str, str]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


def test_sqs_queue_with_redrive_policy(env: Env, sqs: Any, unique: str) -> None:
    fresh = env.with_(
        INTENTQ_SQS_QUEUE=f"init-{unique}", INTENTQ_SQS_DLQ=f"init-{unique}-dlq",
        INTENTQ_MAX_RECEIVES="7",
    )  # fmt: skip
    for _ in range(2):  # the second run finds everything in place and changes nothing
        ran = fresh.run("init", "--json")
        assert ran.code == 0, ran
        steps = json.loads(ran.stdout)["steps"]
        assert [s["what"] for s in steps] == [
            "dedup store", "dead-letter store", "SQS dead-letter queue", "SQS queue",
        ]  # fmt: skip
        source, target = attributes(sqs, f"init-{unique}"), attributes(sqs, f"init-{unique}-dlq")
        redrive = json.loads(source["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == target["QueueArn"]
        assert int(redrive["maxReceiveCount"]) == 7 + REDRIVE_MARGIN
        assert int(target["MessageRetentionPeriod"]) == DLQ_RETENTION_SECONDS
    for name in (f"init-{unique}", f"init-{unique}-dlq"):
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])


def test_table_for_people_hides_passwords(env: Env) -> None:
    ran = env.with_(
        INTENTQ_DLQ_URL=env.vars["INTENTQ_DLQ_URL"].replace("postgres@", "postgres:s3cret@")
    ).run("init")
    assert ran.code == 0, ran
    assert "SQS queue" in ran.stdout and "redrive to" in ran.stdout
    assert "s3cret" not in ran.stdout


def test_fifo_queue_needs_a_fifo_dlq(env: Env, unique: str) -> None:
    ran = env.with_(INTENTQ_SQS_QUEUE=f"f-{unique}.fifo", INTENTQ_SQS_DLQ=f"f-{unique}").run("init")
    assert ran.code == ExitCode.CONFIG
    assert "must both be FIFO" in ran.one_error_line()


def test_embedded_default_creates_the_sqlite_tables(tmp_path: Path) -> None:
    embedded = Env({}, tmp_path)  # nothing set: SQLite files in the working directory
    assert embedded.run("dlq", "list").code == ExitCode.CONFIG  # no database yet
    assert not (tmp_path / "intentq.db").exists()
    ran = embedded.run("init")
    assert ran.code == 0, ran
    assert "Celery broker" in ran.stdout
    assert (tmp_path / "intentq.db").exists()
    assert embedded.run("dlq", "list").code == 0
    assert embedded.run("result", "book_slot", "k").code == ExitCode.NOT_FOUND
    assert embedded.run("init").code == 0


def test_unreachable_sqs_endpoint(env: Env, sqs_server: SqsServer) -> None:
    from tests.support.net import free_port

    ran = env.with_(INTENTQ_SQS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}").run("init")
    assert ran.code == ExitCode.UNAVAILABLE
    assert "Could not connect" in ran.one_error_line()
