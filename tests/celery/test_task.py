"""``IdempotentTask`` in-process (Celery's ``apply``), on the in-memory store and DLQ.

Each outcome of the executor becomes the task's return value, a Celery retry, or
``DeadLettered``; real workers and brokers are in the ``test_*_broker`` modules.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import celery
import pytest
from celery.exceptions import Retry as CeleryRetry

from intentq import Registry, ToolContext, TransientError
from intentq.config import Settings
from intentq.consumers.celery import (
    DeadLettered,
    IdempotentTask,
    configure_app,
    create_app,
    runtime_of,
)
from intentq.consumers.celery.task import LETTER_KWARG
from intentq.dedup.base import State
from intentq.dedup.memory import MemoryDedupStore
from intentq.dlq import open_dlq
from intentq.dlq.base import Reason
from intentq.dlq.memory import MemoryDeadLetterStore
from intentq.intent import Intent

SETTINGS = Settings(broker_url="memory://", max_attempts=3, backoff_base=0.01, backoff_max=0.02)


def deliver(task: Any, intent: Intent, **kwargs: Any) -> Any:
    """Call ``task`` as a worker does: a retry is then really sent, to the in-memory broker."""
    queue = runtime_of(task.app).settings.celery_queue
    task.push_request(
        id=intent.intent_id,
        args=[intent.as_dict()],
        kwargs=kwargs,
        retries=0,
        called_directly=False,
        is_eager=False,
        delivery_info={"exchange": "", "routing_key": queue},
    )
    try:
        return task(intent.as_dict(), **kwargs)
    finally:
        task.pop_request()


def receive(app: Any) -> Any:
    """The next message on the app's queue."""
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(runtime_of(app).settings.celery_queue)
        try:
            message = simple.get(timeout=2)
            message.ack()
            return message
        finally:
            simple.close()


class World:
    """A registry whose tools count their calls, a store, a DLQ and an app over them."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.store = MemoryDedupStore()
        self.dlq = MemoryDeadLetterStore()
        self.registry = Registry()

        @self.registry.tool("book")
        def book(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            self.calls["book"] = self.calls.get("book", 0) + 1
            return {"slot": args["slot"], "intent": ctx.intent_id}

        @self.registry.tool("flaky")
        def flaky(args: dict[str, Any], ctx: ToolContext) -> str:
            raise TransientError("later")

        @self.registry.tool("broken")
        def broken(args: dict[str, Any], ctx: ToolContext) -> str:
            raise ValueError("never works")

        settings = SETTINGS.model_copy(update={"celery_queue": f"q-{os.urandom(6).hex()}"})
        self.app = create_app(settings, self.registry, dedup=self.store, dlq=self.dlq)

    def run(self, intent: Intent, **kwargs: Any) -> Any:
        task = self.app.tasks[f"intentq.{intent.tool}"]
        return task.apply(args=[intent.as_dict()], kwargs=kwargs, task_id=intent.intent_id)


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.app.close()


def test_a_duplicate_returns_the_first_result_without_running_again(world: World) -> None:
    first = world.run(Intent.create("book", {"slot": "9:00"}, key="k-1"))
    second = world.run(Intent.create("book", {"slot": "9:00"}, key="k-1"))

    assert (first.state, second.state) == ("SUCCESS", "SUCCESS")
    assert second.result == first.result
    assert world.calls["book"] == 1


def test_a_transient_error_is_retried_by_celery_with_the_same_task_id(world: World) -> None:
    intent = Intent.create("flaky", {}, key="k-2")

    with pytest.raises(CeleryRetry):
        deliver(world.app.tasks["intentq.flaky"], intent)

    message = receive(world.app)
    assert (message.headers["id"], message.headers["retries"]) == (intent.intent_id, 1)
    assert message.headers["eta"] is not None
    assert message.decode()[0] == [intent.as_dict()]
    record = world.store.get("flaky", "k-2")
    assert record is not None
    assert (record.state, record.attempts, record.token) == (State.IN_PROGRESS, 1, "")


def test_transient_errors_past_max_attempts_are_dead_lettered_as_exhausted(
    world: World,
) -> None:
    # ``apply`` runs Celery's retries at once, in-process: three attempts, then the DLQ.
    result = world.run(Intent.create("flaky", {}, key="k-6"))

    assert result.state == "FAILURE"
    assert result.result.reason == "exhausted"
    assert world.dlq.get(result.result.letter_id).attempts == 3


def test_a_permanent_error_is_dead_lettered_and_raised_as_dead_lettered(world: World) -> None:
    intent = Intent.create("broken", {}, key="k-3")

    result = world.run(intent)

    assert result.state == "FAILURE"
    assert isinstance(result.result, DeadLettered)
    assert result.result.reason == "permanent"
    letter = world.dlq.get(result.result.letter_id)
    assert (letter.reason, letter.key, letter.error_type) == (Reason.PERMANENT, "k-3", "ValueError")
    assert Intent.parse(letter.body) == intent


def test_a_duplicate_of_a_dead_intent_fails_without_a_second_letter(world: World) -> None:
    world.run(Intent.create("broken", {}, key="k-4"))

    again = world.run(Intent.create("broken", {}, key="k-4"))

    assert again.state == "FAILURE"
    assert isinstance(again.result, DeadLettered)
    assert again.result.letter_id is None
    assert world.dlq.count() == 1


def test_a_letter_the_dlq_refused_rides_along_with_the_retry(world: World) -> None:
    # A DLQ that cannot be reached: a real connection refused, not a stand-in.
    unreachable = open_dlq("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    settings = runtime_of(world.app).settings
    down = create_app(settings, world.registry, dedup=world.store, dlq=unreachable)
    intent = Intent.create("broken", {}, key="k-5")
    try:
        with pytest.raises(CeleryRetry):
            deliver(down.tasks["intentq.broken"], intent)
        kwargs = receive(down).decode()[1]
    finally:
        down.close()
        unreachable.close()
    assert LETTER_KWARG in kwargs
    assert world.dlq.count() == 0

    delivered = world.run(intent, **kwargs)

    assert delivered.state == "FAILURE"
    letter = world.dlq.get(delivered.result.letter_id)
    assert (letter.reason, letter.key, letter.body) == (Reason.PERMANENT, "k-5", intent.to_json())


def test_a_plain_task_on_an_existing_app_runs_once_per_idempotency_key() -> None:
    store, calls = MemoryDedupStore(), []
    app = celery.Celery("shop", broker="memory://", set_as_current=False)
    configure_app(app, SETTINGS, dedup=store, dlq=MemoryDeadLetterStore())

    @app.task(base=IdempotentTask, name="shop.charge", shared=False)
    def charge(order: str, amount: int) -> dict[str, Any]:
        calls.append(order)
        return {"order": order, "amount": amount}

    try:
        first = charge.apply(args=["o-1", 5], kwargs={"idempotency_key": "pay-1"})
        second = charge.apply(args=["o-1", 5], kwargs={"idempotency_key": "pay-1"})
        other = charge.apply(args=["o-2", 5])
    finally:
        app.close()

    assert first.result == second.result == {"order": "o-1", "amount": 5}
    assert other.result == {"order": "o-2", "amount": 5}
    assert calls == ["o-1", "o-2"]
    record = store.get("shop.charge", other.id)  # no key given: the task id is the key
    assert record is not None
    assert record.state == State.COMPLETED


def test_each_process_opens_its_own_store(world: World) -> None:
    app = create_app(SETTINGS, world.registry)  # the store from settings: memory://
    runtime = runtime_of(app)
    parent = runtime.executor()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it got a fresh executor and store
        try:
            child = runtime.executor()
            fresh = child is not parent and child.store is not parent.store
            os.write(write, b"1" if fresh and runtime.executor() is child else b"0")
        finally:
            os._exit(0)
    os.close(write)
    try:
        answer = os.read(read, 1)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
        runtime.close()
        app.close()
    assert answer == b"1"
