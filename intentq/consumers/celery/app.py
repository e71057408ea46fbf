"""The Celery app factory: safe defaults, one task per tool, no global app.

``create_app(settings, registry)`` builds a new app; ``configure_app(app, settings)`` sets up
an existing one, so ``@app.task(base=IdempotentTask)`` works on the user's own app too.
"""

from __future__ import annotations

import math
from typing import Any

from intentq.extras import MissingExtra

try:
    from celery import Celery
except ImportError as exc:  # the first import of celery in this package
    raise MissingExtra("celery", "celery", "the Celery transport") from exc

from intentq.config.settings import Settings
from intentq.consumers.celery.publish import RAW_TASK, TASK_PREFIX, task_name
from intentq.consumers.celery.runtime import APP_ATTRIBUTE, Runtime
from intentq.consumers.celery.task import IdempotentTask
from intentq.dedup.base import DedupStore
from intentq.dlq.base import DeadLetterStore
from intentq.observe import Observer, observer_for
from intentq.registry import Registry
from intentq.sqs.queues import MAX_VISIBILITY

# Seconds a broker keeps a delivered message hidden beyond the longest lease or retry delay.
VISIBILITY_MARGIN = 60.0
# How long a prefork pool waits for a killed child's last result before calling it lost.
# Celery waits 10 s; here a missed result costs only a redelivery the store answers.
WORKER_LOST_WAIT = 2.0
CONSUMER = "intentq.consumers.celery.consumer:DeadLetteringConsumer"


def visibility_timeout(settings: Settings, registry: Registry | None = None) -> int:
    """Seconds a Redis or SQS broker hides a delivered message before handing it out again.

    It must outlast the longest lease and the longest retry countdown: a retried task waits
    for its countdown in a worker's memory, unacknowledged, and a message that reappears
    while it is held runs again (kombu's Redis transport). Duplicates are deduplicated
    anyway, but each costs a round trip.
    """
    leases = [settings.lease, *(spec.lease for spec in registry or () if spec.lease)]
    longest = max(max(leases), settings.backoff_max)
    # Within the 12 hours SQS allows, whatever the broker.
    return min(math.ceil(longest + VISIBILITY_MARGIN), MAX_VISIBILITY)


def transport_options(settings: Settings, registry: Registry | None = None) -> dict[str, Any]:
    """Broker transport options for ``settings.broker_url``."""
    scheme = settings.broker_url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "sentinel"):
        return {"visibility_timeout": visibility_timeout(settings, registry)}
    if scheme == "sqs":
        return {
            "visibility_timeout": visibility_timeout(settings, registry),
            "region": settings.aws_region,
            "wait_time_seconds": settings.sqs_wait_seconds,
        }
    # No options for kombu's SQL transport: it hands every one to SQLAlchemy's create_engine.
    return {}


def configure_app(
    app: Any,
    settings: Settings,
    registry: Registry | None = None,
    *,
    dedup: DedupStore | None = None,
    dlq: DeadLetterStore | None = None,
    result_backend: str | None = None,
    broker_transport_options: dict[str, Any] | None = None,
    observer: Observer | None = None,
) -> Any:
    """Set up ``app`` for intentq: JSON only, late acks, one ``intentq.<tool>`` task per tool.

    ``dedup`` and ``dlq`` are used as given in every process (fit for the solo and threads
    pools); left out, each worker process opens its own from ``settings`` on first use.
    ``broker_transport_options`` are merged over the computed ones. ``observer`` (metrics,
    traces, decision logs) defaults to what ``settings`` turn on.
    """
    registry = registry if registry is not None else Registry()
    options = {**transport_options(settings, registry), **(broker_transport_options or {})}
    conf = app.conf
    conf.update(
        # Nothing is ever unpickled: a pickled message is dead-lettered unread.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure=True,
        task_acks_on_timeout=False,
        # A task whose ack is lost with the connection finishes and records its result;
        # the redelivered copy then gets that result instead of cutting the tool off.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_lost_wait=WORKER_LOST_WAIT,
        broker_connection_retry_on_startup=True,
        broker_transport_options={**(conf.broker_transport_options or {}), **options},
        worker_consumer=CONSUMER,
    )
    if not conf.value_set_for("worker_prefetch_multiplier"):
        # One message reserved per process: a long tool holds back no other message, and
        # fewer messages wait out the visibility timeout after a crash. A value the app
        # already chose is a throughput choice of its own and is kept.
        conf.worker_prefetch_multiplier = 1
    ours = {f"{TASK_PREFIX}*": {"queue": settings.celery_queue}}
    ours[RAW_TASK] = {"queue": settings.celery_queue}
    routes = conf.task_routes
    if routes is None or isinstance(routes, dict):
        # The app's own routes win: a slow tool may well have a queue of its own.
        conf.task_routes = {**ours, **(routes or {})}
    else:
        conf.task_routes = (*routes, ours)
    if result_backend is not None:
        conf.result_backend = result_backend
    if observer is None:
        observer = observer_for(settings)
    runtime = Runtime(settings, registry, dedup=dedup, dlq=dlq, observer=observer)
    setattr(app, APP_ATTRIBUTE, runtime)
    # Imported here: the worker module builds on this one.
    from intentq.consumers.celery.worker import install_shutdown

    install_shutdown(app)
    for spec in registry:
        _register(app, task_name(spec.name), intentq_tool=spec.name)
    _register(app, RAW_TASK, intentq_raw=True)
    return app


def create_app(
    settings: Settings,
    registry: Registry,
    *,
    dedup: DedupStore | None = None,
    dlq: DeadLetterStore | None = None,
    result_backend: str | None = None,
    broker_transport_options: dict[str, Any] | None = None,
    main: str = "intentq",
    observer: Observer | None = None,
) -> Any:
    """A new Celery app on ``settings.broker_url`` running ``registry``'s tools.

    Results are stored only when ``result_backend`` is given. The app is not made Celery's
    current app, and nothing connects until it is used.
    """
    app = Celery(main, broker=settings.broker_url, set_as_current=False)
    app.conf.task_default_queue = settings.celery_queue
    return configure_app(
        app,
        settings,
        registry,
        dedup=dedup,
        dlq=dlq,
        result_backend=result_backend,
        broker_transport_options=broker_transport_options,
        observer=observer,
    )


def _envelope_stub(*args: Any, **kwargs: Any) -> Any:
    """Never called: ``IdempotentTask.__call__`` hands the envelope to the executor."""
    raise NotImplementedError


def _register(app: Any, name: str, **attributes: Any) -> None:
    # shared=False: the task belongs to this app only, not to every app made later.
    app.task(name=name, base=IdempotentTask, shared=False, lazy=False, **attributes)(_envelope_stub)
