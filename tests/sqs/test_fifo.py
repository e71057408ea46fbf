"""FIFO queues: order within a group, SQS's 5-minute dedup window, and the store beyond it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from intentq import Producer
from intentq.registry import Registry
from tests.sqs.conftest import StoreConfig, queue_depth, running, settings_for
from tests.sqs.tools import Effects
from tests.support.net import wait_until
from tests.support.services import SqsServer

GROUPS = ("a", "b", "c")
STEPS = 8
FLAKY = {("a", 2), ("b", 5)}  # fail once: their group must wait for the retry


def test_order_within_each_group_survives_retries_across_two_workers(
    sqs_server: SqsServer,
    sqs: Any,
    redis_store: StoreConfig,
    effects: Effects,
    registry: Registry,
    make_worker: Callable[..., Any],
) -> None:
    url = sqs_server.new_queue(fifo=True)
    settings = settings_for(sqs_server, url, redis_store, concurrency=4)
    store = redis_store.open()
    items = [
        ("step", {"group": g, "seq": n, "flaky": (g, n) in FLAKY}, f"{g}-{n}", {"group": g})
        for n in range(STEPS)
        for g in GROUPS
    ]
    with Producer(settings, registry, sqs_client=sqs) as producer:
        producer.enqueue_many(items)

    with (
        running(make_worker(settings, registry, store)),
        running(make_worker(settings, registry, store)),
    ):
        wait_until(lambda: len(effects.rows("done")) >= len(items), timeout=60, what="all steps")
        wait_until(lambda: queue_depth(sqs, url) == (0, 0), timeout=20, what="an empty queue")

    done = [info for *_, info in effects.rows("done")]
    for group in GROUPS:
        assert [int(x.split(":")[1]) for x in done if x.startswith(f"{group}:")] == list(
            range(STEPS)
        )
    assert sorted(info for *_, info in effects.rows("failed")) == sorted(
        f"{g}:{n}" for g, n in FLAKY
    )
    assert effects.counts("done") == {key: 1 for _, _, key, _ in items}
    store.close()


def test_key_resent_is_dropped_by_sqs_within_its_window_and_by_the_store_after(
    sqs_server: SqsServer,
    sqs: Any,
    redis_store: StoreConfig,
    effects: Effects,
    registry: Registry,
    make_worker: Callable[..., Any],
) -> None:
    url = sqs_server.new_queue(fifo=True)
    settings = settings_for(sqs_server, url, redis_store)
    store = redis_store.open()
    with Producer(settings, registry, sqs_client=sqs) as producer:
        # Given an intent, and the agent's retry of it (a new intent id, the same key)
        first = producer.intent("book", {"slot": "09:00"}, key="fifo-dup")
        retry = producer.intent("book", {"slot": "09:00"}, key="fifo-dup")
        # When both are sent within SQS's 5-minute window, SQS keeps only the first
        assert producer.send_intent(first) == producer.send_intent(retry)
    assert queue_depth(sqs, url) == (1, 0)
    # and when the key comes again after the window (a fresh MessageDeduplicationId)
    sqs.send_message(
        QueueUrl=url,
        MessageBody=retry.to_json().decode(),
        MessageGroupId="book",
        MessageDeduplicationId="after-the-window",
    )
    assert queue_depth(sqs, url) == (2, 0)

    worker = make_worker(settings, registry, store)
    with running(worker):
        wait_until(lambda: queue_depth(sqs, url) == (0, 0), timeout=30, what="an empty queue")
    # Then the store answers the late duplicate with the first result: the tool ran once
    assert effects.counts("done") == {"fifo-dup": 1}
    assert worker.settle_stats.deleted == 2
    store.close()


def test_stop_gives_back_the_unstarted_rest_of_a_group(
    sqs_server: SqsServer,
    sqs: Any,
    redis_store: StoreConfig,
    effects: Effects,
    registry: Registry,
    make_worker: Callable[..., Any],
) -> None:
    url = sqs_server.new_queue(fifo=True)
    # A long visibility timeout: only a give-back can make the rest visible within the test.
    settings = settings_for(sqs_server, url, redis_store, lease=60, concurrency=1)
    store = redis_store.open()
    keys = [f"g-{n}" for n in range(5)]
    with Producer(settings, registry, sqs_client=sqs) as producer:
        producer.enqueue_many(
            [("sleep", {"seconds": 1, "n": n}, key, {"group": "g"}) for n, key in enumerate(keys)]
        )

    worker = make_worker(settings, registry, store)
    with running(worker):
        wait_until(lambda: effects.counts("start"), timeout=30, what="the first start")
    # run() returned: what had started finished, the rest went back at once, in order
    started = effects.counts("start")
    assert effects.counts("done") == started
    assert sorted(started) == keys[: len(started)] and len(started) < len(keys)
    rest = len(keys) - len(started)
    wait_until(lambda: queue_depth(sqs, url) == (rest, 0), timeout=5, what="the rest given back")

    with running(make_worker(settings, registry, store)):
        wait_until(lambda: len(effects.counts("done")) == len(keys), timeout=30, what="the rest")
    assert [key for _, key, *_ in effects.rows("done")] == keys
    assert effects.counts("start") == dict.fromkeys(keys, 1)
    store.close()
