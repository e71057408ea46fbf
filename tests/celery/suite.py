"""The scenarios every broker runs, against real worker processes.

A broker's test module subclasses ``CoreSuite`` (or ``FullSuite``) and provides a
module-scoped ``h`` fixture: a ``Harness`` with one worker already running.
"""

from __future__ import annotations

import os
import pickle
import uuid
from typing import Any

from intentq.consumers.celery import publish, publish_raw
from intentq.dedup.base import State
from intentq.dlq.base import Reason
from intentq.intent import Intent, canonical_json
from tests.celery.conftest import Harness
from tests.support.net import wait_until


def new_key(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def successes(h: Harness, task_id: str) -> int:
    """How many times the workers logged the task as succeeded (every delivery counts)."""
    needle = f"[{task_id}] succeeded".encode()
    return sum(w.log_path.read_bytes().count(needle) for w in h.workers if w.log_path.exists())


def publish_bytes(h: Harness, body: bytes, content_type: str, headers: dict[str, Any]) -> None:
    """Put a message on the queue exactly as given, bypassing Celery's serializer."""
    queue = h.app.amqp.queues[h.queue]
    with h.app.connection_for_write() as conn:
        conn.Producer().publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            content_type=content_type,
            content_encoding="binary",
            headers=headers,
        )


class MakeDirOnUnpickle:
    """Unpickling this creates a directory: proof that a pickle was (never) loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


class CoreSuite:
    """Deduplication and retries: what every broker must do."""

    def test_same_key_sent_five_times_runs_once_with_five_identical_results(
        self, h: Harness
    ) -> None:
        key = new_key()
        intents = [h.send("record", {"value": 7}, key=key) for _ in range(5)]

        results = [h.result(intent.intent_id) for intent in intents]

        assert results[0]["value"] == 7
        assert all(r == results[0] for r in results), results
        assert h.fx.count("effect", key) == 1

    def test_transient_error_twice_then_success_takes_three_attempts(self, h: Harness) -> None:
        key = new_key()
        intent = h.send("flaky", {"succeed_on": 3}, key=key)

        assert h.result(intent.intent_id) == {"attempt": 3}
        assert [row[2] for row in h.fx.rows("call", key)] == [1, 2, 3]
        assert h.fx.count("effect", key) == 1
        record = h.store.get("flaky", key)
        assert record is not None
        assert (record.state, record.attempts) == (State.COMPLETED, 3)


class FullSuite(CoreSuite):
    """Crashes, poison and plain tasks as well."""

    def test_republished_intent_is_acked_with_the_cached_result(self, h: Harness) -> None:
        key = new_key()
        intent = h.send("record", {"value": 1}, key=key)
        first = h.result(intent.intent_id)

        for _ in range(2):
            publish(h.app, intent, h.queue)

        wait_until(lambda: successes(h, intent.intent_id) == 3, timeout=30, what="3 deliveries")
        assert h.result(intent.intent_id) == first
        assert h.fx.count("effect", key) == 1

    def test_worker_sigkilled_mid_tool_is_redelivered_and_completes_once(self, h: Harness) -> None:
        key, gate = new_key(), h.log_dir / f"gate-{uuid.uuid4().hex}"
        victim = h.ensure_worker()
        intent = h.send("slow", {"gate": str(gate)}, key=key)
        wait_until(lambda: h.fx.count("call", key) == 1, timeout=30, what="the tool to start")

        victim.kill()
        gate.touch()
        h.new_worker(f"w{len(h.workers) + 1}").start()

        assert h.result(intent.intent_id, timeout=60) == {"attempt": 2}
        calls = h.fx.rows("call", key)
        assert [row[2] for row in calls] == [1, 2]
        assert calls[0][3] != calls[1][3]  # another process took over
        assert h.fx.count("effect", key) == 1

    def test_tool_killing_its_worker_is_dead_lettered_as_crash_loop(self, h: Harness) -> None:
        worker = h.ensure_worker()
        key = new_key()
        crash = h.send("crash", {}, key=key)
        others = [h.send("record", {"value": i}) for i in range(4)]

        letter = h.letter(timeout=60, tool="crash", key=key)

        assert letter.reason == Reason.CRASH_LOOP
        assert letter.attempts == 3  # the third claim found max_attempts (2) used up
        assert h.fx.count("call", key) == 2
        meta = h.meta(crash.intent_id)
        assert meta["status"] == "FAILURE"
        assert "crash_loop" in str(meta["result"])
        assert [h.result(o.intent_id)["value"] for o in others] == [0, 1, 2, 3]
        assert worker.alive

    def test_unknown_tool_is_dead_lettered_with_its_envelope(self, h: Harness) -> None:
        intent = h.send("no_such_tool", {"x": 1})

        letter = h.letter(intent_id=intent.intent_id)

        assert letter.reason == Reason.UNKNOWN_TOOL
        assert (letter.tool, letter.key) == ("no_such_tool", intent.key)
        assert Intent.parse(letter.body) == intent

    def test_arguments_failing_the_schema_are_dead_lettered(self, h: Harness) -> None:
        key = new_key()
        intent = h.send("typed", {"count": "many"}, key=key)

        letter = h.letter(intent_id=intent.intent_id)

        assert letter.reason == Reason.SCHEMA
        assert "count" in (letter.error_message or "")
        assert h.meta(intent.intent_id)["status"] == "FAILURE"
        assert h.fx.count("effect", key) == 0

    def test_task_argument_that_is_not_an_envelope_is_poison(self, h: Harness) -> None:
        h.app.send_task("intentq.record", args=["not an envelope"], queue=h.queue)

        letter = h.letter(body=canonical_json("not an envelope"))

        assert letter.reason == Reason.POISON
        assert letter.error_type == "InvalidIntent.not_an_object"

    def test_body_that_is_not_json_is_dead_lettered_as_it_came(self, h: Harness) -> None:
        task_id, body = str(uuid.uuid4()), b"{definitely not json"
        publish_bytes(h, body, "application/json", {"task": "intentq.record", "id": task_id})

        letter = h.letter(intent_id=task_id)

        assert (letter.reason, letter.body) == (Reason.POISON, body)
        assert letter.error_type == "DecodeError"

    def test_pickled_message_is_dead_lettered_unread(self, h: Harness) -> None:
        task_id, marker = str(uuid.uuid4()), h.log_dir / f"unpickled-{uuid.uuid4().hex}"
        body = pickle.dumps(MakeDirOnUnpickle(str(marker)))
        headers = {"task": "intentq.record", "id": task_id}
        publish_bytes(h, body, "application/x-python-serialize", headers)

        letter = h.letter(intent_id=task_id)

        assert (letter.reason, letter.body) == (Reason.POISON, body)
        assert letter.error_type == "ContentDisallowed"
        assert not marker.exists()

    def test_publish_raw_dead_letters_a_non_intent_body_again(self, h: Harness) -> None:
        body = b"\x00\xff raw " + uuid.uuid4().bytes

        publish_raw(h.app, body, h.queue)

        letter = h.letter(body=body)
        assert letter.reason == Reason.POISON
        assert letter.error_type == "InvalidIntent.malformed_json"

    def test_plain_task_runs_once_per_idempotency_key(self, h: Harness) -> None:
        key = new_key("order")
        sent = [
            h.app.send_task(
                "tests.charge", args=["o-1", 5], kwargs={"idempotency_key": key}, queue=h.queue
            )
            for _ in range(3)
        ]

        results = [h.result(r.id) for r in sent]

        assert all(r == results[0] for r in results)
        assert (results[0]["order"], results[0]["amount"]) == ("o-1", 5)
        assert h.fx.count("effect", key) == 1

    def test_plain_task_without_a_key_is_deduplicated_on_its_task_id(self, h: Harness) -> None:
        task_id, order = str(uuid.uuid4()), new_key("order")
        for _ in range(2):
            h.app.send_task("tests.charge", args=[order, 1], task_id=task_id, queue=h.queue)

        wait_until(lambda: successes(h, task_id) == 2, timeout=30, what="both deliveries")
        # The task takes ``idempotency_key``, so it is told the key: its task id.
        assert h.fx.count("effect", task_id) == 1
        record = h.store.get("tests.charge", task_id)
        assert record is not None
        assert record.state == State.COMPLETED
        assert record.result["order"] == order
