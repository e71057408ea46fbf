"""Prometheus metrics: an observer that counts, a dead-letter gauge, and the ``/metrics`` server.

Names follow Prometheus conventions (base units, ``_total`` counters) and dramatiq's and
celery-exporter's habits; labels are ``tool`` and ``queue`` (never a key or an intent id, which
would make a series per message), plus the one dimension each metric is about.

A Celery prefork worker runs tools in pool children: each child writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and the main process serves their sum (prometheus-client's
multiprocess mode). ``multiprocess_dir()`` sets that up before prometheus-client is imported.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any

from intentq.errors import ConfigError
from intentq.extras import require

require("prometheus_client", "metrics", "metrics")  # a missing one is one line naming the extra

import prometheus_client  # noqa: E402
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

from intentq.dlq.base import LetterFilter, Reason  # noqa: E402

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from intentq.dlq.base import DeadLetterStore
    from intentq.executor import Job
    from intentq.observe.base import Report
    from intentq.outcome import Delivery, SendToDLQ

log = logging.getLogger("intentq.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LABELS = ("tool", "queue")
# Tools take from a millisecond (a cache write) to minutes (a slow API): seconds.
DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip
# From enqueue to start: milliseconds on an idle queue, up to an hour behind a backlog.
LAG_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
)  # fmt: skip
_NO_SPAN: AbstractContextManager[None] = nullcontext()
# Live-gauge files of the multiprocess mode end in the writing process's pid.
_LIVE_FILE_RE = re.compile(r"gauge_live\w*?_(\d+)\.db\Z")


def multiprocess() -> bool:
    """Whether prometheus-client writes values to ``PROMETHEUS_MULTIPROC_DIR`` files."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


class Metrics:
    """The observer that counts. ``registry`` holds the metrics in a single process; in
    multiprocess mode they are in no registry (their values go to files) and it is ``None``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if multiprocess():
            registry = None
        elif registry is None:
            registry = CollectorRegistry(auto_describe=True)
        self.registry = registry
        r = registry
        self.intents = Counter(
            "intentq_intents_total", "Deliveries handled, by outcome.",
            [*LABELS, "outcome"], registry=r,
        )  # fmt: skip
        self.decisions = Counter(
            "intentq_dedup_decisions_total", "The dedup store's answers to claims.",
            [*LABELS, "decision"], registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "intentq_dead_letters_total", "Dead letters decided, by reason.",
            [*LABELS, "reason"], registry=r,
        )  # fmt: skip
        self.inprogress = Gauge(
            "intentq_inprogress", "Tools running now.", LABELS, registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.duration = Histogram(
            "intentq_tool_duration_seconds",
            "From a tool's start until its result or failure is recorded.",
            LABELS, registry=r, buckets=DURATION_BUCKETS,
        )  # fmt: skip
        self.lag = Histogram(
            "intentq_queue_lag_seconds",
            "From the envelope's created_at to the start of the tool (each attempt).",
            LABELS, registry=r, buckets=LAG_BUCKETS,
        )  # fmt: skip
        self.store_errors = Counter(
            "intentq_store_errors_total", "Dedup store calls that failed (StoreUnavailable).",
            ["queue", "operation"], registry=r,
        )  # fmt: skip
        self.extensions = Counter(
            "intentq_lease_extensions_total", "Leases extended by the heartbeat.",
            LABELS, registry=r,
        )  # fmt: skip
        # labels() takes a lock and builds a tuple per call: children are kept here instead.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # -- the observer ---------------------------------------------------------------------

    def processing(
        self, delivery: Delivery, prepared: Job | SendToDLQ, carrier: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        return _NO_SPAN

    def tool_started(self, job: Job, attempt: int) -> None:
        queue = job.delivery.queue
        self._child(self.inprogress, job.tool, queue).inc()
        created = _epoch(job.created_at)
        if created is not None:
            # Clocks of producer and worker differ a little: never a negative lag.
            self._child(self.lag, job.tool, queue).observe(max(0.0, time.time() - created))

    def tool_finished(self, job: Job, seconds: float) -> None:
        queue = job.delivery.queue
        self._child(self.inprogress, job.tool, queue).dec()
        self._child(self.duration, job.tool, queue).observe(seconds)

    def concluded(self, report: Report) -> None:
        tool, queue = report.tool or "", report.delivery.queue
        self._child(self.intents, tool, queue, report.outcome_label).inc()
        decision = report.decision
        if decision is not None:
            self._child(self.decisions, tool, queue, decision).inc()
        reason = report.dead_reason
        if reason is not None:
            self._child(self.dead_letters, tool, queue, reason).inc()

    def store_failed(self, queue: str, operation: str) -> None:
        self._child(self.store_errors, queue, operation).inc()

    def lease_extended(self, job: Job) -> None:
        self._child(self.extensions, job.tool, job.delivery.queue).inc()


def _epoch(created_at: str) -> float | None:
    if not created_at:
        return None
    try:
        return datetime.fromisoformat(created_at).timestamp()
    except ValueError:
        return None


# -- the dead-letter gauge -------------------------------------------------------------------


class DeadLetterGauge(Collector):
    """``intentq_dlq_letters{reason}``: letters in the DLQ now, counted by the DLQ itself.

    Counted at a scrape at most every ``interval`` seconds (one count per reason); between
    counts a scrape gets the last ones. A DLQ that cannot be read keeps the last counts and
    sets ``intentq_dlq_up`` to 0.
    """

    def __init__(
        self,
        dlq: DeadLetterStore,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dlq = dlq
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._counted_at: float | None = None
        self._counts: dict[str, int] = {}
        self._up = 0.0

    def _refresh(self) -> None:
        now = self._clock()
        if self._counted_at is not None and now - self._counted_at < self.interval:
            return
        self._counted_at = now
        try:
            self._counts = {
                str(reason): self.dlq.count(LetterFilter(reason=reason)) for reason in Reason
            }
            self._up = 1.0
        except Exception as exc:
            log.warning("could not count dead letters: %s", exc)
            self._up = 0.0

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            self._refresh()
            counts, up = dict(self._counts), self._up
        gauge = GaugeMetricFamily(
            "intentq_dlq_letters", "Letters in the dead-letter store, by reason.",
            labels=["reason"],
        )  # fmt: skip
        for reason, count in counts.items():
            gauge.add_metric([reason], count)
        yield gauge
        yield GaugeMetricFamily(
            "intentq_dlq_up", "1 if the last count of the dead-letter store worked.",
            value=up,
        )  # fmt: skip


# -- multiprocess ----------------------------------------------------------------------------


class _Processes(Collector):
    """Every process's values summed; a process that died has its live gauges dropped first."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._inner = MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        for pid in _dead_pids(self.path):
            mark_process_dead(pid, self.path)  # type: ignore[no-untyped-call]
        metrics: Iterable[Metric] = self._inner.collect()  # type: ignore[no-untyped-call]
        return metrics


def _dead_pids(path: str) -> set[int]:
    dead = set()
    for name in os.listdir(path):
        match = _LIVE_FILE_RE.match(name)
        if match:
            pid = int(match.group(1))
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                dead.add(pid)
            except PermissionError:  # alive, another user's
                pass
    return dead


@contextmanager
def multiprocess_dir() -> Iterator[str]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the block: a temporary directory of this process's own,
    removed at the end; or the one the environment already names, which is left alone.

    Must come before anything imports prometheus-client's value classes in this process.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        yield given
        return
    path = tempfile.mkdtemp(prefix="intentq-metrics-")
    os.environ[MULTIPROC_ENV] = path
    _reload_value_class()
    owner = os.getpid()
    try:
        yield path
    finally:
        if os.getpid() == owner:  # a forked child leaving the block must not remove it
            os.environ.pop(MULTIPROC_ENV, None)
            _reload_value_class()
            shutil.rmtree(path, ignore_errors=True)


def _reload_value_class() -> None:
    # prometheus-client picks its value class from the environment when it is imported,
    # which a user's tools module may already have done: pick again. Metrics made after
    # this use the new class (metrics made before keep theirs, in this process only).
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


# -- the endpoint ----------------------------------------------------------------------------


class MetricsServer:
    """``/metrics`` over HTTP in a daemon thread; ``close()`` stops it."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str) -> None:
        self.registry = registry
        try:
            self._server, self._thread = prometheus_client.start_http_server(
                port, addr=host, registry=registry
            )
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        self.port = int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve(
    port: int,
    host: str = "0.0.0.0",
    metrics: Metrics | None = None,
    dlq: DeadLetterStore | None = None,
    dlq_interval: float = 30.0,
) -> MetricsServer:
    """Serve ``metrics`` (in multiprocess mode: every process's) and, given a DLQ, its gauge."""
    registry = CollectorRegistry(auto_describe=True)
    if multiprocess():
        registry.register(_Processes(os.environ[MULTIPROC_ENV]))
    elif metrics is not None and metrics.registry is not None:
        for collector in list(metrics.registry._collector_to_names):
            registry.register(collector)
    if dlq is not None:
        registry.register(DeadLetterGauge(dlq, dlq_interval))
    return MetricsServer(registry, port, host)
