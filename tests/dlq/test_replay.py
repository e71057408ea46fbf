"""The replay library: what happens to each letter, dry runs, crashes, pacing and limits.

Letters come from a real executor run (a tool that fails for good is dead-lettered), replays
go through a recording ``send``, and re-sent bodies go back through the executor: the tool's
side effects show what a worker would really do.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from intentq import Registry, ToolContext
from intentq.dedup.base import Record, State
from intentq.dedup.memory import MemoryDedupStore
from intentq.dlq import DeadLetter, DeadLetterStore, LetterFilter, Reason, open_dlq
from intentq.dlq.replay import Action, ReplayResult, replay
from intentq.errors import StoreUnavailable
from intentq.executor import Executor
from intentq.intent import Intent, new_intent_id
from intentq.outcome import Ack, Delivery, Outcome, SendToDLQ

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["memory", "sqlite"])
def dlq(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeadLetterStore]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'dlq.db'}"
    store = open_dlq(url)
    store.create_schema()
    yield store
    store.close()


class World:
    """A tool that fails for good until fixed, the dedup store, an executor, its effects."""

    def __init__(self) -> None:
        self.broken = True
        self.effects: list[str] = []
        registry = Registry()

        @registry.tool("book_slot")
        def book_slot(args: dict[str, Any], ctx: ToolContext) -> dict[str, str]:
            if self.broken:
                raise ValueError("slot service rejected the request")
            self.effects.append(ctx.key)
            return {"booked": args["slot"]}

        self.store = MemoryDedupStore()
        self.executor = Executor(registry, self.store)

    def deliver(self, body: bytes) -> Outcome:
        return self.executor.process(body, Delivery("memory", "intentq", new_intent_id()))

    def dead_letter(self, dlq: DeadLetterStore, key: str) -> str:
        """Deliver a new intent to the broken tool; returns the id of the letter it leaves."""
        body = Intent.create("book_slot", {"slot": "15:00"}, key=key).to_json()
        outcome = self.deliver(body)
        assert isinstance(outcome, SendToDLQ), outcome
        return dlq.put(outcome.letter)

    def state(self, key: str) -> State | None:
        record: Record | None = self.store.get("book_slot", key)
        return record.state if record else None


@dataclass
class Outbox:
    """A ``send`` that records what it was given; ``fail_on`` bodies raise instead."""

    sent: list[tuple[bytes, str | None]] = field(default_factory=list)
    fail_on: set[bytes] = field(default_factory=set)
    states_seen: list[State | None] = field(default_factory=list)
    world: World | None = None

    def __call__(self, letter: DeadLetter, to: str | None) -> None:
        if letter.body in self.fail_on:
            raise ConnectionError("broker unreachable")
        if self.world is not None and letter.key is not None:
            self.states_seen.append(self.world.state(letter.key))
        self.sent.append((letter.body, to))


class FakeTime:
    """A monotonic clock that only ``sleep`` moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def actions(results: list[ReplayResult]) -> list[str]:
    return [str(r.action) for r in results]


# -- what happens to each letter ---------------------------------------------------------------


def test_a_failed_key_is_reset_then_replayed_and_the_letter_removed(dlq: DeadLetterStore) -> None:
    world = World()
    letter_id = world.dead_letter(dlq, "k-1")
    body = dlq.get(letter_id).body
    assert world.state("k-1") is State.FAILED
    outbox = Outbox(world=world)

    summary = replay(dlq, world.store, dlq.iter(), outbox, to="intentq-retry")

    assert actions(summary.results) == ["reset+replayed"]
    assert (summary.replayed, summary.skipped, summary.refused, summary.failed) == (1, 0, 0, 0)
    assert outbox.sent == [(body, "intentq-retry")]  # the original bytes, so the same key
    assert outbox.states_seen == [None]  # reset before the send, not after
    assert dlq.count() == 0
    world.broken = False
    assert isinstance(world.deliver(body), Ack)
    assert world.effects == ["k-1"]


def test_keep_marks_the_letter_instead_of_removing_it(dlq: DeadLetterStore) -> None:
    world = World()
    letter_id = world.dead_letter(dlq, "k-1")

    summary = replay(dlq, world.store, dlq.iter(), Outbox(), keep=True)

    assert actions(summary.results) == ["reset+replayed"]
    assert dlq.get(letter_id).replay_count == 1


def test_a_completed_key_is_skipped_and_its_letter_resolved(dlq: DeadLetterStore) -> None:
    world = World()
    letter_id = world.dead_letter(dlq, "k-1")
    world.broken = False
    body = dlq.get(letter_id).body
    world.store.reset("book_slot", "k-1")
    assert isinstance(world.deliver(body), Ack)  # done meanwhile, e.g. by a duplicate
    outbox = Outbox()

    kept = replay(dlq, world.store, dlq.iter(), outbox, keep=True)
    assert actions(kept.results) == ["skipped"]
    assert "already completed" in kept.results[0].detail
    assert dlq.get(letter_id).replay_count == 0

    summary = replay(dlq, world.store, dlq.iter(), outbox)

    assert actions(summary.results) == ["skipped"]
    assert outbox.sent == []
    assert dlq.count() == 0
    assert world.effects == ["k-1"]


def test_an_absent_or_in_progress_key_is_replayed(dlq: DeadLetterStore) -> None:
    world = World()
    absent = world.dead_letter(dlq, "k-absent")
    world.store.forget("book_slot", "k-absent")  # expired from the store, say
    busy = world.dead_letter(dlq, "k-busy")
    world.store.forget("book_slot", "k-busy")
    world.store.claim("book_slot", "k-busy", "fp")  # a worker holds it now
    outbox = Outbox()

    summary = replay(dlq, world.store, dlq.iter(), outbox)

    assert [(r.letter_id, str(r.action)) for r in summary.results] == [
        (absent, "replayed"),
        (busy, "replayed"),
    ]
    assert "in progress" in summary.results[1].detail
    assert len(outbox.sent) == 2


def test_an_unparsable_body_without_tool_and_key_is_refused_and_kept(
    dlq: DeadLetterStore,
) -> None:
    letter_id = dlq.put(DeadLetter(id="", body=b"\xff not json", reason=Reason.POISON))
    outbox = Outbox()

    summary = replay(dlq, MemoryDedupStore(), dlq.iter(), outbox)

    (result,) = summary.results
    assert (result.action, summary.refused) == (Action.REFUSED, 1)
    assert "not an intentq envelope" in result.detail and "malformed_json" in result.detail
    assert outbox.sent == []
    assert dlq.get(letter_id).replay_count == 0


def test_a_plain_message_with_tool_and_key_is_replayed_on_that_key(dlq: DeadLetterStore) -> None:
    dlq.put(DeadLetter(id="", body=b"celery body", reason=Reason.PERMANENT, tool="t", key="job-1"))
    outbox = Outbox()

    summary = replay(dlq, MemoryDedupStore(), dlq.iter(), outbox)

    assert [(r.tool, r.key, str(r.action)) for r in summary.results] == [("t", "job-1", "replayed")]
    assert outbox.sent == [(b"celery body", None)]


def test_a_send_that_raises_fails_that_letter_keeps_it_and_goes_on(dlq: DeadLetterStore) -> None:
    world = World()
    first = world.dead_letter(dlq, "k-1")
    second = world.dead_letter(dlq, "k-2")
    outbox = Outbox(fail_on={dlq.get(first).body})

    summary = replay(dlq, world.store, dlq.iter(), outbox)

    assert actions(summary.results) == ["failed", "reset+replayed"]
    assert "ConnectionError: broker unreachable" in summary.results[0].detail
    assert (summary.replayed, summary.failed) == (1, 1)
    assert [x.id for x in dlq.list().letters] == [first]
    assert dlq.get(first).replay_count == 0
    assert second not in {x.id for x in dlq.list().letters}


def test_an_unreachable_dedup_store_fails_the_letter_and_keeps_it(dlq: DeadLetterStore) -> None:
    class DownStore(MemoryDedupStore):
        """The store's answer during an outage (what every backend raises)."""

        def get(self, tool: str, key: str) -> Record | None:
            raise StoreUnavailable("connection refused")

    letter_id = World().dead_letter(dlq, "k-1")
    outbox = Outbox()

    summary = replay(dlq, DownStore(), dlq.iter(), outbox)

    assert actions(summary.results) == ["failed"]
    assert "connection refused" in summary.results[0].detail
    assert outbox.sent == [] and dlq.count() == 1 and dlq.get(letter_id).replay_count == 0


# -- dry run -----------------------------------------------------------------------------------


def test_a_dry_run_reports_the_plan_and_changes_nothing(dlq: DeadLetterStore) -> None:
    world = World()
    world.dead_letter(dlq, "k-failed")
    world.dead_letter(dlq, "k-done")
    world.store.reset("book_slot", "k-done")
    world.broken = False
    world.deliver(Intent.create("book_slot", {"slot": "15:00"}, key="k-done").to_json())
    dlq.put(DeadLetter(id="", body=b"junk", reason=Reason.POISON))
    before = dlq.list().letters
    outbox = Outbox()

    summary = replay(dlq, world.store, dlq.iter(), outbox, dry_run=True)

    assert actions(summary.results) == ["would reset+replay", "would skip", "would refuse"]
    assert summary.dry_run
    assert (summary.replayed, summary.skipped, summary.refused, summary.failed) == (1, 1, 1, 0)
    assert outbox.sent == []
    assert dlq.list().letters == before
    assert world.state("k-failed") is State.FAILED
    assert world.state("k-done") is State.COMPLETED


# -- crashes between send and mark -------------------------------------------------------------


def test_an_error_after_the_send_keeps_the_letter_and_dedup_absorbs_the_resend(
    tmp_path: Path,
) -> None:
    class MarkFails(DeadLetterStore):
        """The SQLite DLQ, whose delete and mark fail once (the database went away)."""

        def __init__(self, inner: DeadLetterStore) -> None:
            self.inner, self.failures = inner, 1

        def _fail_once(self) -> None:
            if self.failures:
                self.failures -= 1
                raise OSError("disk I/O error")

        def put(self, letter: DeadLetter) -> str:
            return self.inner.put(letter)

        def list(self, *a: Any, **k: Any) -> Any:
            return self.inner.list(*a, **k)

        def get(self, letter_id: str) -> DeadLetter:
            return self.inner.get(letter_id)

        def count(self, *a: Any, **k: Any) -> int:
            return self.inner.count(*a, **k)

        def delete(self, letter_id: str) -> bool:
            self._fail_once()
            return self.inner.delete(letter_id)

        def mark_replayed(self, letter_id: str) -> DeadLetter:
            self._fail_once()
            return self.inner.mark_replayed(letter_id)

    inner = open_dlq(f"sqlite:///{tmp_path / 'dlq.db'}")
    inner.create_schema()
    dlq = MarkFails(inner)
    world = World()
    letter_id = world.dead_letter(dlq, "k-1")
    outbox = Outbox()

    first = replay(dlq, world.store, dlq.iter(), outbox)
    assert actions(first.results) == ["failed"]
    assert first.results[0].detail.startswith("sent, but the letter could not be removed")
    assert dlq.get(letter_id).replay_count == 0  # still there: nothing is lost

    second = replay(dlq, world.store, dlq.iter(), outbox)
    assert actions(second.results) == ["replayed"]
    assert dlq.count() == 0

    # Two copies went out; the worker runs the tool once and answers the other from the store.
    world.broken = False
    outcomes = [world.deliver(body) for body, _ in outbox.sent]
    assert [type(o) for o in outcomes] == [Ack, Ack]
    assert [o.cached for o in outcomes if isinstance(o, Ack)] == [False, True]
    assert world.effects == ["k-1"]
    inner.close()


def test_a_replay_killed_after_sending_leaves_the_letter_for_the_next_one(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'dlq.db'}"
    dlq = open_dlq(url)
    dlq.create_schema()
    world = World()
    letter_id = world.dead_letter(dlq, "k-1")
    outbox_file = tmp_path / "outbox"

    child = subprocess.run(
        [sys.executable, "-m", "tests.dlq.crash_replay", url, str(outbox_file)],
        cwd=ROOT, capture_output=True, timeout=60,
    )  # fmt: skip

    assert child.returncode == -9, child.stderr.decode()
    killed_copy = outbox_file.read_bytes().splitlines()
    assert killed_copy == [dlq.get(letter_id).body]
    assert dlq.get(letter_id).replay_count == 0

    outbox = Outbox()
    summary = replay(dlq, world.store, dlq.iter(), outbox)
    assert actions(summary.results) == ["reset+replayed"]
    assert dlq.count() == 0

    world.broken = False
    outcomes = [world.deliver(body) for body in killed_copy + [b for b, _ in outbox.sent]]
    assert [o.cached for o in outcomes if isinstance(o, Ack)] == [False, True]
    assert world.effects == ["k-1"]
    dlq.close()


# -- pacing, limits, progress ------------------------------------------------------------------


def test_the_rate_limit_spaces_sends_on_the_given_clock(dlq: DeadLetterStore) -> None:
    world = World()
    for i in range(9):
        world.dead_letter(dlq, f"k-{i}")
    dlq.put(DeadLetter(id="", body=b"junk", reason=Reason.POISON))  # refused: takes no slot
    fake = FakeTime()
    send_times: list[float] = []

    def send(letter: DeadLetter, to: str | None) -> None:
        send_times.append(fake.clock())

    start = fake.now
    summary = replay(
        dlq, world.store, dlq.iter(), send, rate=4.0, sleep=fake.sleep, clock=fake.clock
    )

    assert summary.replayed == 9
    gaps = [b - a for a, b in pairwise(send_times)]
    assert gaps == pytest.approx([0.25] * 8)
    assert send_times[0] == start  # the first goes at once
    assert fake.now - start == pytest.approx(2.0)


def test_a_slow_send_pushes_the_next_one_back(dlq: DeadLetterStore) -> None:
    world = World()
    for i in range(3):
        world.dead_letter(dlq, f"k-{i}")
    fake = FakeTime()
    spans: list[tuple[float, float]] = []

    def send(letter: DeadLetter, to: str | None) -> None:
        started = fake.clock()
        fake.now += 0.15 if not spans else 0.01  # the first send opens the connection
        spans.append((started, fake.clock()))

    replay(dlq, world.store, dlq.iter(), send, rate=4.0, sleep=fake.sleep, clock=fake.clock)

    # The queue sees each message somewhere within its send: a send starts a whole
    # interval after the previous one returned, never sooner.
    starts_after_previous_end = [b[0] - a[1] for a, b in pairwise(spans)]
    assert starts_after_previous_end == pytest.approx([0.25, 0.25])


def test_no_rate_means_no_sleep(dlq: DeadLetterStore) -> None:
    world = World()
    for i in range(3):
        world.dead_letter(dlq, f"k-{i}")
    fake = FakeTime()
    replay(dlq, world.store, dlq.iter(), Outbox(), sleep=fake.sleep, clock=fake.clock)
    assert fake.slept == []


def test_limit_caps_the_letters_looked_at(dlq: DeadLetterStore) -> None:
    world = World()
    ids = [world.dead_letter(dlq, f"k-{i}") for i in range(5)]

    summary = replay(dlq, world.store, dlq.iter(LetterFilter(tool="book_slot")), Outbox(), limit=2)

    assert [r.letter_id for r in summary.results] == ids[:2]
    assert [x.id for x in dlq.list().letters] == ids[2:]


def test_each_result_is_reported_as_it_happens(dlq: DeadLetterStore) -> None:
    world = World()
    for i in range(3):
        world.dead_letter(dlq, f"k-{i}")
    seen: list[ReplayResult] = []

    summary = replay(dlq, world.store, dlq.iter(), Outbox(), on_result=seen.append)

    assert seen == summary.results and len(seen) == 3


@pytest.mark.parametrize("bad", [{"rate": 0.0}, {"rate": -1.0}, {"limit": -1}])
def test_nonsense_pacing_is_refused(dlq: DeadLetterStore, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replay(dlq, None, [], Outbox(), **bad)
