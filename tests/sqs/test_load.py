"""A mixed load through a real SQS server: duplicates run once, every poison is dead-lettered."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from intentq import Intent, Producer
from intentq.dedup import State
from intentq.dlq import DeadLetterStore, Reason
from intentq.dlq.sql import SqlDeadLetterStore
from intentq.dlq.sqs.store import SqsDeadLetterStore
from intentq.registry import Registry
from tests.sqs.conftest import StoreConfig, queue_depth, running, settings_for
from tests.sqs.tools import Effects
from tests.support.net import wait_until
from tests.support.services import SqsServer

# The worker's size limit, small so that an oversized poison stays within SQS's own.
MAX_BYTES = 8192


def _body(
    tool: str, args: dict[str, Any], key: str, changes: dict[str, Any] | None = None
) -> bytes:
    envelope = Intent.create(tool, args, key=key).as_dict()
    envelope.update(changes or {})
    return json.dumps(envelope).encode()


def _without(field: str) -> bytes:
    envelope = Intent.create("book", {"slot": "x"}).as_dict()
    del envelope[field]
    return json.dumps(envelope).encode()


def poison_messages() -> list[tuple[bytes, Reason, str]]:
    """18 bodies, two of each kind a transport can refuse before any claim."""
    kinds: list[tuple[Callable[[int], bytes], Reason, str]] = [
        (lambda i: b'{"v": 1, "tool": ' + str(i).encode(), Reason.POISON, "malformed_json"),
        (lambda i: json.dumps([i, "not an object"]).encode(), Reason.POISON, "not_an_object"),
        (
            lambda i: _body("book", {"slot": f"v{i}"}, f"ver-{i}", {"v": 2}),
            Reason.POISON,
            "unsupported_version",
        ),
        (lambda i: _without("tool"), Reason.POISON, "missing_field"),
        (
            lambda i: _body("book", {"slot": "k"}, "x", {"key": f"bad key {i}"}),
            Reason.POISON,
            "bad_key",
        ),
        (
            lambda i: _body("book", {"slot": "x" * MAX_BYTES}, f"big-{i}"),
            Reason.POISON,
            "too_large",
        ),
        (
            lambda i: _body("no_such_tool", {}, f"unknown-{i}"),
            Reason.UNKNOWN_TOOL,
            "UnknownTool",
        ),
        (lambda i: _body("book", {"n": i}, f"noslot-{i}"), Reason.SCHEMA, "InvalidArgs"),
        (
            lambda i: _body("book", {"slot": [i]}, f"listslot-{i}"),
            Reason.SCHEMA,
            "InvalidArgs",
        ),
    ]
    return [(make(i), reason, kind) for make, reason, kind in kinds for i in range(2)]


@pytest.fixture
def dlq_for(
    sqs_server: SqsServer, pg_url: str, unique: str
) -> Iterator[Callable[[str], DeadLetterStore]]:
    """The SQS DLQ beside the Redis store, the SQL DLQ beside the PostgreSQL one."""
    opened: list[DeadLetterStore] = []

    def open_for(kind: str) -> DeadLetterStore:
        dlq: DeadLetterStore
        if kind == "redis":
            url = sqs_server.new_queue(f"dlq-{unique}")
            dlq = SqsDeadLetterStore.from_url(
                f"sqs+{url}",
                region="us-east-1",
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )
        else:
            dlq = SqlDeadLetterStore.from_url(pg_url, table_name=f"sqs_dlq_{unique}")
        dlq.create_schema()
        opened.append(dlq)
        return dlq

    yield open_for
    for dlq in opened:
        if isinstance(dlq, SqlDeadLetterStore):
            import sqlalchemy as sa

            with dlq.engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS sqs_dlq_{unique}"))
        dlq.close()


def test_each_intent_runs_once_and_every_poison_is_dead_lettered(
    sqs_server: SqsServer,
    sqs: Any,
    any_store: StoreConfig,
    effects: Effects,
    registry: Registry,
    make_worker: Callable[..., Any],
    dlq_for: Callable[[str], DeadLetterStore],
) -> None:
    kind = "redis" if any_store.url.startswith("redis") else "postgres"
    count = 500
    url = sqs_server.new_queue()
    settings = settings_for(sqs_server, url, any_store, max_message_bytes=MAX_BYTES)
    store = any_store.open()
    dlq = dlq_for(kind)
    worker = make_worker(settings, registry, store, dlq)
    keys = [f"booking-{i}" for i in range(count)]
    poison = poison_messages()

    with Producer(settings, registry, sqs_client=sqs) as producer, running(worker) as thread:
        # Given intents, a duplicate enqueue for one in five, and poison mixed in
        items = [("book", {"slot": f"s{i}"}, key) for i, key in enumerate(keys)]
        items += [("book", {"slot": f"s{i}"}, keys[i]) for i in range(0, count, count // 100)]
        producer.enqueue_many(items[: count // 2])
        for body, _, _ in poison[:9]:
            sqs.send_message(QueueUrl=url, MessageBody=body.decode())
        producer.enqueue_many(items[count // 2 :])
        for body, _, _ in poison[9:]:
            sqs.send_message(QueueUrl=url, MessageBody=body.decode())
        # and, once their first use has run, two keys reused with other arguments
        wait_until(lambda: effects.counts()["booking-0"] and effects.counts()["booking-1"])
        for i in range(2):
            producer.send_raw(_body("book", {"slot": "elsewhere"}, keys[i]))

        # Then every valid key runs, the poison is dead-lettered and the queue drains
        wait_until(lambda: sum(effects.counts().values()) >= count, timeout=90, what="effects")
        wait_until(lambda: dlq.count() >= len(poison) + 2, timeout=30, what="dead letters")
        wait_until(lambda: queue_depth(sqs, url) == (0, 0), timeout=30, what="an empty queue")

        # and the worker is still serving
        assert thread.is_alive()
        producer.enqueue("book", {"slot": "late"}, key="late-one")
        wait_until(lambda: effects.counts()["late-one"] == 1, timeout=30, what="a late intent")

    done = effects.counts()
    assert sorted(done) == sorted([*keys, "late-one"])
    assert set(done.values()) == {1}, {k: n for k, n in done.items() if n != 1}
    record = store.get("book", keys[0])
    assert record is not None and record.state is State.COMPLETED
    assert record.result == {"slot": "s0"}

    letters = list(dlq.iter())
    assert len(letters) == len(poison) + 2
    expected = Counter((str(r), k) for _, r, k in poison)
    expected[(str(Reason.KEY_REUSE_MISMATCH), "KeyReuseMismatch")] = 2
    got = Counter(
        (str(x.reason), (x.error_type or "").removeprefix("InvalidIntent.")) for x in letters
    )
    assert got == expected
    assert all(x.source_transport == "sqs" and x.source_queue == worker.queue.name for x in letters)
    assert {x.key for x in letters if x.reason is Reason.KEY_REUSE_MISMATCH} == set(keys[:2])
    store.close()
