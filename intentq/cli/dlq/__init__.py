"""``intentq dlq``: ``inspect`` (list, show, stats), ``replay`` and ``purge``."""

from __future__ import annotations

from intentq.cli.dlq.inspect import dlq_app

__all__ = ["dlq_app"]
