"""``run_worker``: a Celery worker for the registry's tools, as ``intentq worker`` starts it.

The same worker from Celery's own command line::

    INTENTQ_APP=myapp.tools:registry celery -A intentq.consumers.celery.main worker -Q intentq
"""

from __future__ import annotations

from typing import Any

from intentq.config.settings import Settings
from intentq.consumers.celery.app import create_app
from intentq.registry import Registry


def worker_argv(
    settings: Settings,
    concurrency: int | None = None,
    pool: str = "prefork",
    *,
    hostname: str | None = None,
    loglevel: str = "INFO",
) -> list[str]:
    """The ``celery worker`` arguments ``run_worker`` uses."""
    argv = [
        "worker",
        "--queues", settings.celery_queue,
        "--pool", pool,
        "--concurrency", str(concurrency or settings.concurrency_for("celery")),
        "--loglevel", loglevel,
        # Gossip and mingle only add start-up time: intentq coordinates through its store.
        "--without-gossip",
        "--without-mingle",
    ]  # fmt: skip
    if hostname:
        argv += ["--hostname", hostname]
    return argv


def run_worker(
    settings: Settings,
    registry: Registry,
    concurrency: int | None = None,
    pool: str = "prefork",
    *,
    app: Any = None,
    hostname: str | None = None,
    loglevel: str = "INFO",
) -> int:
    """Run a worker on ``settings.celery_queue`` until it is stopped; returns its exit code.

    ``app`` is an app already built by ``create_app`` (say, with a result backend); by
    default one is built from ``settings`` and ``registry``.
    """
    app = app if app is not None else create_app(settings, registry)
    argv = worker_argv(settings, concurrency, pool, hostname=hostname, loglevel=loglevel)
    code = app.start(argv=argv)
    return int(code or 0)
