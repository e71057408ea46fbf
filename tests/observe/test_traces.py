"""One trace from ``Producer.enqueue`` through a real worker: the SQS worker and a Celery
worker, each run in this process in a thread (so the SDK's in-memory exporter sees their
spans), on the local SQS server and on RabbitMQ. A replayed dead letter starts a trace of its
own that links back to the first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from intentq import Producer
from intentq.config import Settings
from intentq.connections import open_store
from intentq.consumers.celery import create_app
from intentq.consumers.sqs.service import SqsWorker
from intentq.dlq.memory import MemoryDeadLetterStore
from tests.observe.tools import registry
from tests.sqs.conftest import running
from tests.support.net import wait_until
from tests.support.services import SqsServer


def ended(spans: InMemorySpanExporter, kind: SpanKind, **attributes: Any) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if s.kind == kind and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
    ]


def processed(spans: InMemorySpanExporter, n: int = 1, **attributes: Any) -> list[ReadableSpan]:
    def enough() -> list[ReadableSpan] | None:
        found = ended(spans, SpanKind.CONSUMER, **attributes)
        return found if len(found) >= n else None

    return wait_until(enough, timeout=30, interval=0.05, what=f"{n} process span(s)")


def check_one_trace(spans: InMemorySpanExporter, system: str, queue: str, intent_id: str) -> None:
    (send,) = ended(spans, SpanKind.PRODUCER, **{"intentq.intent_id": intent_id})
    (process,) = processed(spans, **{"intentq.intent_id": intent_id})
    (work,) = [s for s in spans.get_finished_spans() if s.name == "tool work"]
    # Names and attributes: OpenTelemetry's messaging conventions, plus intentq's own
    assert send.name == f"send {queue}" and process.name == f"process {queue}"
    assert send.attributes is not None and process.attributes is not None
    assert send.attributes["messaging.system"] == system
    assert send.attributes["messaging.destination.name"] == queue
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.message.id"]
    assert process.attributes["messaging.system"] == system
    assert process.attributes["messaging.destination.name"] == queue
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.message.id"]
    assert process.attributes["intentq.tool"] == "traced"
    assert process.attributes["intentq.dedup.decision"] == "acquired"
    assert process.attributes["intentq.attempt"] == 1
    assert process.attributes["intentq.outcome"] == "completed"
    # One trace: send -> process -> the tool's own span
    assert send.context is not None and process.context is not None and work.context is not None
    assert process.context.trace_id == send.context.trace_id == work.context.trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert work.parent is not None and work.parent.span_id == process.context.span_id


# -- SQS ---------------------------------------------------------------------------------------


@pytest.fixture
def sqs_world(
    sqs_server: SqsServer, redis_url: str, unique: str
) -> Iterator[tuple[Settings, SqsWorker]]:
    queue = sqs_server.new_queue()
    settings = Settings(
        transport="sqs", sqs_queue=queue, sqs_endpoint_url=sqs_server.endpoint_url,
        sqs_wait_seconds=1, dedup_url=redis_url, key_prefix=f"traces-{unique}",
        dlq_url="memory://", concurrency=4,
    )  # fmt: skip
    store = open_store(redis_url, prefix=f"traces-{unique}")
    worker = SqsWorker(settings, registry, store=store, dlq=MemoryDeadLetterStore())
    try:
        yield settings, worker
    finally:
        worker.close()
        store.close()


def test_one_trace_from_enqueue_through_the_sqs_worker(
    spans: InMemorySpanExporter, sqs_world: tuple[Settings, SqsWorker], unique: str
) -> None:
    settings, worker = sqs_world
    with running(worker), Producer(settings) as producer:
        intent = producer.enqueue("traced", {}, key=f"t-{unique}")
        processed(spans, **{"intentq.intent_id": intent.intent_id})
    check_one_trace(spans, "aws_sqs", settings.sqs_queue.rsplit("/", 1)[-1], intent.intent_id)


def test_a_replayed_letter_links_to_its_first_trace(
    spans: InMemorySpanExporter, sqs_world: tuple[Settings, SqsWorker], unique: str
) -> None:
    settings, worker = sqs_world
    with running(worker), Producer(settings) as producer:
        # Given an intent dead-lettered in the trace its enqueue started
        intent = producer.enqueue("broken", {}, key=f"b-{unique}")
        (first,) = processed(spans, **{"intentq.intent_id": intent.intent_id})
        assert first.status.status_code is StatusCode.ERROR
        (letter,) = worker.dlq.list().letters
        # When it is replayed (its key reset, its body sent again as it was)
        worker.store.reset("broken", letter.key or "")
        producer.send_raw(letter.body)
        spans_now = processed(spans, 2, **{"intentq.intent_id": intent.intent_id})
    # Then the replay is a trace of its own that links back to the first one
    assert first.context is not None
    origin = first.context.trace_id
    replay_process = next(s for s in spans_now if s is not first and s.context is not None)
    assert replay_process.context is not None and replay_process.context.trace_id != origin
    assert [link.context.trace_id for link in replay_process.links] == [origin]
    sends = ended(spans, SpanKind.PRODUCER, **{"intentq.intent_id": intent.intent_id})
    replay_send = next(s for s in sends if s.context and s.context.trace_id != origin)
    assert [link.context.trace_id for link in replay_send.links] == [origin]


# -- Celery ------------------------------------------------------------------------------------


def test_one_trace_from_enqueue_through_a_celery_worker(
    spans: InMemorySpanExporter, amqp_url: str, redis_url: str, unique: str
) -> None:
    settings = Settings(
        transport="celery", broker_url=amqp_url, celery_queue=f"traces-{unique}",
        dedup_url=redis_url, key_prefix=f"traces-{unique}", dlq_url="memory://",
    )  # fmt: skip
    app = create_app(settings, registry)
    try:
        worker = start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30)
        with worker, Producer(settings, celery_app=app) as producer:
            intent = producer.enqueue("traced", {}, key=f"t-{unique}")
            processed(spans, **{"intentq.intent_id": intent.intent_id})
        check_one_trace(spans, "celery", settings.celery_queue, intent.intent_id)
    finally:
        with app.connection_for_write() as conn:
            app.amqp.queues[settings.celery_queue](conn.default_channel).delete()
        app.close()
