"""The relay: sends committed outbox rows to their transport and marks them sent.

```python
run_relay(Settings.load())        # what `intentq relay` runs, until SIGTERM
```

A pass claims a batch (``intentq.outbox.claims``), sends it (``intentq.outbox.sending``) and
marks what became of each row, in that order: a relay that dies between sending and
marking sends those rows again later, and the workers' idempotency store runs each key's
tool once. A broker out of reach leaves the rows pending; the relay tries again after a
doubling pause and logs once per outage. A database out of reach stops the relay
(``OutboxUnavailable``); SIGTERM lets the batch in flight finish first.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from intentq.errors import IntentqError, TransportError
from intentq.outbox.claims import Claimer, Marks, claimer_for
from intentq.outbox.ops import purge_sent
from intentq.outbox.sending import RowSender
from intentq.outbox.wakeup import Listening
from intentq.retrying import doubling, retry_call

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from intentq.config.settings import Settings
    from intentq.outbox.database import OutboxDatabase

log = logging.getLogger("intentq.outbox")

# After a pass that found the broker out of reach: the first pause, doubled up to the last.
OUTAGE_FIRST = 0.5
OUTAGE_MAX = 30.0
# Sent rows past the retention period are deleted this often (seconds).
PURGE_EVERY = 60.0


@dataclass
class Totals:
    """What a relay did since it started."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    passes: int = 0
    outages: int = 0
    purged: int = 0

    def add(self, marks: Marks) -> None:
        self.sent += len(marks.sent)
        self.failed += len(marks.failed)
        self.deferred += len(marks.deferred)
        self.passes += 1


@dataclass(frozen=True)
class Pass:
    """One batch: how many rows were claimed and what became of them."""

    claimed: int
    marks: Marks


class Held(TransportError):
    """The broker could not be reached: this pass left rows pending (``marks`` has the rest)."""

    def __init__(self, cause: BaseException, result: Pass) -> None:
        super().__init__(str(cause))
        self.result = result


class _Stopping(IntentqError):
    """Control flow: the relay was asked to stop while it waited out an outage."""


def _wait(stop: threading.Event, seconds: float) -> None:
    stop.wait(seconds)


def relay_name() -> str:
    """This relay's name in the lease row and logs: host, pid and a random suffix."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Relay:
    """Relays one outbox table. ``db``, ``sqs_client`` and ``celery_app`` are made from the
    settings unless given (given ones stay open after ``close()``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        db: OutboxDatabase | None = None,
        sqs_client: SQSClient | None = None,
        celery_app: Any = None,
        name: str | None = None,
    ) -> None:
        from intentq.connections import open_outbox_for

        self.settings = settings
        self.name = name or relay_name()
        self._own_db = db is None
        self.db = db if db is not None else open_outbox_for(settings, must_exist=True)
        self.claimer: Claimer = claimer_for(self.db, self.name, settings.outbox_lease)
        self.sender = RowSender(settings, sqs_client=sqs_client, celery_app=celery_app)
        self.totals = Totals()
        self._outage_since: float | None = None
        self._purged_at: float | None = None

    def relay_once(self) -> Pass:
        """Claim, send and mark one batch; ``Held`` (after marking the rest) if the broker
        could not be reached."""
        with self.claimer.batch(self.settings.outbox_batch_size) as batch:
            marks = self.sender.send(batch.rows) if batch.rows else Marks()
            if len(marks):
                batch.mark(marks)
        self.totals.add(marks)
        result = Pass(len(batch.rows), marks)
        if marks.held is not None:
            raise Held(marks.held, result)
        return result

    def drain(self) -> Totals:
        """Relay until no row is ready (tests, ``intentq relay --once``); ``Held`` if the
        broker is out of reach."""
        while self.relay_once().claimed >= self.settings.outbox_batch_size:
            pass
        return self.totals

    def run(self, stop: threading.Event) -> Totals:
        """Relay until ``stop`` is set; the batch in flight then finishes first."""
        self.db.check_schema()
        wakeup = Listening.for_database(self.db)
        log.info("relay %s started on the outbox table %r", self.name, self.db.table.name)
        try:
            while not stop.is_set():
                try:
                    done = retry_call(
                        lambda: self._pass(stop),
                        retry_on=Held,
                        pauses=doubling(OUTAGE_FIRST, OUTAGE_MAX),
                        on_failure=self._outage,
                        sleep=lambda pause: _wait(stop, pause),
                    )
                except _Stopping:
                    break
                self._outage_over()
                self._housekeeping()
                if done.claimed < self.settings.outbox_batch_size:
                    wakeup.wait(self.settings.outbox_poll_interval, stop)
        finally:
            wakeup.close()
        log.info(
            "relay %s stopped: %d sent, %d failed", self.name, self.totals.sent, self.totals.failed
        )
        return self.totals

    def _pass(self, stop: threading.Event) -> Pass:
        if stop.is_set():
            raise _Stopping("stopping")
        return self.relay_once()

    def _outage(self, exc: BaseException, pause: float | None) -> None:
        """Log the first failed pass of an outage, not every one (nor every row)."""
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self.totals.outages += 1
            log.warning(
                "the broker cannot be reached (%s): rows stay pending; trying again with "
                "backoff, silently until it answers", exc,
            )  # fmt: skip

    def _outage_over(self) -> None:
        if self._outage_since is not None:
            log.info("the broker answers again after %.1fs", time.monotonic() - self._outage_since)
            self._outage_since = None

    def _housekeeping(self) -> None:
        """Delete sent rows past the retention period, at most every ``PURGE_EVERY``."""
        now = time.monotonic()
        if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        removed = purge_sent(self.db, self.settings.outbox_retention)
        self.totals.purged += removed
        if removed:
            log.info("deleted %d sent row(s) past the retention period", removed)

    def close(self) -> None:
        """Let go of the table (SQLite's lease), close what was made here."""
        try:
            with suppress(IntentqError):  # a database gone: the lease runs out by itself
                self.claimer.release()
        finally:
            self.sender.close()
            if self._own_db:
                self.db.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_relay(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    once: bool = False,
    **options: Any,
) -> Totals:
    """Run a relay until SIGTERM or SIGINT (or ``stop``); with ``once``, until nothing is
    ready. ``options`` go to ``Relay``. Serves its metrics when ``metrics_port`` is set."""
    stop = stop or threading.Event()
    with Relay(settings, **options) as relay:
        if once:
            relay.db.check_schema()
            return relay.drain()
        with _signals(stop), _metrics(settings, relay):
            return relay.run(stop)


@contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (in the main thread; elsewhere the caller's ``stop``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d: finishing the batch in flight, then stopping", signum)
        stop.set()

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


@contextmanager
def _metrics(settings: Settings, relay: Relay) -> Iterator[None]:
    if settings.metrics_port is None:
        yield
        return
    from intentq.outbox.metrics import serve_relay_metrics

    server = serve_relay_metrics(settings, relay)
    try:
        yield
    finally:
        server.close()
