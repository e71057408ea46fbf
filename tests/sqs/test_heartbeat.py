"""A tool that outlives the visibility timeout keeps its message: the heartbeat extends it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from intentq import Producer, ToolContext
from intentq.registry import Registry
from tests.sqs.conftest import StoreConfig, queue_depth, running, settings_for
from tests.sqs.tools import Effects
from tests.support.net import wait_until
from tests.support.services import SqsServer

LEASE = 2  # seconds: the visibility timeout and the store lease
RUNS_FOR = 3 * LEASE


def test_tool_running_three_visibility_timeouts_completes_once(
    sqs_server: SqsServer,
    sqs: Any,
    redis_store: StoreConfig,
    effects: Effects,
    registry: Registry,
    make_worker: Callable[..., Any],
) -> None:
    url = sqs_server.new_queue()
    settings = settings_for(sqs_server, url, redis_store, lease=LEASE)
    store = redis_store.open()
    # Two workers poll the queue: had the visibility lapsed, the second would get the message.
    first = make_worker(settings, registry, store)
    second = make_worker(settings, registry, store)

    with running(first), running(second):
        with Producer(settings, registry, sqs_client=sqs) as producer:
            producer.enqueue("sleep", {"seconds": RUNS_FOR}, key="long-one")
        wait_until(lambda: effects.counts("done")["long-one"], timeout=RUNS_FOR + 20)
        wait_until(lambda: queue_depth(sqs, url) == (0, 0), timeout=10, what="an empty queue")

    assert effects.counts("start") == {"long-one": 1}
    assert effects.counts("done") == {"long-one": 1}
    assert [attempt for *_, attempt, _ in effects.rows("done")] == [1]
    # Never handed out again: nobody gave it back as busy, nobody's delete found it gone.
    stats = [first.settle_stats, second.settle_stats]
    assert sum(s.deleted for s in stats) == 1
    assert sum(s.released for s in stats) == 0
    assert sum(s.gone for s in stats) == 0
    store.close()


def test_tool_lease_longer_than_the_visibility_timeout_stretches_it_at_once(
    sqs_server: SqsServer,
    sqs: Any,
    redis_store: StoreConfig,
    effects: Effects,
    make_worker: Callable[..., Any],
) -> None:
    registry = Registry()

    @registry.tool("patient", lease=4)
    def patient(args: dict[str, Any], ctx: ToolContext) -> None:
        effects.record(ctx, "start")
        time.sleep(2.5)
        effects.record(ctx, "done")

    url = sqs_server.new_queue()
    # Received for 1 s, while the tool's first heartbeat comes only after 4/3 s.
    settings = settings_for(sqs_server, url, redis_store, lease=1)
    store = redis_store.open()
    first = make_worker(settings, registry, store)
    second = make_worker(settings, registry, store)
    with running(first), running(second):
        with Producer(settings, registry, sqs_client=sqs) as producer:
            producer.enqueue("patient", {}, key="patient-one")
        wait_until(lambda: effects.counts("done")["patient-one"], timeout=20)
        wait_until(lambda: queue_depth(sqs, url) == (0, 0), timeout=10, what="an empty queue")

    assert effects.counts("start") == {"patient-one": 1}
    stats = [first.settle_stats, second.settle_stats]
    assert (sum(s.deleted for s in stats), sum(s.released for s in stats)) == (1, 0)
    assert sum(s.gone for s in stats) == 0
    store.close()
