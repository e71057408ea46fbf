"""``enqueue`` (with and without --wait), ``result``, and ``dedup get | forget | gc``."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from intentq.cli.exits import ExitCode
from intentq.dedup import Acquired, DedupStore, open_store
from intentq.intent import Intent, fingerprint
from tests.cli.conftest import Env, Queue, WorkerProcess, effects


def test_enqueue_sends_the_envelope(env: Env, queue: Queue) -> None:
    ran = env.run(
        "enqueue", "book_slot", "--args", '{"slot": "10:00"}', "--key", "conv42-call7",
        "--meta", "conversation_id=conv42", "--meta", "tool_call_id=call7", "--json",
    )  # fmt: skip
    assert ran.code == 0, ran
    sent = json.loads(ran.stdout)
    assert sent["key"] == "conv42-call7"
    assert (sent["tool"], sent["transport"]) == ("book_slot", "sqs")
    (message,) = queue.receive(1)
    intent = Intent.parse(message["Body"])
    assert intent.intent_id == sent["intent_id"]
    assert (intent.tool, dict(intent.args), intent.key) == (
        "book_slot", {"slot": "10:00"}, "conv42-call7",
    )  # fmt: skip
    assert dict(intent.meta) == {"conversation_id": "conv42", "tool_call_id": "call7"}


def test_enqueue_args_from_a_file_key_defaults_to_the_intent_id(env: Env, queue: Queue) -> None:
    (env.cwd / "args.json").write_text('{"slot": "11:00"}')
    ran = env.run("enqueue", "book_slot", "--args", "@args.json")
    assert ran.code == 0
    words = ran.stdout.split()
    intent_id, key = words[1], words[3]
    assert intent_id == key
    (message,) = queue.receive(1)
    assert dict(Intent.parse(message["Body"]).args) == {"slot": "11:00"}


def test_enqueue_wait_prints_the_result_once_per_key(
    env: Env, worker: WorkerProcess, cli_db: str
) -> None:
    args = ("enqueue", "book_slot", "--args", '{"slot": "12:00"}', "--key", "lunch-1")
    first = env.run(*args, "--wait", "30", "--json")
    assert first.code == 0, (first, worker.log())
    answer = json.loads(first.stdout)
    assert (answer["status"], answer["result"]) == ("completed", {"booked": "12:00"})
    # The agent lost that answer and asks again, same key: same result, no second booking.
    second = env.run(*args, "--wait", "30")
    assert second.code == 0
    assert '"booked": "12:00"' in second.stdout
    assert effects(cli_db, "lunch-1") == 1
    result = env.run("result", "book_slot", "lunch-1", "--json")
    assert json.loads(result.stdout)["state"] == "completed"


def test_enqueue_wait_reports_a_dead_letter(env: Env, worker: WorkerProcess) -> None:
    ran = env.run(
        "enqueue", "refuse_slot", "--args", '{"slot": "13:00"}', "--key", "closed-1",
        "--wait", "30",
    )  # fmt: skip
    assert ran.code == ExitCode.DEAD, (ran, worker.log())
    line = ran.one_error_line()
    assert "dead-lettered (permanent)" in line and "slot 13:00 is closed" in line
    result = env.run("result", "refuse_slot", "closed-1")
    assert result.code == ExitCode.DEAD


def test_enqueue_wait_finds_a_letter_that_never_reached_the_store(
    env: Env, worker: WorkerProcess
) -> None:
    # No --app: nothing checks the tool before sending; the worker dead-letters it unclaimed.
    ran = env.run("enqueue", "cancel_slot", "--args", "{}", "--wait", "30", "--json")
    assert ran.code == ExitCode.DEAD, (ran, worker.log())
    answer = json.loads(ran.stdout)
    assert answer["status"] == "dead"
    assert answer["error"]["reason"] == "unknown_tool"
    assert "unknown_tool" in ran.one_error_line()


def test_enqueue_wait_times_out(env: Env, queue: Queue) -> None:
    started = time.monotonic()
    ran = env.run("enqueue", "book_slot", "--args", '{"slot": "14:00"}', "--wait", "0.5")
    assert ran.code == ExitCode.TIMEOUT
    assert "no result for book_slot:" in ran.one_error_line()
    assert time.monotonic() - started >= 0.5
    assert len(queue.receive(1)) == 1  # it was sent; a worker may still run it later


def test_result_of_an_unknown_key(env: Env) -> None:
    ran = env.run("result", "book_slot", "never-sent")
    assert ran.code == ExitCode.NOT_FOUND
    assert "no record of book_slot:never-sent" in ran.one_error_line()


def test_dedup_get_and_forget(env: Env, store: DedupStore) -> None:
    claim = store.claim("book_slot", "k1", fingerprint("book_slot", {"slot": "1"}))
    assert isinstance(claim, Acquired)
    store.complete("book_slot", "k1", claim.token, {"booked": "1"})

    got = env.run("dedup", "get", "book_slot", "k1", "--json")
    assert got.code == 0
    record = json.loads(got.stdout)
    assert (record["state"], record["result"], record["attempts"]) == (
        "completed",
        {"booked": "1"},
        1,
    )
    assert "completed" in env.run("dedup", "get", "book_slot", "k1").stdout

    refused = env.run("dedup", "forget", "book_slot", "k1")  # no --yes, no terminal
    assert refused.code == ExitCode.USAGE
    assert store.get("book_slot", "k1") is not None

    forgot = env.run("dedup", "forget", "book_slot", "k1", "--yes", "--json")
    assert json.loads(forgot.stdout) == {"tool": "book_slot", "key": "k1", "forgotten": True}
    assert store.get("book_slot", "k1") is None
    assert env.run("dedup", "get", "book_slot", "k1").code == ExitCode.NOT_FOUND
    assert env.run("dedup", "forget", "book_slot", "k1", "--yes").code == ExitCode.NOT_FOUND


def test_dedup_gc_on_the_sql_store(env: Env, tmp_path: Path) -> None:
    sqlite = env.with_(INTENTQ_DEDUP_URL=f"sqlite:///{tmp_path / 'store.db'}")
    assert sqlite.run("init").code == 0
    with open_store(sqlite.vars["INTENTQ_DEDUP_URL"], "gc") as store:
        claim = store.claim("book_slot", "old", "f" * 64)
        assert isinstance(claim, Acquired)
        store.complete("book_slot", "old", claim.token, None, ttl=0.05)
        time.sleep(0.2)  # the record's TTL runs out on the store's clock
    gc = sqlite.with_(INTENTQ_KEY_PREFIX="gc").run("dedup", "gc", "--json")
    assert gc.code == 0
    assert json.loads(gc.stdout) == {"removed": 1}
    assert json.loads(env.run("dedup", "gc", "--json").stdout) == {"removed": 0}  # Redis


def test_a_uuid_key_is_found_in_any_case_and_a_bad_key_is_a_usage_error(
    env: Env, store: DedupStore
) -> None:
    key = str(uuid.uuid4())  # the store keeps UUID keys lower-cased, as intents carry them
    claim = store.claim("book_slot", key, fingerprint("book_slot", {"slot": "1"}))
    assert isinstance(claim, Acquired)
    store.complete("book_slot", key, claim.token, {"booked": "1"})

    for command in (["dedup", "get"], ["result"]):
        found = env.run(*command, "book_slot", key.upper(), "--json")
        assert found.code == 0, found
        assert json.loads(found.stdout)["result"] == {"booked": "1"}
        bad = env.run(*command, "book_slot", "not a key!")
        assert bad.code == ExitCode.USAGE
        assert "KEY: key must be" in bad.one_error_line()
