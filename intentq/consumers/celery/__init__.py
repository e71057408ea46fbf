"""intentq on Celery: the app factory, the ``IdempotentTask`` base, publishing and the worker.

::

    from intentq.consumers.celery import create_app, publish

    app = create_app(Settings.load(), registry)
    publish(app, Intent.create("book_slot", {"slot": "15:00"}, key=key), "intentq")
"""

from __future__ import annotations

from intentq.consumers.celery.app import (
    configure_app,
    create_app,
    transport_options,
    visibility_timeout,
)
from intentq.consumers.celery.consumer import DeadLetteringConsumer
from intentq.consumers.celery.publish import RAW_TASK, publish, publish_raw, task_name
from intentq.consumers.celery.runtime import Runtime, runtime_of
from intentq.consumers.celery.task import DeadLettered, IdempotentTask
from intentq.consumers.celery.worker import run_worker, worker_argv

__all__ = [
    # the app
    "configure_app",
    "create_app",
    "transport_options",
    "visibility_timeout",
    "Runtime",
    "runtime_of",
    # tasks
    "DeadLettered",
    "IdempotentTask",
    "DeadLetteringConsumer",
    # sending
    "RAW_TASK",
    "publish",
    "publish_raw",
    "task_name",
    # the worker
    "run_worker",
    "worker_argv",
]
