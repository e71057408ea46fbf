"""``intentq init``: tables, and for SQS the queue with a redrive policy to its DLQ; rerunnable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from intentq.cli.exits import ExitCode
from intentq.migrations import DEDUP, DLQ
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


# -- schema versions -----------------------------------------------------------------------


def test_check_reports_what_init_would_do_and_creates_nothing(tmp_path: Path) -> None:
    embedded = Env({}, tmp_path)  # SQLite files in the working directory, not made yet

    ran = embedded.run("init", "--check")
    assert ran.code == ExitCode.SCHEMA
    assert "no versioned schema" in ran.one_error_line()
    assert "absent" in ran.stdout and "record_format" in ran.stdout
    assert not (tmp_path / "intentq.db").exists()

    assert embedded.run("init").code == 0
    ran = embedded.run("init", "--check", "--json")
    assert ran.code == 0, ran
    schemas = json.loads(ran.stdout)["schemas"]
    assert [(s["what"], s["found"], s["state"], s["pending"]) for s in schemas] == [
        ("dedup store", str(DEDUP.needs), "current", []),
        ("dead-letter store", str(DLQ.needs), "current", []),
    ]


def test_init_adopts_a_0_1_database_and_upgrades_it(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from tests.upgrade.legacy import load_0_1
    from tests.upgrade.test_rolling import adopted

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'intentq.db'}")
    load_0_1(engine, dedup="intentq_dedup", dlq="intentq_dead_letters")
    engine.dispose()
    embedded = Env({}, tmp_path)

    ran = embedded.run("init", "--check", "--json")
    assert ran.code == ExitCode.SCHEMA
    dedup = json.loads(ran.stdout)["schemas"][0]
    assert (dedup["found"], dedup["state"]) == ("0.1 (no version table)", "behind")
    assert [p["version"] for p in dedup["pending"]] == [1, 2]

    ddl = embedded.run("init", "--sql")
    assert ddl.code == 0
    assert "ALTER TABLE intentq_dedup ADD COLUMN record_format SMALLINT" in ddl.stdout
    assert embedded.run("init", "--check").code == ExitCode.SCHEMA  # --sql changed nothing

    ran = embedded.run("init", "--json")
    assert ran.code == 0, ran
    details = [step["detail"] for step in json.loads(ran.stdout)["steps"][:2]]
    assert details == [adopted(DEDUP), adopted(DLQ)]
    assert embedded.run("init", "--check").code == 0
    assert embedded.run("result", "book", "done").code == 0  # 0.1's record, read as it was
    assert "nothing to apply" in embedded.run("init", "--sql").stdout


def test_check_and_sql_together_is_a_usage_error(tmp_path: Path) -> None:
    ran = Env({}, tmp_path).run("init", "--check", "--sql")
    assert ran.code == ExitCode.USAGE
    assert "give one" in ran.one_error_line()
