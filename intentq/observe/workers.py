"""What the settings turn on: the observer a worker's executor gets, the tracer a producer
uses, and the ``/metrics`` endpoint a worker serves.

prometheus-client and opentelemetry-api are imported here only when the settings ask for
them: ``metrics_port`` set, ``tracing`` not false (by default tracing is on when
opentelemetry-api is installed), ``log_format`` json.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from intentq.observe.base import Observer, combine

if TYPE_CHECKING:
    from intentq.config.settings import Settings
    from intentq.dlq.base import DeadLetterStore
    from intentq.observe.metrics import Metrics, MetricsServer
    from intentq.observe.tracing import Tracing

log = logging.getLogger("intentq.observe")


def tracing_for(settings: Settings) -> Tracing | None:
    """The tracer, or ``None`` when tracing is off or (left unset) opentelemetry-api is
    missing; ``tracing = true`` without it is a ``ConfigError`` naming the extra."""
    if settings.tracing is False:
        return None
    try:
        import opentelemetry.trace  # noqa: F401 - is the API installed?
    except ImportError:
        if settings.tracing:
            from intentq.extras import MissingExtra

            raise MissingExtra("opentelemetry-api", "tracing", "tracing") from None
        return None
    from intentq.observe.tracing import Tracing

    return Tracing()


def metrics_for(settings: Settings) -> Metrics | None:
    """Counting observer when ``metrics_port`` is set (prometheus-client, or a ``ConfigError``)."""
    if settings.metrics_port is None:
        return None
    from intentq.observe.metrics import Metrics

    return Metrics()


def observer_for(settings: Settings, metrics: Metrics | None = None) -> Observer:
    """Metrics, tracing and the decision log, as the settings ask; ``metrics`` if given."""
    observers: list[Observer] = []
    metrics = metrics if metrics is not None else metrics_for(settings)
    if metrics is not None:
        observers.append(metrics)
    tracing = tracing_for(settings)
    if tracing is not None:
        observers.append(tracing)
    if settings.log_format == "json":
        from intentq.observe.logs import DecisionLog

        observers.append(DecisionLog())
    return combine(observers)


def counts_cheaply(dlq: DeadLetterStore) -> bool:
    """Whether the DLQ can count its letters by reason without reading them: SQL and memory
    stores can; an SQS queue would have to receive (and hide) every letter."""
    return not type(dlq).__module__.startswith("intentq.dlq.sqs")


def serve_metrics(
    settings: Settings, metrics: Metrics | None, dlq: DeadLetterStore | None
) -> MetricsServer | None:
    """The ``/metrics`` endpoint on ``metrics_port``, with the DLQ's gauge when it counts
    cheaply; ``None`` when no port is set."""
    if settings.metrics_port is None:
        return None
    from intentq.observe.metrics import serve

    if dlq is not None and not counts_cheaply(dlq):
        log.info("the dead-letter gauge is off for an SQS DLQ: watch its queue depth instead")
        dlq = None
    server = serve(
        settings.metrics_port, settings.metrics_host, metrics, dlq, settings.metrics_dlq_interval
    )
    log.info("serving metrics on http://%s:%d/metrics", settings.metrics_host, server.port)
    return server


@contextmanager
def serving_processes(settings: Settings) -> Iterator[MetricsServer | None]:
    """For a worker whose tools run in forked children (Celery prefork): a multiprocess
    directory of this process's own for the block, and the endpoint summing every process.

    Enter it before the app (and its observer) is built: metrics made earlier in this
    process would not be in the sum.
    """
    if settings.metrics_port is None:
        yield None
        return
    from intentq.connections import open_dlq_for
    from intentq.observe.metrics import multiprocess_dir

    with ExitStack() as stack:
        stack.enter_context(multiprocess_dir())
        dlq = open_dlq_for(settings)
        stack.callback(dlq.close)
        server = serve_metrics(settings, None, dlq)
        if server is not None:
            stack.callback(server.close)
        yield server
