"""Start, serve and stop an SQS worker: ``start_worker``, ``serve``, ``run_worker``."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from intentq.config.settings import Settings
from intentq.consumers.sqs.worker import SqsWorker
from intentq.errors import IntentqError
from intentq.preflight import preflight, probe
from intentq.registry import Registry
from intentq.sqs.queues import is_queue_url

log = logging.getLogger("intentq.sqs")

EXIT_OK = 0
EXIT_ABANDONED = 1  # stopped, but tools were still running when the grace ran out
EXIT_ERROR = 2  # could not start: bad settings, queue missing, a required store unreachable
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def start_worker(settings: Settings, registry: Registry) -> SqsWorker:
    """A worker with its store, DLQ and queue checked (one log line each, ``preflight``);
    a start error (bad settings, a schema this code cannot use, the queue missing or
    unreachable, the store unreachable with ``require_store``) is raised as the
    ``IntentqError`` it is. An unreachable store or DLQ alone is a warning."""
    worker = SqsWorker(settings, registry)
    try:
        queue = probe(
            "queue",
            settings.sqs_queue if is_queue_url(settings.sqs_queue) else _queue_shown(settings),
            lambda: worker.queue,
            up="receiving from it",
            down="the worker does not start",
        )
        preflight(settings, worker.store, worker.dlq, queue)
        worker.queue  # noqa: B018 - a queue that did not answer: raise why, a start error
    except BaseException:
        worker.close()
        raise
    return worker


def _queue_shown(settings: Settings) -> str:
    where = settings.sqs_endpoint_url or f"SQS {settings.aws_region}"
    return f"{settings.sqs_queue} at {where}"


def serve(worker: SqsWorker) -> int:
    """Run a started worker until SIGTERM/SIGINT, then close it; returns the exit code."""
    with worker, stop_on_signals(worker):
        worker.run()
    return EXIT_ABANDONED if worker.unfinished else EXIT_OK


def run_worker(settings: Settings, registry: Registry) -> int:
    """Run an SQS worker until SIGTERM/SIGINT; returns the process exit code."""
    try:
        worker = start_worker(settings, registry)
    except IntentqError as exc:
        log.error("cannot start the SQS worker: %s", exc)
        return EXIT_ERROR
    return serve(worker)


@contextmanager
def stop_on_signals(worker: SqsWorker) -> Iterator[None]:
    """SIGTERM/SIGINT stop the worker gracefully; a second one drops the grace."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if worker.stopping:
            log.warning("second %s: not waiting for running tools", signal.Signals(signum).name)
            worker.stop(grace=0)
        else:
            log.info("%s: stopping after running tools finish", signal.Signals(signum).name)
            worker.stop()

    previous = {sig: signal.signal(sig, handle) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
