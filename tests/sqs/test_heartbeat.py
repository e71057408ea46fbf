"""A tool that outlives the visibility timeout keeps its message: the heartbeat extends it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from intentq import Producer
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
