"""The relay's metrics: rows pending and failed, and the relay's lag, counted from the table
at a scrape (at most every ``metrics_dlq_interval`` seconds), plus rows sent by this relay.

``intentq_outbox_lag_seconds`` is the age of the oldest pending row: how far behind the
relays are. Served by ``intentq relay`` on ``metrics_port`` through intentq.observe's
``MetricsServer``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from intentq.extras import require

require("prometheus_client", "metrics", "metrics")

from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

from intentq.outbox.ops import OutboxStats, stats  # noqa: E402

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from intentq.config.settings import Settings
    from intentq.observe.metrics import MetricsServer
    from intentq.outbox.relay import Relay

log = logging.getLogger("intentq.outbox")


class OutboxCollector(Collector):
    """Gauges read from the outbox table, and the relay's own counters."""

    def __init__(self, relay: Relay, interval: float) -> None:
        self.relay = relay
        self.interval = interval
        self._lock = threading.Lock()
        self._counted_at: float | None = None
        self._stats: OutboxStats | None = None
        self._up = 0.0

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._counted_at is not None and now - self._counted_at < self.interval:
            return
        self._counted_at = now
        try:
            self._stats, self._up = stats(self.relay.db), 1.0
        except Exception as exc:
            log.warning("could not count the outbox: %s", exc)
            self._up = 0.0

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            self._refresh()
            counted, up = self._stats, self._up
        if counted is not None:
            yield GaugeMetricFamily(
                "intentq_outbox_pending", "Outbox rows waiting to be sent.", value=counted.pending
            )
            yield GaugeMetricFamily(
                "intentq_outbox_failed", "Outbox rows that cannot be sent.", value=counted.failed
            )
            yield GaugeMetricFamily(
                "intentq_outbox_lag_seconds", "Age of the oldest pending outbox row.",
                value=counted.oldest_pending_age or 0.0,
            )  # fmt: skip
        yield GaugeMetricFamily(
            "intentq_outbox_up", "1 if the last count of the outbox table worked.", value=up
        )
        sent = CounterMetricFamily("intentq_outbox_sent", "Rows this relay sent.")
        sent.add_metric([], self.relay.totals.sent)
        yield sent


def serve_relay_metrics(settings: Settings, relay: Relay) -> MetricsServer:
    """``/metrics`` for a relay on ``settings.metrics_port``."""
    from intentq.observe.metrics import MetricsServer

    assert settings.metrics_port is not None
    registry = CollectorRegistry(auto_describe=True)
    registry.register(OutboxCollector(relay, settings.metrics_dlq_interval))
    server = MetricsServer(registry, settings.metrics_port, settings.metrics_host)
    log.info("serving relay metrics on http://%s:%d/metrics", settings.metrics_host, server.port)
    return server
