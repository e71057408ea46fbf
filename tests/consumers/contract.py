"""What every consumer promises, run over each transport: the stub, SQS and Celery.

A transport's module subclasses ``ConsumerContract`` and provides a module-scoped ``t``
fixture: a ``Transport`` adapter with one worker started. Workers are shared within a
module; a test that kills, pauses or stops one leaves a running worker behind for the next.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from intentq.dedup import DedupStore, Record, State
from intentq.dlq import DeadLetter, DeadLetterStore, LetterFilter, Reason
from intentq.intent import Intent
from tests.celery.conftest import Effects
from tests.support.net import wait_until

W = TypeVar("W")
# Seconds a test waits for what the lease, the visibility timeout and a worker's start add up to.
PATIENCE = 60.0


def new_key(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class Transport(ABC, Generic[W]):
    """One transport's world as the contract sees it: send, run workers, look at results.

    ``processes`` says whether each worker is a process of its own (then a takeover shows
    as another pid in the side-effect rows); ``concurrency`` how many tools each runs at once.
    """

    processes = True
    concurrency = 2  # tools a worker runs at once

    def __init__(self, store: DedupStore, dlq: DeadLetterStore, fx: Effects, tmp: Path) -> None:
        self.store, self.dlq, self.fx, self.tmp = store, dlq, fx, tmp
        self.workers: list[W] = []
        self._gates: list[Path] = []

    # -- sending -------------------------------------------------------------------------

    @abstractmethod
    def send_intent(self, intent: Intent) -> None: ...

    @abstractmethod
    def send_body(self, body: bytes) -> None:
        """Put bytes that are not an envelope on the queue."""

    def send(self, tool: str, args: dict[str, Any], key: str | None = None) -> Intent:
        intent = Intent.create(tool, args, key=key)
        self.send_intent(intent)
        return intent

    # -- workers -------------------------------------------------------------------------

    @abstractmethod
    def start_worker(self) -> W:
        """A new worker, consuming when this returns."""

    @abstractmethod
    def alive(self, worker: W) -> bool: ...

    @abstractmethod
    def kill(self, worker: W) -> None:
        """Gone at once, mid-tool: SIGKILL, or an abandoned stub worker."""

    @abstractmethod
    def pause(self, worker: W) -> None:
        """Frozen (SIGSTOP): no heartbeat, no progress, until ``resume``."""

    @abstractmethod
    def resume(self, worker: W) -> None: ...

    @abstractmethod
    def terminate(self, worker: W) -> None:
        """Ask for a graceful stop (SIGTERM) and return at once."""

    @abstractmethod
    def wait_stopped(self, worker: W, timeout: float) -> bool:
        """Whether the worker stopped cleanly, with every running tool finished."""

    @abstractmethod
    def lease_lost(self, worker: W) -> bool:
        """Whether the worker's completion of a tool was refused: another owned the key."""

    def worker(self) -> W:
        """The running worker started last, or a new one."""
        live = [w for w in self.workers if self.alive(w)]
        return live[-1] if live else self.start_worker()

    def sole_worker(self) -> W:
        """One running worker and no other: the others are stopped."""
        keep = self.worker()
        for other in self.workers:
            if other is not keep and self.alive(other):
                self.terminate(other)
                self.wait_stopped(other, PATIENCE)
        return keep

    # -- looking -------------------------------------------------------------------------

    @abstractmethod
    def answers(self, intents: Sequence[Intent], timeout: float = PATIENCE) -> list[Any]:
        """What each delivery was answered with, once every one was."""

    def letter(self, timeout: float = PATIENCE, **match: Any) -> DeadLetter:
        """The one dead letter whose fields equal ``match``."""

        def found() -> DeadLetter | None:
            hits = [
                letter
                for letter in self.dlq.iter(LetterFilter(tool=match.get("tool")))
                if all(getattr(letter, k) == v for k, v in match.items())
            ]
            assert len(hits) <= 1, hits
            return hits[0] if hits else None

        return wait_until(found, timeout=timeout, interval=0.05, what=f"a dead letter {match}")

    def record(self, tool: str, key: str) -> Record:
        record = self.store.get(tool, key)
        assert record is not None, f"no record of {tool}:{key}"
        return record

    def gate(self) -> Path:
        """A file a ``hold`` tool waits for; every gate opens when the module ends."""
        path = self.tmp / f"gate-{uuid.uuid4().hex}"
        self._gates.append(path)
        return path

    def close(self) -> None:
        for gate in self._gates:
            gate.touch()


class ConsumerContract:
    """The scenarios: duplicates, poison, a crash, a lost lease, a graceful stop."""

    def test_same_key_sent_five_times_runs_once_and_every_delivery_gets_the_first_result(
        self, t: Transport[Any]
    ) -> None:
        t.worker()
        key = new_key()
        intents = [t.send("record", {"value": 7}, key=key) for _ in range(5)]

        answers = t.answers(intents)

        assert answers[0]["value"] == 7
        assert all(answer == answers[0] for answer in answers), answers
        assert t.fx.count("effect", key) == 1

    @pytest.mark.parametrize(
        ("case", "reason"),
        [
            ("unknown tool", Reason.UNKNOWN_TOOL),
            ("bad arguments", Reason.SCHEMA),
            ("not an envelope", Reason.POISON),
            ("permanent error", Reason.PERMANENT),
            ("transient until the attempts run out", Reason.EXHAUSTED),
        ],
    )
    def test_poison_is_dead_lettered_with_its_reason(
        self, t: Transport[Any], case: str, reason: Reason
    ) -> None:
        t.worker()
        key = new_key()
        if case == "not an envelope":
            body = f"not an envelope {key}".encode()
            t.send_body(body)
            letter = t.letter(body=body)
            assert letter.error_type == "InvalidIntent.malformed_json"
        else:
            tool, args = {
                "unknown tool": ("no_such_tool", {"x": 1}),
                "bad arguments": ("typed", {"count": "many"}),
                "permanent error": ("refuse", {}),
                "transient until the attempts run out": ("always_flaky", {}),
            }[case]
            intent = t.send(tool, args, key=key)
            letter = t.letter(intent_id=intent.intent_id)
            assert (letter.tool, letter.key) == (tool, key)
            assert Intent.parse(letter.body) == intent

        assert letter.reason == reason
        if reason == Reason.SCHEMA:
            assert "count" in (letter.error_message or "")
            assert t.fx.count("effect", key) == 0
        if reason == Reason.PERMANENT:
            assert (letter.error_type, letter.attempts) == ("ValueError", 1)
            assert t.fx.count("call", key) == 1
        if reason == Reason.EXHAUSTED:
            assert (letter.error_type, letter.attempts) == ("TransientError", 2)
            assert [row[2] for row in t.fx.rows("call", key)] == [1, 2]

    def test_a_worker_killed_mid_tool_is_taken_over_after_the_lease(
        self, t: Transport[Any]
    ) -> None:
        # Given a worker running a tool that will not finish on its own
        victim, key = t.worker(), new_key("crash")
        intent = t.send("hold", {"gate": str(t.gate()), "first_only": True}, key=key)
        wait_until(lambda: t.fx.count("call", key) == 1, timeout=PATIENCE, what="the start")

        # When the worker is killed and another one starts
        t.kill(victim)
        t.start_worker()

        # Then, after the lease and the visibility timeout, the other one runs it, once
        assert t.answers([intent]) == [{"attempt": 2}]
        calls = t.fx.rows("call", key)
        assert [row[2] for row in calls] == [1, 2]
        if t.processes:
            assert calls[0][3] != calls[1][3]  # another process took over
        assert [row[2] for row in t.fx.rows("effect", key)] == [2]
        assert t.record("hold", key).result == {"attempt": 2}

    def test_a_lost_lease_fences_the_late_finisher(self, t: Transport[Any]) -> None:
        # Given a worker running a tool, frozen long enough for its lease to run out
        first, key, gate = t.worker(), new_key("fence"), t.gate()
        intent = t.send("hold", {"gate": str(gate), "first_only": True}, key=key)
        wait_until(lambda: t.fx.count("call", key) == 1, timeout=PATIENCE, what="the start")
        t.pause(first)

        # When another worker takes the key over and completes it
        t.start_worker()
        assert t.answers([intent]) == [{"attempt": 2}]
        # and the first one wakes up and finishes too
        gate.touch()
        t.resume(first)
        wait_until(lambda: t.lease_lost(first), timeout=PATIENCE, what="the refused completion")

        # Then its completion was refused: the record keeps the second owner's result
        record = t.record("hold", key)
        assert (record.state, record.result, record.attempts) == (
            State.COMPLETED, {"attempt": 2}, 2,
        )  # fmt: skip
        # (the fence guards the record; the late finisher's own side effect did happen)
        assert sorted(row[2] for row in t.fx.rows("effect", key)) == [1, 2]
        t.kill(first)  # done with it: the next test needs one worker, and killing is instant

    def test_sigterm_lets_the_running_tool_finish_and_gives_back_the_rest(
        self, t: Transport[Any]
    ) -> None:
        # Given one worker, busy with held tools, and more messages behind them
        worker, gate = t.sole_worker(), t.gate()
        keys = [new_key("term") for _ in range(6)]
        intents = [t.send("hold", {"gate": str(gate)}, key=key) for key in keys]

        def started() -> list[str]:
            return [key for key in keys if t.fx.count("call", key)]

        wait_until(
            lambda: len(started()) == t.concurrency, timeout=PATIENCE, what="every slot busy"
        )

        # When it is asked to stop, another worker starts, and the running tools may finish
        t.terminate(worker)
        running = started()
        t.start_worker()
        gate.touch()

        # Then it stops cleanly once they have, with each one's side effect done once
        assert t.wait_stopped(worker, PATIENCE)
        assert len(running) == t.concurrency < len(keys)
        assert all(t.fx.count("effect", key) == 1 for key in running)
        # and what it had not started (given back, or never taken) runs on the other, once
        assert t.answers(intents) == [{"attempt": 1}] * len(keys)
        assert [t.fx.count("effect", key) for key in keys] == [1] * len(keys)
        assert [t.fx.count("call", key) for key in keys] == [1] * len(keys)
