"""What intentq tells operators: Prometheus metrics, OpenTelemetry traces, structured logs.

The executor reports each decision to an ``Observer``; ``metrics.Metrics``,
``tracing.Tracing`` and ``logs.DecisionLog`` are observers. Importing this package imports
neither prometheus-client nor opentelemetry: their modules are loaded when settings ask.
"""

from __future__ import annotations

from intentq.observe.base import (
    DECISIONS,
    OUTCOMES,
    NullObserver,
    Observer,
    Observers,
    Report,
    combine,
    decision_label,
    outcome_label,
)
from intentq.observe.workers import (
    metrics_for,
    observer_for,
    serve_metrics,
    serving_processes,
    tracing_for,
)

__all__ = [
    # the seam
    "NullObserver",
    "Observer",
    "Observers",
    "Report",
    "combine",
    # labels
    "DECISIONS",
    "OUTCOMES",
    "decision_label",
    "outcome_label",
    # from settings
    "metrics_for",
    "observer_for",
    "serve_metrics",
    "serving_processes",
    "tracing_for",
]
