"""``run_worker``: a Celery worker for the registry's tools, as ``intentq worker`` starts it.

The same worker from Celery's own command line::

    INTENTQ_APP=myapp.tools:registry celery -A intentq.consumers.celery.main worker -Q intentq
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from types import FrameType
from typing import Any

from celery import bootsteps
from celery.signals import after_setup_logger, worker_process_init, worker_shutting_down

from intentq.config.settings import Settings
from intentq.consumers.celery.app import create_app
from intentq.consumers.celery.runtime import runtime_of
from intentq.observe import serving_processes
from intentq.observe.logs import use_json
from intentq.preflight import Check, preflight, probe
from intentq.registry import Registry

log = logging.getLogger("intentq.celery")
preflight_log = logging.getLogger("intentq.preflight")
PREFLIGHT_FORMAT = "[%(asctime)s: %(levelname)s/MainProcess] %(message)s"


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
    # Celery's own default, celery@<host>, is the same for every worker on a host: on
    # RabbitMQ the second one dies at start (ResourceLocked on its pidbox queue).
    argv += ["--hostname", hostname or node_name()]
    return argv


def node_name() -> str:
    """A node name unique on this host: ``intentq-<pid>-<random>@<host>`` (``%h`` is the host,
    as Celery expands it). The random part tells apart workers that share a pid and a host
    name, as containers on one host network do."""
    return f"intentq-{os.getpid()}-{secrets.token_hex(3)}@%h"


def default_pool(settings: Settings) -> str:
    """``threads`` on kombu's SQLAlchemy transport (the embedded SQLite broker), else
    ``prefork``. Without an event loop, prefork children wait for tasks holding a lock the
    main process needs at exit: one killed there by a SIGTERM to the whole process group
    would leave the worker hanging. Threads share the main process and exit with it."""
    return "threads" if settings.broker_url.lower().startswith("sqla+") else "prefork"


def run_worker(
    settings: Settings,
    registry: Registry,
    concurrency: int | None = None,
    pool: str | None = None,
    *,
    app: Any = None,
    hostname: str | None = None,
    loglevel: str = "INFO",
) -> int:
    """Run a worker on ``settings.celery_queue`` until it is stopped; returns its exit code.

    ``app`` is an app already built by ``create_app`` (say, with a result backend); by
    default one is built from ``settings`` and ``registry``. With ``metrics_port`` set, this
    process serves ``/metrics`` for itself and its pool children; build ``app`` inside
    ``intentq.observe.serving_processes`` to count its tools too.
    """
    if settings.log_format == "json":
        after_setup_logger.connect(_json_logs, weak=False, dispatch_uid="intentq.json-logs")
    with serving_processes(settings):  # before the app: its metrics go to the shared files
        app = app if app is not None else create_app(settings, registry)
        check_at_start(app, settings)
        pool = pool or default_pool(settings)
        argv = worker_argv(settings, concurrency, pool, hostname=hostname, loglevel=loglevel)
        code = app.start(argv=argv)
    return int(code or 0)


def _json_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    use_json(logger)


def check_at_start(app: Any, settings: Settings) -> list[Check]:
    """``preflight`` for a Celery worker's main process: its store, its DLQ and its broker,
    one log line each. What it opened is closed again before the pool forks."""
    runtime = runtime_of(app)

    def connect() -> None:
        with app.connection_for_write() as conn:
            conn.connect()  # one attempt, unlike ensure_connection

    broker = probe(
        "broker",
        settings.broker_url,
        connect,
        up=f"consuming {settings.celery_queue}",
        down="Celery retries connecting until it answers",
    )
    # Celery sets up logging only as the worker starts: until then, these lines get a
    # handler of their own, in Celery's format.
    handler: logging.Handler | None = None
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(PREFLIGHT_FORMAT))
        preflight_log.addHandler(handler)
        preflight_log.setLevel(logging.INFO)
    try:
        return preflight(settings, runtime.executor().store, runtime.dead_letters(), broker)
    finally:
        runtime.close()
        if handler is not None:
            preflight_log.removeHandler(handler)
            preflight_log.setLevel(logging.NOTSET)


class ShutdownGrace(bootsteps.StartStopStep):  # type: ignore[misc]
    """A warm shutdown lasts at most ``shutdown_grace`` seconds, then turns cold.

    Celery's warm shutdown waits for running tasks however long they take. Once the grace
    has run out, the worker shuts down cold (SIGQUIT to itself, Celery's own signal for it):
    the pool is terminated, and what the stopped tasks held goes back to the broker
    (``task_reject_on_worker_lost``); the store's lease fences a tool that was cut off.
    """

    label = "intentq grace"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.grace = runtime_of(parent.app).settings.shutdown_grace
        self.parent = parent
        self._timer: threading.Timer | None = None
        self._owns_process = False

    def start(self, parent: Any) -> None:
        # A worker run in a thread of someone else's process (the demo, tests, an embedded
        # worker) leaves the process to its caller: no SIGQUIT to it, ever.
        self._owns_process = threading.current_thread() is threading.main_thread()
        worker_shutting_down.connect(self._signalled, weak=False, dispatch_uid=id(self))

    def _signalled(self, sender: Any = None, **_: Any) -> None:
        # Sent by the main process's signal handler: the grace counts from the signal, not
        # from when the polling loop notices it.
        if sender == self.parent.hostname:
            self.begin()

    def close(self, parent: Any) -> None:
        self.begin()  # Blueprint.stop closes every step first: the shutdown has begun

    def begin(self) -> None:
        """Start counting the grace (once). Runs on the main thread only."""
        if self._timer is None and self._owns_process:
            self._timer = threading.Timer(self.grace, self._expire, args=(os.getpid(),))
            self._timer.daemon = True
            self._timer.start()

    def _expire(self, pid: int) -> None:
        worker_shutting_down.disconnect(dispatch_uid=id(self))
        if self.parent.blueprint.state == bootsteps.TERMINATE:
            return  # stopped in time (a worker run in-process leaves its caller alone)
        log.warning(
            "the shutdown grace (%ss) ran out with tools running: stopping them; their "
            "messages go back to the broker",
            self.grace,
        )
        os.kill(pid, signal.SIGQUIT)


def _unwind_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _pool_child_started(**_: Any) -> None:
    # A prefork child waits for its next task holding the pool's shared queue lock (the
    # pool without an event loop, used with kombu's SQLAlchemy transport). Killed there by
    # a SIGTERM sent to the whole process group (systemd's KillMode=control-group,
    # `timeout`), it would never release the lock, and the main process would block on it
    # forever in billiard's pool finaliser at exit. Raised as SystemExit, the signal
    # unwinds the child and the lock is released on the way out.
    signal.signal(signal.SIGTERM, _unwind_on_sigterm)


def install_shutdown(app: Any) -> None:
    """Bound ``app``'s workers' warm shutdown by the grace, and let a pool child signalled
    from outside exit cleanly."""
    app.steps["worker"].add(ShutdownGrace)
    worker_process_init.connect(
        _pool_child_started, weak=False, dispatch_uid="intentq.pool-child-sigterm"
    )
