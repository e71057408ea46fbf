"""A Celery worker in a thread of this process: the demo's worker, no subprocess needed."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from intentq.errors import IntentqError

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
# The SQLite broker is polled; kombu sleeps this long between empty polls (its default is 1 s,
# and the SQLAlchemy transport hands its options to create_engine, so it is set here).
POLL_INTERVAL = 0.1


class EmbeddedWorker:
    """``celery worker`` with the threads pool, run in a daemon thread, as a context manager."""

    def __init__(self, app: Any, concurrency: int = 4, hostname: str = "demo@localhost") -> None:
        from celery.worker import WorkController

        ready = threading.Event()

        class Controller(WorkController):  # type: ignore[misc]
            def on_consumer_ready(self, consumer: Any) -> None:
                transport = getattr(consumer.connection, "transport", None)
                if transport is not None and hasattr(transport, "polling_interval"):
                    transport.polling_interval = POLL_INTERVAL
                ready.set()

        # Pool threads look tasks' app up as Celery's default app: make it this one.
        app.set_default()
        self.app = app
        self._ready = ready
        self._controller = Controller(
            app=app,
            concurrency=concurrency,
            pool="threads",
            hostname=hostname,
            loglevel="INFO",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            queues=[app.conf.task_default_queue],
        )
        self._thread = threading.Thread(
            target=self._controller.start, name="intentq-demo-worker", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise IntentqError(f"the embedded Celery worker did not start in {START_TIMEOUT}s")

    def stop(self) -> None:
        self._controller.stop(in_sighandler=False)
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            raise IntentqError(f"the embedded Celery worker did not stop in {STOP_TIMEOUT}s")

    def __enter__(self) -> EmbeddedWorker:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
