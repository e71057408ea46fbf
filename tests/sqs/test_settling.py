"""What the worker does when SQS or the DLQ says no: lost deliveries, DLQ outages, bad queues."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from intentq import Producer
from intentq.consumers.sqs.service import EXIT_ERROR, run_worker
from intentq.dlq.sqs.store import SqsDeadLetterStore
from intentq.registry import Registry
from tests.sqs.conftest import StoreConfig, queue_depth, settings_for
from tests.sqs.tools import Effects
from tests.support.net import free_port, wait_until
from tests.support.services import SqsServer


def test_a_delivery_received_again_elsewhere_is_not_deleted_by_the_old_one(
    sqs_server: SqsServer,
    sqs: Any,
    redis_store: StoreConfig,
    effects: Effects,
    registry: Registry,
    make_worker: Callable[..., Any],
) -> None:
    url = sqs_server.new_queue()
    settings = settings_for(sqs_server, url, redis_store)
    store = redis_store.open()
    with Producer(settings, registry, sqs_client=sqs) as producer:
        producer.enqueue("book", {"slot": "noon"}, key="stale")
    attributes: Any = ["ApproximateReceiveCount"]
    [old] = sqs.receive_message(
        QueueUrl=url, VisibilityTimeout=0, MessageSystemAttributeNames=attributes
    )["Messages"]
    # Given the message was received again, so the old receipt handle is no longer valid
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)
    worker = make_worker(settings, registry, store)

    # When the worker processes the old delivery
    worker.process_batch([old])
    # Then the tool ran, and the delete was refused as "no longer yours", without an error
    assert effects.counts() == {"stale": 1}
    assert (worker.settle_stats.deleted, worker.settle_stats.gone) == (0, 1)

    # and the message's next delivery is answered from the store and deleted
    assert worker.run_once(wait_seconds=1) == 1
    assert effects.counts() == {"stale": 1}
    assert worker.settle_stats.deleted == 1
    assert queue_depth(sqs, url) == (0, 0)
    store.close()


def test_poison_is_not_deleted_when_its_dead_letter_cannot_be_written(
    sqs_server: SqsServer,
    sqs: Any,
    redis_store: StoreConfig,
    registry: Registry,
    make_worker: Callable[..., Any],
    unique: str,
) -> None:
    url = sqs_server.new_queue()
    settings = settings_for(sqs_server, url, redis_store)
    store = redis_store.open()
    # A DLQ queue that was never created: every put fails.
    dlq = SqsDeadLetterStore.from_url(
        f"sqs://missing-dlq-{unique}",
        endpoint_url=sqs_server.endpoint_url,
        region="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    sqs.send_message(QueueUrl=url, MessageBody="{ not json")
    worker = make_worker(settings, registry, store, dlq)

    assert worker.run_once(wait_seconds=1) == 1
    # The message is kept, hidden for a while, to be dead-lettered on a later delivery
    assert (worker.settle_stats.deleted, worker.settle_stats.released) == (0, 1)
    assert queue_depth(sqs, url) == (0, 1)
    dlq.close()
    store.close()


def test_run_worker_reports_a_missing_queue_as_a_start_error(
    sqs_server: SqsServer,
    redis_store: StoreConfig,
    registry: Registry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for(sqs_server, "no-such-queue", redis_store)
    assert run_worker(settings, registry) == EXIT_ERROR
    assert "does not exist" in caplog.text


def test_queue_named_by_name_is_consumed(
    sqs_server: SqsServer,
    sqs: Any,
    redis_store: StoreConfig,
    effects: Effects,
    registry: Registry,
    make_worker: Callable[..., Any],
) -> None:
    url = sqs_server.new_queue()
    settings = settings_for(sqs_server, url.rsplit("/", 1)[1], redis_store)
    store = redis_store.open()
    with Producer(settings, registry, sqs_client=sqs) as producer:
        producer.enqueue("book", {"slot": "by name"}, key="named")
    worker = make_worker(settings, registry, store)
    assert worker.queue.url == url
    assert worker.run_once(wait_seconds=1) == 1
    assert effects.counts() == {"named": 1}
    store.close()


def test_an_unreachable_endpoint_does_not_end_the_worker_and_stop_still_works(
    sqs_server: SqsServer,
    redis_store: StoreConfig,
    registry: Registry,
    make_worker: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = settings_for(sqs_server, f"{dead}/000000000000/q", redis_store)
    settings = settings.model_copy(update={"sqs_endpoint_url": dead})
    store = redis_store.open()
    worker = make_worker(settings, registry, store)
    caplog.set_level(logging.WARNING, logger="intentq.sqs")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    wait_until(
        lambda: caplog.text.count("receive failed") >= 2, timeout=30, what="retried receives"
    )
    assert thread.is_alive()
    started = time.monotonic()
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    store.close()
