"""Bad input to every command: one clear line on stderr, a named exit code, no traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from intentq.cli.common import check_broker_url
from intentq.cli.exits import ExitCode
from tests.cli.conftest import Env
from tests.support.net import free_port

APP = "tests.cli.tools:registry"


@pytest.fixture
def offline(tmp_path: Path) -> Env:
    """Settings that need no service for the commands that fail before reaching one."""
    return Env({"INTENTQ_DEDUP_URL": "memory://", "INTENTQ_DLQ_URL": "memory://"}, tmp_path)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--args", "{bad"], "--args is not valid JSON"),
        (["--args", "[1, 2]"], "must be a JSON object"),
        (["--args", "@missing.json"], "cannot read --args file"),
        (["--args", "{}", "--meta", "novalue"], "--meta wants name=value"),
        (["--args", "{}", "--key", "has space"], "bad_key"),
    ],
)
def test_enqueue_bad_arguments(offline: Env, args: list[str], says: str) -> None:
    ran = offline.run("enqueue", "book_slot", *args)
    assert ran.code == ExitCode.USAGE
    assert says in ran.one_error_line()


def test_enqueue_unknown_tool_is_not_found(offline: Env) -> None:
    ran = offline.run("enqueue", "no_such_tool", "--app", APP, "--args", "{}")
    assert ran.code == ExitCode.NOT_FOUND
    assert "unknown tool 'no_such_tool'" in ran.one_error_line()


def test_enqueue_args_failing_the_schema(offline: Env) -> None:
    ran = offline.run("enqueue", "book_slot", "--app", APP, "--args", '{"time": "15:00"}')
    assert ran.code == ExitCode.USAGE
    line = ran.one_error_line()
    assert "arguments for 'book_slot' failed validation" in line
    assert "slot" in line


def test_app_that_does_not_import(offline: Env) -> None:
    ran = offline.run("enqueue", "book_slot", "--app", "no.such.module:registry")
    assert ran.code == ExitCode.CONFIG
    assert "cannot import 'no.such.module'" in ran.one_error_line()


def test_unknown_setting(offline: Env) -> None:
    ran = offline.with_(INTENTQ_DEDUP_ULR="memory://").run("result", "book_slot", "k")
    assert ran.code == ExitCode.CONFIG
    assert "unknown setting INTENTQ_DEDUP_ULR" in ran.one_error_line()


@pytest.mark.parametrize(
    "command",
    [["result", "book_slot", "k"], ["dedup", "get", "book_slot", "k"], ["dedup", "gc"]],
)
def test_bad_store_url(offline: Env, command: list[str]) -> None:
    ran = offline.with_(INTENTQ_DEDUP_URL="ftp://user:secret@host/x").run(*command)
    assert ran.code == ExitCode.CONFIG
    line = ran.one_error_line()
    assert "unsupported dedup store URL" in line
    assert "secret" not in line  # the password never reaches the screen


@pytest.mark.parametrize(
    "command", [["dlq", "list"], ["dlq", "stats"], ["dlq", "show", "x"], ["dlq", "replay", "--all"]]
)
def test_bad_dlq_url(offline: Env, command: list[str]) -> None:
    ran = offline.with_(INTENTQ_DLQ_URL="mysql://root:hunter2@db/x").run(*command)
    assert ran.code == ExitCode.CONFIG
    line = ran.one_error_line()
    assert "unsupported DLQ URL" in line
    assert "hunter2" not in line


@pytest.mark.parametrize(
    "command",
    [
        ["result", "book_slot", "k"],
        ["dedup", "get", "book_slot", "k"],
        ["dedup", "forget", "book_slot", "k", "--yes"],
        ["enqueue", "book_slot", "--args", "{}", "--wait", "1"],
    ],
)
def test_unreachable_redis(offline: Env, command: list[str]) -> None:
    dead = f"redis://:pw@127.0.0.1:{free_port()}/0"
    ran = offline.with_(
        INTENTQ_DEDUP_URL=dead, INTENTQ_TRANSPORT="sqs",
        INTENTQ_SQS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
    ).run(*command)  # fmt: skip
    assert ran.code == ExitCode.UNAVAILABLE, ran
    line = ran.one_error_line()
    assert "unavailable" in line.lower() or "unreachable" in line.lower()
    assert ":pw@" not in line


def test_unreachable_postgresql(offline: Env) -> None:
    dead = f"postgresql+psycopg://postgres:pw@127.0.0.1:{free_port()}/x"
    ran = offline.with_(INTENTQ_DLQ_URL=dead).run("dlq", "list")
    assert ran.code == ExitCode.UNAVAILABLE
    assert "unavailable" in ran.one_error_line()


def test_unreachable_sqs_endpoint(offline: Env) -> None:
    ran = offline.with_(
        INTENTQ_TRANSPORT="sqs", INTENTQ_SQS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}"
    ).run("enqueue", "book_slot", "--args", '{"slot": "1"}')
    assert ran.code == ExitCode.UNAVAILABLE
    assert "SQS" in ran.one_error_line()


@pytest.mark.parametrize(
    "command",
    [
        ["dlq", "show", "no-such-letter"],
        ["dlq", "replay", "no-such-letter"],
        ["dlq", "purge", "no-such-letter", "--yes"],
    ],
)
def test_unknown_letter_id(env: Env, command: list[str]) -> None:
    ran = env.run(*command)
    assert ran.code == ExitCode.NOT_FOUND
    assert "no dead letter with id 'no-such-letter'" in ran.one_error_line()


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["dlq", "list", "--reason", "sad"], "is not a reason"),
        (["dlq", "list", "--since", "last tuesday"], "--since"),
        (["dlq", "replay", "--until", "soon"], "--until"),
        (["dlq", "purge", "--older-than", "7 days"], "--older-than"),
        (["dlq", "list", "--limit", "0"], "--limit"),
        (["dlq", "replay", "--all", "--rate", "0"], "--rate"),
        (["enqueue", "book_slot", "--transport", "kafka"], "--transport must be celery or sqs"),
        (["worker", "--pool", "gevent", "--app", APP], "--pool must be prefork, threads or solo"),
        (["worker", "--transport", "kafka", "--app", APP], "--transport must be celery or sqs"),
        (["init", "--transport", "SQS2"], "--transport must be celery or sqs"),
        # Refused before the app is imported (it does not exist: importing it would be exit 3).
        (
            ["worker", "--log-level", "LOUD", "--app", "no.such.module:registry"],
            "--log-level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not 'LOUD'",
        ),
        (["dlq", "explode"], "No such command"),
        (["result", "book_slot"], "Missing argument"),
    ],
)
def test_bad_usage(offline: Env, command: list[str], says: str) -> None:
    ran = offline.run(*command)
    assert ran.code == ExitCode.USAGE
    assert says in ran.one_error_line()


def test_worker_without_an_app(offline: Env) -> None:
    ran = offline.run("worker")
    assert ran.code == ExitCode.CONFIG
    assert "--app" in ran.one_error_line()


def test_missing_table_says_to_run_init(tmp_path: Path) -> None:
    database = tmp_path / "empty.db"
    sqlite3.connect(database).close()  # a database file without intentq's tables
    fresh = Env({"INTENTQ_DLQ_URL": f"sqlite:///{database}"}, tmp_path)
    ran = fresh.run("dlq", "list")
    assert ran.code == ExitCode.FAILURE
    assert "intentq init" in ran.one_error_line()


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        (["dlq", "list"], "INTENTQ_DLQ_URL"),
        (["dlq", "purge", "--all", "--yes"], "INTENTQ_DLQ_URL"),
        (["dedup", "get", "book_slot", "k"], "INTENTQ_DEDUP_URL"),
        (["result", "book_slot", "k"], "INTENTQ_DEDUP_URL"),
    ],
)
def test_a_missing_sqlite_file_is_not_created_by_a_command(
    tmp_path: Path, command: list[str], setting: str
) -> None:
    database = tmp_path / "none.db"
    ran = Env({setting: f"sqlite:///{database}"}, tmp_path).run(*command)
    assert ran.code == ExitCode.CONFIG
    assert "does not exist yet: run `intentq init` first" in ran.one_error_line()
    assert not database.exists()


def test_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    ran = Env({"INTENTQ_DEDUP_URL": dead}, tmp_path).spawn("result", "book_slot", "k")
    assert ran.code == ExitCode.UNAVAILABLE
    assert "Redis store unavailable" in ran.one_error_line()
    assert ran.stdout == ""


def test_worker_log_level_in_any_case(offline: Env) -> None:
    ran = offline.run("worker", "--log-level", "warning", "--app", "no.such.module:registry")
    assert ran.code == ExitCode.CONFIG  # the level passed; the app that does not import did not
    assert "cannot import 'no.such.module'" in ran.one_error_line()


@pytest.mark.parametrize(
    "command",
    [
        ["worker", "--app", APP],
        ["enqueue", "book_slot", "--args", "{}"],
        ["dlq", "replay", "--all"],
        ["init"],
    ],
)
@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "bogus://user:secret@host/0",
            "'bogus://user:***@host/0' (kombu has no transport 'bogus')",
        ),
        ("user:secret@host", "'***@host' (no scheme)"),
    ],
)
def test_broker_url_kombu_cannot_use(offline: Env, command: list[str], url: str, says: str) -> None:
    ran = offline.with_(INTENTQ_BROKER_URL=url).run(*command)
    assert ran.code == ExitCode.CONFIG
    line = ran.one_error_line()
    assert f"unsupported broker URL {says}" in line
    assert "secret" not in line


@pytest.mark.parametrize(
    "url",
    [
        "sqla+sqlite:///intentq-broker.db",
        "redis://:pw@127.0.0.1:6379/0",
        "amqp://guest@127.0.0.1//;amqp://guest@127.0.0.2//",
        "sqs://",
        "memory://",
    ],
)
def test_broker_urls_kombu_can_use(url: str) -> None:
    check_broker_url(url)


@pytest.mark.parametrize(
    "command", [["worker", "--app", APP], ["enqueue", "book_slot", "--args", "{}"], ["init"]]
)
@pytest.mark.parametrize("url", ["not-a-url", "ftp://sqs.example.com", "http://"])
def test_bad_sqs_endpoint_url(offline: Env, command: list[str], url: str) -> None:
    ran = offline.with_(INTENTQ_TRANSPORT="sqs", INTENTQ_SQS_ENDPOINT_URL=url).run(*command)
    assert ran.code == ExitCode.CONFIG
    line = ran.one_error_line()
    assert f"bad setting sqs_endpoint_url: Value error, {url!r} is not an http" in line


def test_worker_with_an_unreachable_sqs_endpoint(offline: Env) -> None:
    ran = offline.with_(
        INTENTQ_TRANSPORT="sqs", INTENTQ_SQS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}"
    ).run("worker", "--app", APP)
    assert ran.code == ExitCode.UNAVAILABLE
    line = ran.one_error_line()
    assert "cannot start the SQS worker: SQS GetQueueUrl" in line
    assert "Could not connect" in line


def test_worker_on_a_missing_queue_is_a_plain_failure(env: Env) -> None:
    ran = env.with_(INTENTQ_SQS_QUEUE="no-such-queue-here").run("worker", "--app", APP)
    assert ran.code == ExitCode.FAILURE
    assert "SQS queue 'no-such-queue-here' does not exist" in ran.one_error_line()


@pytest.fixture
def broken_dlq_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """``dlq list`` and ``dlq show`` fail with an error intentq did not expect."""

    def boom(**overrides: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("intentq.cli.dlq.inspect.load_settings", boom)


@pytest.mark.usefixtures("broken_dlq_commands")
def test_debug_before_the_command_shows_the_traceback(offline: Env) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        offline.run("--debug", "dlq", "list")


@pytest.mark.usefixtures("broken_dlq_commands")
@pytest.mark.parametrize(
    "command",
    [
        ["dlq", "list"],
        ["dlq", "list", "--tool", "--debug"],  # a tool named --debug
        ["dlq", "show", "--", "--debug"],  # a letter id
    ],
)
def test_debug_anywhere_else_is_not_the_flag(offline: Env, command: list[str]) -> None:
    ran = offline.run(*command)
    assert ran.code == ExitCode.FAILURE
    assert "unexpected RuntimeError: boom (--debug shows the traceback)" in ran.one_error_line()
