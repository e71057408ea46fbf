"""Sending outbox rows: SQS through ``SendMessageBatch`` (intentq.sqs.send), Celery through
the producer; and sorting out what became of each row.

A row is *sent*, *failed* (it can never be sent: a body over the limit, a queue that does
not exist, a refusal of its content), or *deferred* (refused for now by a transient error
of its own). When the broker cannot be reached at all, the rows left are not touched and
``Marks.held`` says why: nothing is lost, the relay tries again after a pause.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from intentq.errors import TransportError, TransportUnavailable
from intentq.outbox.claims import Marks
from intentq.sqs.errors import MISSING_QUEUE_CODES, TRANSIENT_CODES, error_code
from intentq.sqs.queues import MAX_BATCH, is_fifo
from intentq.sqs.send import DEFAULT_GROUP, Outgoing, SendFailed, SqsSender, fifo_id

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from intentq.config.settings import Settings
    from intentq.outbox.table import OutboxRow
    from intentq.producer import Producer

# A row refused by a transient error of its own is tried again after this many seconds,
# doubled per attempt up to the ceiling; after this many attempts it has failed.
DEFER_FIRST = 1.0
DEFER_MAX = 60.0
MAX_ATTEMPTS = 10
# SendMessageBatch calls in flight at once for one standard queue (each of 10 messages).
SEND_THREADS = 4


class RowSender:
    """Sends rows to the destination each names; clients are made on first use (from the
    settings) unless given, and closed by ``close()`` if made here."""

    def __init__(
        self,
        settings: Settings,
        *,
        sqs_client: SQSClient | None = None,
        celery_app: Any = None,
    ) -> None:
        self.settings = settings
        self._sqs_client = sqs_client
        self._own_client = False
        self._sqs: SqsSender | None = None
        self._celery_app = celery_app
        self._producer: Producer | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def send(self, rows: list[OutboxRow]) -> Marks:
        """Send ``rows`` (in order per destination); what became of each."""
        marks = Marks()
        limit = self.settings.max_message_bytes
        for (transport, queue), group in _destinations(rows):
            sendable = []
            for row in group:
                size = len(row.body.encode("utf-8"))
                if size > limit:
                    marks.failed[row.id] = f"too_large: {size} bytes, the limit is {limit}"
                else:
                    sendable.append(row)
            try:
                if transport == "sqs":
                    self._send_sqs(queue, sendable, marks)
                elif transport == "celery":
                    self._send_celery(queue, sendable, marks)
                else:
                    for row in sendable:
                        marks.failed[row.id] = f"unknown transport {transport!r}"
            except TransportUnavailable as exc:
                marks.held = exc  # this destination's rows not yet sent stay as they are
        return marks

    # -- SQS ---------------------------------------------------------------------------

    def _sender(self) -> SqsSender:
        with self._lock:
            if self._sqs is None:
                if self._sqs_client is None:
                    from intentq.connections import sqs_client_for

                    self._sqs_client, self._own_client = sqs_client_for(self.settings), True
                self._sqs = SqsSender(self._sqs_client)
            return self._sqs

    def _send_sqs(self, queue: str, rows: list[OutboxRow], marks: Marks) -> None:
        sender = self._sender()
        try:
            sender.url(queue)
        except TransportUnavailable:
            raise
        except TransportError as exc:
            if error_code(exc.__cause__) not in MISSING_QUEUE_CODES:
                raise TransportUnavailable(str(exc)) from exc  # not the rows' fault: hold them
            for row in rows:
                marks.failed[row.id] = f"unknown queue: {exc}"
            return
        # Batch by batch, so that an outage midway keeps what the other batches sent. A FIFO
        # queue's batches go one after another (their groups' order); a standard queue's
        # several at once, as SQS keeps no order there anyway.
        chunks = [rows[i : i + MAX_BATCH] for i in range(0, len(rows), MAX_BATCH)]
        if is_fifo(queue) or len(chunks) == 1:
            results = [_attempt(sender, queue, chunk) for chunk in chunks]
        else:
            results = list(self._pool().map(lambda c: _attempt(sender, queue, c), chunks))
        held: BaseException | None = None
        for chunk, result in zip(chunks, results, strict=True):
            if isinstance(result, SendFailed):
                refused = {int(ref): why for ref, why in result.failed.items()}
                for row in chunk:
                    why = refused.get(row.id)
                    if why is None:
                        marks.sent[row.id] = None
                    else:
                        _refused(marks, row, why, transient=why.split(":", 1)[0] in TRANSIENT_CODES)
            elif isinstance(result, BaseException):
                held = held or result
            else:
                for row, message_id in zip(chunk, result, strict=True):
                    marks.sent[row.id] = message_id
        if held is not None:
            if isinstance(held, TransportUnavailable):
                raise held
            raise TransportUnavailable(str(held)) from held

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="intentq-relay")
            return self._threads

    # -- Celery ------------------------------------------------------------------------

    def _send_celery(self, queue: str, rows: list[OutboxRow], marks: Marks) -> None:
        producer = self._producer_for_celery()
        for row in rows:
            try:
                marks.sent[row.id] = producer.send_raw(row.body.encode("utf-8"), queue)
            except TransportUnavailable:
                raise
            except TransportError as exc:
                # The envelope is valid and within the limit: a refusal here is the broker's
                # or its settings' (a bad URL), not the row's. Hold it.
                raise TransportUnavailable(str(exc)) from exc

    def _producer_for_celery(self) -> Producer:
        with self._lock:
            if self._producer is None:
                from intentq.producer import Producer

                settings = self.settings.model_copy(update={"transport": "celery"})
                self._producer = Producer(settings, celery_app=self._celery_app)
            return self._producer

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown()
            self._threads = None
        if self._producer is not None:
            self._producer.close()
            self._producer = None
        if self._own_client and self._sqs_client is not None:
            self._sqs_client.close()
            self._sqs_client, self._sqs, self._own_client = None, None, False


def _attempt(sender: SqsSender, queue: str, chunk: list[OutboxRow]) -> list[str] | Exception:
    """One ``SendMessageBatch``: the message ids, or what went wrong."""
    try:
        return sender.send_many(queue, [_outgoing(row) for row in chunk])
    except (SendFailed, TransportError) as exc:
        return exc


def _outgoing(row: OutboxRow) -> Outgoing:
    """The SQS message of a row: its body, the writer's trace context, its FIFO ids (the
    deduplication id is the key, as the producer sends it)."""
    attributes = {"traceparent": row.traceparent} if row.traceparent else None
    return Outgoing(
        row.body, str(row.id), row.group_id or DEFAULT_GROUP, fifo_id(row.key), attributes
    )


def _refused(marks: Marks, row: OutboxRow, why: str, *, transient: bool) -> None:
    attempts = row.attempts + 1
    if transient and attempts < MAX_ATTEMPTS:
        marks.deferred[row.id] = (why, min(DEFER_MAX, DEFER_FIRST * 2 ** (attempts - 1)))
    else:
        marks.failed[row.id] = why


def _destinations(rows: list[OutboxRow]) -> Iterator[tuple[tuple[str, str], list[OutboxRow]]]:
    """Rows by ``(transport, queue)``, each list in the rows' order."""
    grouped: dict[tuple[str, str], list[OutboxRow]] = {}
    for row in rows:
        grouped.setdefault((row.transport, row.queue), []).append(row)
    yield from grouped.items()
