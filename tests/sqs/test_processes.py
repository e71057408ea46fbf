"""Worker processes killed and stopped: nothing lost, nothing run twice."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from intentq import Producer
from intentq.config import Settings
from intentq.registry import Registry
from tests.sqs.conftest import StoreConfig, WorkerProcess, queue_depth, running, settings_for
from tests.sqs.tools import Effects
from tests.support.net import wait_until
from tests.support.services import SqsServer


def test_worker_killed_mid_tool_is_taken_over_and_completes_once(
    sqs_server: SqsServer,
    sqs: Any,
    redis_store: StoreConfig,
    effects: Effects,
    registry: Registry,
    spawn: Callable[[Settings], WorkerProcess],
) -> None:
    url = sqs_server.new_queue()
    settings = settings_for(sqs_server, url, redis_store, lease=2, concurrency=2)
    redis_store.open().close()
    with Producer(settings, registry, sqs_client=sqs) as producer:
        producer.enqueue("sleep", {"seconds": 2}, key="crash-one")

    # Given a worker process that has started the tool
    first = spawn(settings)
    wait_until(lambda: effects.counts("start")["crash-one"], timeout=30, what="the first start")
    # When it is killed before the tool finishes
    first.signal(signal.SIGKILL)
    first.wait(10)
    assert not effects.counts("done"), first.log()

    # Then, after the visibility timeout, a second worker takes the message over
    second = spawn(settings)
    wait_until(lambda: effects.counts("done")["crash-one"], timeout=40, what="the takeover")
    wait_until(lambda: queue_depth(sqs, url) == (0, 0), timeout=20, what="an empty queue")
    second.signal(signal.SIGTERM)
    assert second.wait(30) == 0, second.log()

    starts = [(pid, attempt) for _, _, pid, attempt, _ in effects.rows("start")]
    assert starts == [(first.pid, 1), (second.pid, 2)]
    done = [(pid, attempt) for _, _, pid, attempt, _ in effects.rows("done")]
    assert done == [(second.pid, 2)]


def test_sigterm_lets_running_tools_finish_and_loses_nothing(
    sqs_server: SqsServer,
    sqs: Any,
    redis_store: StoreConfig,
    effects: Effects,
    registry: Registry,
    spawn: Callable[[Settings], WorkerProcess],
    make_worker: Callable[..., Any],
) -> None:
    url = sqs_server.new_queue()
    settings = settings_for(sqs_server, url, redis_store, concurrency=3)
    keys = [f"term-{i}" for i in range(8)]
    with Producer(settings, registry, sqs_client=sqs) as producer:
        producer.enqueue_many([("sleep", {"seconds": 1.5}, key) for key in keys])

    # Given a worker process with three tools running
    proc = spawn(settings)
    wait_until(lambda: len(effects.counts("start")) >= 3, timeout=30, what="three starts")
    # When it gets SIGTERM
    proc.signal(signal.SIGTERM)
    # Then the running tools finish and the process exits 0
    assert proc.wait(30) == 0, proc.log()
    started, done = effects.counts("start"), effects.counts("done")
    assert 3 <= len(started) < len(keys)
    assert done == started, proc.log()

    # and what it did not start is still there for the next worker, to run once
    store = redis_store.open()
    with running(make_worker(settings, registry, store)):
        wait_until(lambda: len(effects.counts("done")) == len(keys), timeout=60, what="the rest")
        wait_until(lambda: queue_depth(sqs, url) == (0, 0), timeout=20, what="an empty queue")
    assert effects.counts("start") == dict.fromkeys(keys, 1)
    assert effects.counts("done") == dict.fromkeys(keys, 1)
    store.close()
