"""The former path of ``intentq.consumers.celery.main``, kept for
``celery -A intentq.consumers.celery_main worker``."""

from __future__ import annotations

from intentq.consumers.celery.main import __getattr__, build

__all__ = ["__getattr__", "build"]
