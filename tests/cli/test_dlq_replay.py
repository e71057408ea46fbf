"""``dlq replay``: selection, dry run, skip and reset, rate limit, --to, --keep, and a crash."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from typing import Any

from intentq.cli.exits import ExitCode
from intentq.dedup import Acquired, DedupStore
from intentq.dlq import DeadLetterStore, Reason
from intentq.intent import Intent
from tests.cli.conftest import Env, Queue, WorkerProcess, effects, make_letter
from tests.support.net import wait_until


def put(dlq: DeadLetterStore, *letters: Any) -> list[str]:
    return [dlq.put(letter) for letter in letters]


def bodies(messages: list[dict[str, Any]]) -> set[str]:
    return {m["Body"] for m in messages}


def test_no_selector_refuses_and_sends_nothing(
    env: Env, dlq: DeadLetterStore, queue: Queue
) -> None:
    put(dlq, make_letter(), make_letter())
    ran = env.run("dlq", "replay")
    assert ran.code == ExitCode.USAGE
    assert "say which letters to replay" in ran.one_error_line()
    assert queue.depth() == 0
    assert dlq.count() == 2


def test_ids_and_filters_do_not_mix(env: Env, dlq: DeadLetterStore, queue: Queue) -> None:
    (letter_id,) = put(dlq, make_letter())
    for args in (
        [letter_id, "--tool", "book_slot"],
        [letter_id, "--all"],
        ["--all", "--tool", "x"],
    ):
        ran = env.run("dlq", "replay", *args)
        assert ran.code == ExitCode.USAGE
        ran.one_error_line()
    assert queue.depth() == 0


def test_dry_run_then_replay_by_filter(env: Env, dlq: DeadLetterStore, queue: Queue) -> None:
    schema = [make_letter(reason=Reason.SCHEMA), make_letter(reason=Reason.SCHEMA)]
    other = make_letter("charge_card", reason=Reason.EXHAUSTED, error_type="TimeoutError")
    ids = put(dlq, *schema, other)

    plan = env.run("dlq", "replay", "--reason", "schema", "--dry-run")
    assert plan.code == 0, plan
    assert plan.stdout.count("would replay") == 2
    assert ids[2] not in plan.stdout
    assert queue.depth() == 0  # a dry run sends nothing
    assert dlq.count() == 3  # and removes nothing

    done = env.run("dlq", "replay", "--reason", "schema")
    assert done.code == 0, done
    assert bodies(queue.receive(2)) == {letter.body.decode() for letter in schema}
    assert [x.id for x in dlq.iter()] == [ids[2]]


def test_replay_by_id_with_keep(env: Env, dlq: DeadLetterStore, queue: Queue) -> None:
    ids = put(dlq, make_letter(), make_letter(), make_letter())
    ran = env.run("dlq", "replay", ids[0], ids[2], "--keep", "--json")
    assert ran.code == 0, ran
    summary = json.loads(ran.stdout)
    assert (summary["replayed"], summary["skipped"], summary["refused"], summary["failed"]) == (
        2, 0, 0, 0,
    )  # fmt: skip
    assert [r["letter_id"] for r in summary["results"]] == [ids[0], ids[2]]
    assert len(queue.receive(2)) == 2
    assert [dlq.get(i).replay_count for i in ids] == [1, 0, 1]  # kept, marked


def test_replay_all_with_limit(env: Env, dlq: DeadLetterStore, queue: Queue) -> None:
    ids = put(dlq, make_letter(), make_letter(), make_letter())
    ran = env.run("dlq", "replay", "--all", "--limit", "2")
    assert ran.code == 0
    assert len(queue.receive(2)) == 2
    assert [x.id for x in dlq.iter()] == [ids[2]]
    again = env.run("dlq", "replay", "--all", "--json")
    assert json.loads(again.stdout)["replayed"] == 1
    assert dlq.count() == 0


def test_completed_key_is_skipped(
    env: Env, dlq: DeadLetterStore, store: DedupStore, queue: Queue
) -> None:
    letter = make_letter()
    (letter_id,) = put(dlq, letter)
    # The intent ran meanwhile (a duplicate got through before the replay).
    intent = Intent.parse(letter.body)
    claim = store.claim(intent.tool, intent.key, intent.fingerprint)
    assert isinstance(claim, Acquired)
    store.complete(intent.tool, intent.key, claim.token, {"booked": "15:00"})

    ran = env.run("dlq", "replay", letter_id, "--json")
    assert ran.code == 0
    (result,) = json.loads(ran.stdout)["results"]
    assert result["action"] == "skipped"
    assert "already completed" in result["detail"]
    assert queue.receive(1, timeout=2) == []  # nothing was sent
    assert dlq.count() == 0  # the letter is resolved


def test_failed_key_is_reset_then_replayed(
    env: Env, dlq: DeadLetterStore, store: DedupStore, queue: Queue
) -> None:
    letter = make_letter(reason=Reason.PERMANENT, error_type="ValueError")
    put(dlq, letter)
    intent = Intent.parse(letter.body)
    claim = store.claim(intent.tool, intent.key, intent.fingerprint)
    assert isinstance(claim, Acquired)
    store.fail(intent.tool, intent.key, claim.token, {"reason": "permanent"})

    ran = env.run("dlq", "replay", "--tool", "book_slot")
    assert ran.code == 0
    assert "reset+replayed" in ran.stdout
    assert store.get(intent.tool, intent.key) is None  # a fresh start for the re-sent intent
    assert bodies(queue.receive(1)) == {letter.body.decode()}


def test_undecodable_letter_is_refused_and_kept(
    env: Env, dlq: DeadLetterStore, queue: Queue
) -> None:
    poison = make_letter(reason=Reason.POISON, body=b"\x00not an envelope")
    poison.tool = poison.key = None
    (letter_id,) = put(dlq, poison)
    ran = env.run("dlq", "replay", "--all")
    assert ran.code == 0
    assert ran.stdout.startswith("refused\t" + letter_id)
    assert dlq.count() == 1
    assert queue.depth() == 0


def test_rate_limit_spaces_the_sends(env: Env, dlq: DeadLetterStore, queue: Queue) -> None:
    put(dlq, *(make_letter() for _ in range(5)))
    started = time.monotonic()
    ran = env.run("dlq", "replay", "--all", "--rate", "5")
    elapsed = time.monotonic() - started
    assert ran.code == 0
    # Five sends at 5 per second: four gaps of 0.2 s at least, on our clock and SQS's.
    assert elapsed >= 0.8
    sent = sorted(int(m["Attributes"]["SentTimestamp"]) for m in queue.receive(5))
    assert len(sent) == 5
    assert sent[-1] - sent[0] >= 750
    assert min(b - a for a, b in itertools.pairwise(sent)) >= 150


def test_to_another_queue(env: Env, dlq: DeadLetterStore, queue: Queue, sqs: Any) -> None:
    other = Queue(sqs, env.vars["INTENTQ_SQS_DLQ"])  # any other queue of this test
    letter = make_letter()
    put(dlq, letter)
    ran = env.run("dlq", "replay", "--all", "--to", other.name)
    assert ran.code == 0
    assert bodies(other.receive(1)) == {letter.body.decode()}
    assert queue.depth() == 0


def test_plain_progress_lines_and_summary(env: Env, dlq: DeadLetterStore, queue: Queue) -> None:
    ids = put(dlq, make_letter(), make_letter())
    ran = env.run("dlq", "replay", "--all")
    lines = ran.stdout.splitlines()
    assert lines[0].startswith(f"replayed\t{ids[0]}\tbook_slot:")
    assert lines[1].startswith(f"replayed\t{ids[1]}\tbook_slot:")
    assert "replay summary" in ran.stdout
    queue.receive(2)


CRASH_AFTER_SEND = """
import os, signal, sys
from intentq.producer import Producer

original = Producer.send_raw

def send_then_die(self, body, queue=None, **kwargs):
    original(self, body, queue, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # after the send, before the letter is removed

Producer.send_raw = send_then_die
sys.argv = ["intentq", *sys.argv[1:]]
from intentq.cli.app import main
main()
"""


def test_crash_between_enqueue_and_mark_leaves_one_execution(
    env: Env, dlq: DeadLetterStore, store: DedupStore, queue: Queue, cli_db: str
) -> None:
    letter = make_letter("book_slot", reason=Reason.EXHAUSTED, args={"slot": "09:30"})
    (letter_id,) = put(dlq, letter)

    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_SEND, "dlq", "replay", letter_id],
        cwd=env.cwd, env=env.process_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert crashed.returncode == -9, crashed.stderr
    assert dlq.get(letter_id).replay_count == 0  # sent, never removed nor marked
    assert queue.depth() == 1

    again = env.run("dlq", "replay", letter_id)  # the operator replays once more
    assert again.code == 0, again
    assert dlq.count() == 0
    assert queue.depth() == 2  # the same intent twice on the queue

    # A copy that finds the key busy comes back when the lease would run out: keep it short.
    worker = WorkerProcess(env.with_(INTENTQ_LEASE="2"), cli_db, env.cwd / "worker.log")
    try:
        wait_until(lambda: queue.depth() == 0, timeout=30, what="both copies handled")
        record = store.get("book_slot", letter.key or "")
        assert record is not None and record.state == "completed"
    finally:
        assert worker.stop() == 0, worker.log()
    assert effects(cli_db, letter.key or "") == 1
