"""A received batch's results are recorded in one store call, before any of its messages is
deleted; a fenced entry is handled alone, and a failed batch call falls back to recording
each result on its own."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table

from intentq import Producer, Registry, ToolContext
from intentq.dedup.base import Claim, ClaimRequest, CompleteRequest, DedupStore, Record, State
from intentq.errors import LeaseLost, StoreUnavailable
from intentq.intent import fingerprint
from tests.sqs.conftest import StoreConfig, queue_depth, settings_for
from tests.support.services import SqsServer


class Recording(DedupStore):
    """A real store, with every call counted and the order of completions and deletes kept.

    ``fail_batches``: that many ``complete_many`` calls raise ``StoreUnavailable`` first.
    """

    def __init__(self, inner: DedupStore, fail_batches: int = 0) -> None:
        self.inner = inner
        self.prefix = inner.prefix
        self.calls: dict[str, int] = {}
        self.log: list[tuple[str, str]] = []  # ("answered" | "deleted", key), in order
        self.batches: list[int] = []  # entries per complete_many call
        self.fail_batches = fail_batches
        self.lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self.lock:
            self.calls[name] = self.calls.get(name, 0) + 1

    def _answered(self, keys: Sequence[str]) -> None:
        with self.lock:
            self.log.extend(("answered", key) for key in keys)

    def claim(
        self, tool: str, key: str, fingerprint: str, lease: float = 60, ttl: float = 60
    ) -> Claim:
        self._count("claim")
        return self.inner.claim(tool, key, fingerprint, lease, ttl)

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        self._count("claim_many")
        return self.inner.claim_many(requests)

    def complete(self, tool: str, key: str, token: str, result: Any, ttl: float = 60) -> None:
        self._count("complete")
        try:
            self.inner.complete(tool, key, token, result, ttl)
        finally:
            self._answered([key])

    def complete_many(self, requests: Sequence[CompleteRequest]) -> list[LeaseLost | None]:
        self._count("complete_many")
        with self.lock:
            if self.fail_batches:
                self.fail_batches -= 1
                raise StoreUnavailable("the test's outage")
            self.batches.append(len(requests))
        answers = self.inner.complete_many(requests)
        self._answered([r.key for r in requests])
        return answers

    def release(self, tool: str, key: str, token: str) -> None:
        self._count("release")
        self.inner.release(tool, key, token)

    def fail(self, tool: str, key: str, token: str, error: dict[str, Any], ttl: float = 60) -> None:
        self._count("fail")
        self.inner.fail(tool, key, token, error, ttl)

    def transaction(self, tool: str, key: str, token: str, ttl: float = 60) -> Any:
        self._count("transaction")
        return self.inner.transaction(tool, key, token, ttl)  # type: ignore[attr-defined]

    def extend(self, tool: str, key: str, token: str, lease: float = 60) -> float:
        return self.inner.extend(tool, key, token, lease)

    def get(self, tool: str, key: str) -> Record | None:
        return self.inner.get(tool, key)

    def forget(self, tool: str, key: str) -> bool:
        return self.inner.forget(tool, key)

    def reset(self, tool: str, key: str) -> bool:
        return self.inner.reset(tool, key)

    def watch_deletes(self, client: Any, keys: dict[str, str]) -> None:
        """Log each message's delete as the worker's SQS client sends it (boto3's own event
        hooks); ``keys`` maps receipt handles to idempotency keys."""

        def sent(params: dict[str, Any], **_: Any) -> None:
            with self.lock:
                self.log.extend(("deleted", keys[e["ReceiptHandle"]]) for e in params["Entries"])

        client.meta.events.register("provide-client-params.sqs.DeleteMessageBatch", sent)

    def order_is_safe(self) -> bool:
        """The store had answered every deleted message's completion (recorded, or fenced)
        before its delete went out."""
        answered: set[str] = set()
        for what, key in self.log:
            if what == "answered":
                answered.add(key)
            elif key not in answered:
                return False
        return True


def build_registry(store: Callable[[], DedupStore]) -> Registry:
    tools = Registry()

    @tools.tool("noop")
    def noop(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"n": args["n"]}

    @tools.tool("stolen")
    def stolen(args: dict[str, Any], ctx: ToolContext) -> str:
        # Another worker takes the key over while this one runs: its completion is fenced.
        inner = store()
        inner.forget(ctx.tool, ctx.key)
        inner.claim(ctx.tool, ctx.key, fingerprint(ctx.tool, args))
        return "late"

    return tools


@pytest.fixture
def world(
    sqs_server: SqsServer, sqs: Any, any_store: StoreConfig, make_worker: Callable[..., Any]
) -> Iterator[Callable[..., tuple[Any, Recording, list[dict[str, Any]], dict[str, str]]]]:
    """A queue holding one batch of intents, a worker on a recording store, the batch."""
    opened: list[DedupStore] = []

    def make(
        intents: Sequence[tuple[str, dict[str, Any], str]], fail_batches: int = 0
    ) -> tuple[Any, Recording, list[dict[str, Any]], dict[str, str]]:
        url = sqs_server.new_queue()
        settings = settings_for(sqs_server, url, any_store, concurrency=10)
        inner = any_store.open()
        opened.append(inner)
        store = Recording(inner, fail_batches)
        registry = build_registry(lambda: inner)
        with Producer(settings, registry, sqs_client=sqs) as producer:
            for tool, args, key in intents:
                producer.enqueue(tool, args, key=key)
        messages: list[dict[str, Any]] = []
        while len(messages) < len(intents):
            messages += sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=1
            ).get("Messages", [])
        handles = {m["ReceiptHandle"]: _key_of(m) for m in messages}
        worker = make_worker(settings, registry, store)
        store.watch_deletes(worker.client, handles)
        return worker, store, messages, handles

    yield make
    for store in opened:
        store.close()


def _key_of(message: dict[str, Any]) -> str:
    return str(json.loads(message["Body"])["key"])


def test_a_batch_is_recorded_in_one_store_call_before_any_delete(
    world: Callable[..., Any], sqs: Any
) -> None:
    # Given a received batch of ten intents
    worker, store, messages, _ = world([("noop", {"n": i}, f"k{i}") for i in range(10)])

    # When the worker processes it
    worker.process_batch(messages)

    # Then one store call claimed them, one recorded every result, none one by one
    assert store.calls == {"claim_many": 1, "complete_many": 1}
    assert store.batches == [10]
    # and every message was deleted, each only after its completion was recorded
    assert worker.settle_stats.deleted == 10
    assert store.order_is_safe(), store.log
    assert [what for what, _ in store.log].count("deleted") == 10
    for i in range(10):
        record = store.get("noop", f"k{i}")
        assert record is not None and (record.state, record.result) == (State.COMPLETED, {"n": i})
    assert queue_depth(sqs, worker.settings.sqs_queue) == (0, 0)


def test_a_fenced_entry_is_lease_lost_alone_and_its_message_is_given_back(
    world: Callable[..., Any],
) -> None:
    # Given a batch where another worker takes one key over while its tool runs
    intents = [("noop", {"n": i}, f"k{i}") for i in range(4)] + [("stolen", {}, "taken")]
    worker, store, messages, _ = world(intents)

    worker.process_batch(messages)

    # Then the results went in batch calls (the slower thief may miss the first), nothing
    # one by one; the four owners' results are in
    assert "complete" not in store.calls and sum(store.batches) == 5
    for i in range(4):
        record = store.get("noop", f"k{i}")
        assert record is not None and record.state is State.COMPLETED
    # and the fenced key is the new owner's, untouched
    taken = store.get("stolen", "taken")
    assert taken is not None and (taken.state, taken.result) == (State.IN_PROGRESS, None)
    # and the late finisher's message is given back, not deleted: the new owner may hold
    # only an older delivery of it
    assert worker.settle_stats.deleted == 4
    assert worker.settle_stats.released == 1
    assert store.order_is_safe(), store.log


def test_a_failed_batch_call_records_each_result_on_its_own_then_deletes(
    world: Callable[..., Any], sqs: Any
) -> None:
    # Given the store fails the batch call once
    worker, store, messages, _ = world(
        [("noop", {"n": i}, f"k{i}") for i in range(6)], fail_batches=1
    )

    # When the worker processes the batch
    worker.process_batch(messages)

    # Then each result was recorded one by one (the per-message retry path), then deleted
    assert store.calls["complete_many"] == 1 and store.calls["complete"] == 6
    assert store.order_is_safe(), store.log
    assert worker.settle_stats.deleted == 6
    for i in range(6):
        record = store.get("noop", f"k{i}")
        assert record is not None and record.state is State.COMPLETED
    assert queue_depth(sqs, worker.settings.sqs_queue) == (0, 0)


def test_transactional_tools_complete_one_by_one_in_their_own_transaction(
    sqs_server: SqsServer,
    sqs: Any,
    pg_url: str,
    unique: str,
    make_worker: Callable[..., Any],
) -> None:
    config = StoreConfig(pg_url, f"sqs-test-{unique}")
    url = sqs_server.new_queue()
    settings = settings_for(sqs_server, url, config, concurrency=10)
    inner = config.open()
    store = Recording(inner)
    table = Table(f"orders_{unique}", MetaData(), Column("n", Integer), Column("key", String))
    table.create(inner.engine)  # type: ignore[attr-defined]
    tools = Registry()

    @tools.tool("order", transactional=True)
    def order(args: dict[str, Any], ctx: ToolContext) -> int:
        ctx.session.execute(table.insert().values(n=args["n"], key=ctx.key))
        return int(args["n"])

    try:
        with Producer(settings, tools, sqs_client=sqs) as producer:
            for i in range(5):
                producer.enqueue("order", {"n": i}, key=f"o{i}")
        worker = make_worker(settings, tools, store)
        while worker.settle_stats.deleted < 5:
            worker.run_once(wait_seconds=1)
        # No batch completion: each committed with its tool's own rows
        assert "complete_many" not in store.calls and "complete" not in store.calls
        assert store.calls["transaction"] == 5
        for i in range(5):
            record = store.get("order", f"o{i}")
            assert record is not None and (record.state, record.result) == (State.COMPLETED, i)
        with inner.engine.connect() as conn:  # type: ignore[attr-defined]
            assert len(conn.execute(table.select()).all()) == 5
    finally:
        table.drop(inner.engine)  # type: ignore[attr-defined]
        inner.close()
