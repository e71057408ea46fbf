"""The executor's decisions, on the in-memory store: every outcome and poison reason."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

from intentq import Registry, Retry, ToolContext, TransientError
from intentq.consumers.stub import StubBroker, StubWorker
from intentq.dedup.base import Acquired, Busy, State
from intentq.dedup.memory import MemoryDedupStore
from intentq.dlq.memory import MemoryDeadLetterStore
from intentq.errors import StoreUnavailable
from intentq.executor import Executor
from intentq.intent import Intent
from intentq.outcome import Ack, AlreadyDead, Delivery, RetryLater, SendToDLQ
from intentq.policy import Policy
from tests.support.net import wait_until

DELIVERY = Delivery(transport="memory", queue="q", message_id="m-1")


class Slot(BaseModel):
    slot: str


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class World:
    """A registry of test tools with call counters, a store and an executor."""

    def __init__(self, policy: Policy | None = None, store: Any = None) -> None:
        self.calls: dict[str, int] = {}
        self.clock = Clock()
        self.store = store or MemoryDedupStore(clock=self.clock)
        self.registry = Registry()
        self.release = threading.Event()
        self.started = threading.Event()
        reg = self.registry

        def count(name: str) -> int:
            self.calls[name] = self.calls.get(name, 0) + 1
            return self.calls[name]

        @reg.tool("book", args=Slot)
        def book(args: Slot, ctx: ToolContext) -> dict[str, Any]:
            count("book")
            return {"slot": args.slot, "attempt": ctx.attempt}

        @reg.tool("falsy")
        def falsy(args: dict[str, Any], ctx: ToolContext) -> Any:
            count("falsy")
            return args["value"]

        @reg.tool("flaky", max_attempts=3)
        def flaky(args: dict[str, Any], ctx: ToolContext) -> str:
            if count("flaky") <= args["fail_times"]:
                raise TransientError("try again")
            return "ok"

        @reg.tool("timeout", retry_on=(KeyError,))
        def timeout(args: dict[str, Any], ctx: ToolContext) -> str:
            count("timeout")
            raise {"t": TimeoutError("slow"), "k": KeyError("x"), "c": ConnectionError("x")}[
                args["e"]
            ]

        @reg.tool("broken")
        def broken(args: dict[str, Any], ctx: ToolContext) -> str:
            count("broken")
            raise ValueError("bad input downstream")

        @reg.tool("later")
        def later(args: dict[str, Any], ctx: ToolContext) -> str:
            count("later")
            raise Retry(7.5)

        @reg.tool("unjsonable")
        def unjsonable(args: dict[str, Any], ctx: ToolContext) -> object:
            count("unjsonable")
            return object()

        @reg.tool("slow", lease=0.3)
        def slow(args: dict[str, Any], ctx: ToolContext) -> str:
            count("slow")
            self.started.set()
            assert self.release.wait(10)
            return "done"

        self.executor = Executor(self.registry, self.store, policy or Policy(backoff_base=2.0))

    def run(self, intent: Intent, delivery: Delivery = DELIVERY, **kw: Any) -> Any:
        return self.executor.process(intent.to_json(), delivery, **kw)


@pytest.fixture
def world() -> World:
    return World()


def test_first_delivery_runs_and_acks(world: World) -> None:
    out = world.run(Intent.create("book", {"slot": "15:00"}, key="k1"))
    assert out == Ack({"slot": "15:00", "attempt": 1}, cached=False)
    record = world.store.get("book", "k1")
    assert record is not None and record.state is State.COMPLETED


def test_duplicates_get_the_first_result_without_running(world: World) -> None:
    first = world.run(Intent.create("book", {"slot": "15:00"}, key="k1"))
    for _ in range(4):
        dup = world.run(Intent.create("book", {"slot": "15:00"}, key="k1"))
        assert dup == Ack(first.result, cached=True)
    assert world.calls["book"] == 1


@pytest.mark.parametrize("value", [0, False, "", [], {}, None])
def test_falsy_results_are_cached(world: World, value: Any) -> None:
    world.run(Intent.create("falsy", {"value": value}, key="f"))
    again = world.run(Intent.create("falsy", {"value": value}, key="f"))
    assert again == Ack(value, cached=True)
    assert world.calls["falsy"] == 1


def test_duplicate_while_first_runs_is_deferred_without_spending(world: World) -> None:
    intent = Intent.create("slow", {}, key="s")
    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.append(world.run(intent)))
    runner.start()
    assert world.started.wait(5)
    dup = world.run(intent)
    assert isinstance(dup, RetryLater)
    assert dup.spend_attempt is False
    assert 0 < dup.delay <= 0.3
    world.release.set()
    runner.join(10)
    assert results == [Ack("done")]
    assert world.calls["slow"] == 1


def test_busy_recheck_grows_with_deliveries_and_never_passes_the_lease() -> None:
    w = World()
    intent = Intent.create("book", {"slot": "1"}, key="busy")
    owner = w.store.claim("book", "busy", intent.fingerprint, lease=300)
    assert isinstance(owner, Acquired)
    delays = []
    for receive_count in (1, 2, 3, 12):
        out = w.run(intent, Delivery("sqs", "q", "m", receive_count=receive_count))
        assert isinstance(out, RetryLater) and out.spend_attempt is False
        delays.append(out.delay)
    assert 0.25 <= delays[0] <= 0.5  # a fast tool's duplicate looks again soon
    assert 0.5 <= delays[1] <= 1.0 and 1.0 <= delays[2] <= 2.0
    assert delays[3] <= 300  # capped by the owner's lease
    assert "book" not in w.calls


def test_heartbeat_keeps_a_long_tool_leased() -> None:
    """The tool runs for 3x its lease on the real clock; the lease never lapses."""
    w = World(store=MemoryDedupStore())
    beats: list[int] = []
    intent = Intent.create("slow", {}, key="long")
    results: list[Any] = []
    runner = threading.Thread(
        target=lambda: results.append(w.run(intent, heartbeat=lambda: beats.append(1)))
    )
    runner.start()
    assert w.started.wait(5)
    deadline = time.monotonic() + 0.9  # three leases of 0.3 s
    while time.monotonic() < deadline:
        assert isinstance(w.store.claim("slow", "long", intent.fingerprint), Busy)
        time.sleep(0.05)
    w.release.set()
    runner.join(10)
    assert results == [Ack("done")]
    assert len(beats) >= 3  # the transport's heartbeat (visibility) was called too


def test_transient_failure_releases_and_backs_off(world: World) -> None:
    intent = Intent.create("flaky", {"fail_times": 2}, key="fl")
    first = world.run(intent)
    assert isinstance(first, RetryLater) and first.spend_attempt
    assert 0 <= first.delay <= 2.0  # full jitter under base * 2**0
    record = world.store.get("flaky", "fl")
    assert record is not None and record.token == "" and record.attempts == 1
    second = world.run(intent)
    assert isinstance(second, RetryLater) and 0 <= second.delay <= 4.0
    assert world.run(intent) == Ack("ok")
    assert world.calls["flaky"] == 3
    assert world.store.get("flaky", "fl").attempts == 3  # type: ignore[union-attr]


def test_transient_failures_past_max_attempts_are_exhausted(world: World) -> None:
    intent = Intent.create("flaky", {"fail_times": 99}, key="ex")
    outcomes = [world.run(intent) for _ in range(3)]
    assert [type(o) for o in outcomes] == [RetryLater, RetryLater, SendToDLQ]
    letter = outcomes[-1].letter
    assert (letter.reason, letter.error_type, letter.attempts) == ("exhausted", "TransientError", 3)
    assert "try again" in (letter.traceback or "")
    assert isinstance(world.run(Intent.create("flaky", {"fail_times": 99}, key="ex")), AlreadyDead)
    assert world.calls["flaky"] == 3


@pytest.mark.parametrize("kind", ["t", "k", "c"])
def test_timeouts_connection_errors_and_retry_on_are_retryable(world: World, kind: str) -> None:
    out = world.run(Intent.create("timeout", {"e": kind}))
    assert isinstance(out, RetryLater) and out.spend_attempt


def test_retry_exception_sets_the_delay(world: World) -> None:
    out = world.run(Intent.create("later", {}))
    assert out == RetryLater(7.5, spend_attempt=True, why=out.why)


def test_permanent_error_dead_letters_at_once(world: World) -> None:
    intent = Intent.create("broken", {}, key="b")
    out = world.run(intent)
    assert isinstance(out, SendToDLQ)
    assert (out.reason, out.letter.error_type, out.letter.attempts) == (
        "permanent",
        "ValueError",
        1,
    )
    assert out.letter.body == intent.to_json()
    assert (out.letter.tool, out.letter.key, out.letter.intent_id) == (
        "broken",
        "b",
        intent.intent_id,
    )
    assert out.letter.source_transport == "memory" and out.letter.source_queue == "q"
    dup = world.run(Intent.create("broken", {}, key="b"))
    assert isinstance(dup, AlreadyDead) and dup.error["reason"] == "permanent"
    assert world.calls["broken"] == 1


def test_unserialisable_result_is_permanent_and_never_rerun(world: World) -> None:
    intent = Intent.create("unjsonable", {}, key="u")
    assert isinstance(world.run(intent), SendToDLQ)
    assert isinstance(world.run(Intent.create("unjsonable", {}, key="u")), AlreadyDead)
    assert world.calls["unjsonable"] == 1


def test_key_reuse_with_other_args_is_a_mismatch(world: World) -> None:
    world.run(Intent.create("book", {"slot": "15:00"}, key="same"))
    out = world.run(Intent.create("book", {"slot": "16:00"}, key="same"))
    assert isinstance(out, SendToDLQ) and out.reason == "key_reuse_mismatch"
    assert world.run(Intent.create("book", {"slot": "15:00"}, key="same")) == Ack(
        {"slot": "15:00", "attempt": 1}, cached=True
    )


def test_crash_loop_is_dead_lettered_without_running(world: World) -> None:
    """Owners that never finish: each claim takes over the last; past max_attempts, dead."""
    intent = Intent.create("book", {"slot": "9"}, key="crash")
    for attempt in range(1, 6):
        claim = world.store.claim("book", "crash", intent.fingerprint, lease=1)
        assert isinstance(claim, Acquired) and claim.attempt == attempt
        world.clock.now += 2  # the owner died; its lease ran out
    out = world.run(intent)
    assert isinstance(out, SendToDLQ)
    assert (out.reason, out.letter.attempts) == ("crash_loop", 6)
    assert "book" not in world.calls


def test_too_many_receives_is_dead_lettered(world: World) -> None:
    intent = Intent.create("book", {"slot": "9"})
    out = world.run(intent, Delivery("sqs", "q", "m", receive_count=51))
    assert isinstance(out, SendToDLQ) and out.reason == "crash_loop"
    assert "book" not in world.calls


def test_lost_lease_gives_the_message_back_without_overwriting_the_new_owner(
    world: World,
) -> None:
    intent = Intent.create("book", {"slot": "1"}, key="lost")
    job = world.executor.prepare(intent.to_json(), DELIVERY)
    assert not isinstance(job, SendToDLQ)
    claim = world.store.claim("book", "lost", intent.fingerprint, lease=1)
    assert isinstance(claim, Acquired)
    world.clock.now += 2
    taker = world.store.claim("book", "lost", intent.fingerprint, lease=100)
    assert isinstance(taker, Acquired) and taker.takeover
    out = world.executor.resolve(job, claim)
    # Given back, not acked: the new owner may hold only an older delivery of the message
    assert isinstance(out, RetryLater) and out.cause == "lease_lost"
    assert not out.spend_attempt
    record = world.store.get("book", "lost")
    assert record is not None and record.state is State.IN_PROGRESS and record.token == taker.token


class DownStore(MemoryDedupStore):
    """A store whose every call fails as an unreachable server's would."""

    def __init__(self, fail_complete_times: int = 10**9, down_claims: bool = True) -> None:
        super().__init__()
        self.fail_complete_times = fail_complete_times
        self.down_claims = down_claims

    def claim(self, *a: Any, **k: Any) -> Any:
        if self.down_claims:
            raise StoreUnavailable("connection refused")
        return super().claim(*a, **k)

    def complete(self, *a: Any, **k: Any) -> None:
        if self.fail_complete_times > 0:
            self.fail_complete_times -= 1
            raise StoreUnavailable("connection refused")
        super().complete(*a, **k)


def test_store_outage_never_runs_the_tool() -> None:
    w = World(store=DownStore())
    out = w.run(Intent.create("book", {"slot": "1"}))
    assert isinstance(out, RetryLater) and out.spend_attempt is False
    assert w.calls == {}


def test_completion_is_retried_through_a_short_outage() -> None:
    w = World(store=DownStore(fail_complete_times=3, down_claims=False))
    intent = Intent.create("book", {"slot": "1"}, key="c")
    assert w.run(intent) == Ack({"slot": "1", "attempt": 1})
    assert w.store.get("book", "c").state is State.COMPLETED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "reason", "error_type"),
    [
        (b"{nope", "poison", "InvalidIntent.malformed_json"),
        (b"[]", "poison", "InvalidIntent.not_an_object"),
        (b'{"v": 9}', "poison", "InvalidIntent.unsupported_version"),
        (b'{"v": 1}', "poison", "InvalidIntent.missing_field"),
        (b"x" * 2000, "poison", "InvalidIntent.too_large"),
    ],
)
def test_poison_bodies(body: bytes, reason: str, error_type: str) -> None:
    w = World(policy=Policy(max_message_bytes=1000))
    out = w.executor.process(body, DELIVERY)
    assert isinstance(out, SendToDLQ)
    assert (out.reason, out.letter.error_type, out.letter.body) == (reason, error_type, body)


def test_bad_key_is_poison(world: World) -> None:
    body = Intent.create("book", {"slot": "1"}).to_json().replace(b'"key":"', b'"key":"bad key ')
    out = world.executor.process(body, DELIVERY)
    assert isinstance(out, SendToDLQ) and out.letter.error_type == "InvalidIntent.bad_key"


def test_unknown_tool_and_schema_failures(world: World) -> None:
    unknown = world.run(Intent.create("cancel", {}))
    assert isinstance(unknown, SendToDLQ) and unknown.reason == "unknown_tool"
    assert unknown.letter.tool == "cancel"
    bad = world.run(Intent.create("book", {"slot": 15}, key="sch"))
    assert isinstance(bad, SendToDLQ) and bad.reason == "schema"
    assert "slot" in (bad.letter.error_message or "") and bad.letter.key == "sch"
    # Refused before running, the key is left failed with its letter's id: a waiter learns
    # of the dead letter in one store read.
    record = world.store.get("book", "sch")
    assert record is not None and record.state is State.FAILED
    assert record.error is not None and record.error["letter_id"] == bad.letter.id


def test_redelivery_of_a_failed_message_writes_its_letter_again(world: World) -> None:
    """If the transport could not write the letter, the same message brings it back."""
    intent = Intent.create("broken", {}, key="again")
    first = world.run(intent)
    assert isinstance(first, SendToDLQ) and first.letter.id
    again = world.run(intent, Delivery("sqs", "q", "m-1", receive_count=2))
    assert isinstance(again, SendToDLQ)
    assert again.letter.id == first.letter.id  # stores upsert by id: still one letter
    assert (again.reason, again.letter.error_type, again.letter.attempts) == (
        "permanent",
        "ValueError",
        1,
    )
    other = world.run(Intent.create("broken", {}, key="again"))  # a new message, same key
    assert isinstance(other, AlreadyDead)
    assert world.calls["broken"] == 1


class HiccupStore(MemoryDedupStore):
    """Real clock; the first heartbeat extension fails as an unreachable store's would."""

    def __init__(self) -> None:
        super().__init__()
        self.extend_failures = 1
        self.extends = 0

    def extend(self, *a: Any, **k: Any) -> float:
        if self.extend_failures > 0:
            self.extend_failures -= 1
            raise StoreUnavailable("connection reset")
        self.extends += 1
        return super().extend(*a, **k)


def test_heartbeat_survives_a_failed_extension() -> None:
    w = World(store=HiccupStore())
    intent = Intent.create("slow", {}, key="hiccup")
    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.append(w.run(intent)))
    runner.start()
    assert w.started.wait(5)
    wait_until(lambda: w.store.extends >= 3, timeout=10, what="three good extensions")
    assert isinstance(w.store.claim("slow", "hiccup", intent.fingerprint), Busy)
    w.release.set()
    runner.join(10)
    assert results == [Ack("done")]


# -- through the stub transport: the executor's answers carried out by a worker ------------


def stub_worker(w: World, broker: StubBroker, **options: Any) -> StubWorker:
    """A worker with the world's tools, store and policy (its own executor)."""
    return StubWorker(
        broker, w.registry, w.store, MemoryDeadLetterStore(), policy=w.executor.policy, **options
    )


def test_a_transient_failure_comes_back_after_its_backoff_until_it_succeeds() -> None:
    w = World(store=MemoryDedupStore(), policy=Policy(backoff_base=0.2))
    called_at: list[float] = []

    @w.registry.tool("fails_twice", max_attempts=3)
    def fails_twice(args: dict[str, Any], ctx: ToolContext) -> str:
        called_at.append(time.monotonic())
        if ctx.attempt < 3:
            raise TransientError("try again")
        return "ok"

    broker = StubBroker()
    broker.send(Intent.create("fails_twice", {}, key="fl"))
    worker = stub_worker(w, broker)
    worker.drain(timeout=10)

    outcomes = [outcome for _, outcome in worker.outcomes]
    assert [type(o) for o in outcomes] == [RetryLater, RetryLater, Ack]
    assert outcomes[-1] == Ack("ok")
    assert [received.receive_count for received, _ in worker.outcomes] == [1, 2, 3]
    delays = [o.delay for o in outcomes if isinstance(o, RetryLater)]
    assert 0 <= delays[0] <= 0.2 and 0 <= delays[1] <= 0.4  # full jitter, doubling
    # each redelivery waited for its backoff, no less
    gaps = [later - earlier for earlier, later in itertools.pairwise(called_at)]
    assert all(gap >= delay - 0.01 for gap, delay in zip(gaps, delays, strict=True)), gaps
    assert w.store.get("fails_twice", "fl").attempts == 3  # type: ignore[union-attr]
    assert broker.depth() == (0, 0)


def test_the_heartbeat_keeps_a_long_tool_s_message_hidden() -> None:
    """The tool runs for 3x its lease and the visibility timeout; nobody else sees it."""
    w = World(store=MemoryDedupStore())
    broker = StubBroker()
    intent = Intent.create("slow", {}, key="hidden")
    broker.send(intent)
    with stub_worker(w, broker, visibility=0.3) as worker:
        assert w.started.wait(5)
        deadline = time.monotonic() + 0.9
        while time.monotonic() < deadline:
            assert broker.depth() == (0, 1)  # in flight all along: never visible again
            assert isinstance(w.store.claim("slow", "hidden", intent.fingerprint), Busy)
            time.sleep(0.05)
        w.release.set()
        worker.join(10)
    assert [(r.receive_count, o) for r, o in worker.outcomes] == [(1, Ack("done"))]
    assert w.calls["slow"] == 1


def test_a_duplicate_delivery_gets_the_first_result_without_running() -> None:
    w = World(store=MemoryDedupStore())
    broker = StubBroker()
    message_id = broker.send(Intent.create("book", {"slot": "15:00"}, key="dup"))
    broker.duplicate(message_id)
    worker = stub_worker(w, broker, concurrency=1)
    worker.drain(timeout=10)
    first, again = (outcome for _, outcome in worker.outcomes)
    assert first == Ack({"slot": "15:00", "attempt": 1})
    assert again == Ack(first.result, cached=True)
    assert w.calls["book"] == 1


def test_poison_is_written_to_the_dlq_then_acked() -> None:
    w = World(store=MemoryDedupStore())
    broker, dlq = StubBroker(), MemoryDeadLetterStore()
    broker.send_body(b"{nope")
    StubWorker(broker, w.registry, w.store, dlq).drain(timeout=10)
    (letter,) = list(dlq.iter())
    assert (letter.reason, letter.body, letter.source_transport) == ("poison", b"{nope", "stub")
    assert broker.depth() == (0, 0)
