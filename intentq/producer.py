"""The producer: build intents, check them against the registry, send them to SQS or Celery.

```python
producer = Producer(Settings.load(), registry)
intent = producer.enqueue("book_slot", {"slot": "15:00"}, key=key_for_tool_call(conv, call))
```

Sending an intent twice is safe: the worker's store runs its tool once per ``(tool, key)``.
So after any error here, send the same intents again (same keys).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, overload

from intentq.config.settings import Settings
from intentq.connections import sqs_client_for
from intentq.errors import IntentqError, InvalidIntent, TransportError, TransportUnavailable
from intentq.intent import Intent
from intentq.observe.workers import tracing_for
from intentq.registry import Registry
from intentq.sqs.queues import queue_name
from intentq.sqs.send import DEFAULT_GROUP, Outgoing, SendFailed, SqsSender, fifo_id, group_id

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from intentq.dedup.base import DedupStore
    from intentq.observe.tracing import Sending
    from intentq.ops.awaiting import Awaited
    from intentq.waiting.blocking import Waiter

__all__ = ["IntentItem", "Producer", "SendFailed"]

# The meta field and message header of the W3C trace context (intentq.observe.tracing).
TRACEPARENT = "traceparent"


class Untraced:
    """What a send carries when tracing is off: no trace headers."""

    carrier: Mapping[str, str] = {}

    def sent(self, message_id: str | None) -> None:
        pass


UNTRACED = Untraced()

# What ``enqueue_many`` takes: an Intent, {"tool", "args", "key"?, "meta"?},
# or a tuple (tool, args[, key[, meta]]).
IntentItem = Intent | Mapping[str, Any] | Sequence[Any]


class Producer:
    """Sends intents the way ``settings.transport`` says: SQS or Celery.

    A given ``sqs_client``, ``celery_app`` or ``store`` stays open; ones the producer makes
    are closed by ``close()``. The store (``INTENTQ_DEDUP_URL`` unless given) is opened only
    to wait for results.
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry | None = None,
        *,
        sqs_client: SQSClient | None = None,
        celery_app: Any = None,
        store: DedupStore | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self._sqs_client = sqs_client
        self._celery_app = celery_app
        self._own_client = False
        self._own_app = False
        self._sender: SqsSender | None = None
        self._lock = threading.Lock()
        # None when tracing is off, or opentelemetry-api is missing and was not asked for.
        self._tracing = tracing_for(settings)
        self._store, self._own_store = store, False
        self._waiter: Waiter | None = None

    # -- building ------------------------------------------------------------------------

    def intent(
        self,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Intent:
        """A checked intent, not sent: ``UnknownTool``, ``InvalidArgs``, ``InvalidIntent``."""
        if self.registry is not None:
            self.registry.validate(tool, args)
        intent = Intent.create(tool, args, key=key, meta=meta)
        self._check_size(intent.to_json())
        return intent

    # -- sending -------------------------------------------------------------------------

    @overload
    def enqueue(
        self,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        wait: None = None,
    ) -> Intent: ...

    @overload
    def enqueue(
        self,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        wait: float,
    ) -> Awaited: ...

    def enqueue(
        self,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        wait: float | None = None,
    ) -> Intent | Awaited:
        """Check and send one intent; ``key`` defaults to the new intent id.

        With ``wait`` (seconds), returns its ``Awaited`` instead: see ``result``.
        """
        intent = self.intent(tool, args, key=key, meta=meta)
        waiter = self._waiting() if wait is not None else None  # the store first: fail early
        self.send_intent(intent)
        if waiter is None or wait is None:
            return intent
        return waiter.result(intent, wait)

    def result(self, intent: Intent, timeout: float) -> Awaited:
        """What became of ``intent`` within ``timeout`` seconds: its result, its dead letter's
        reason and id, or a timed-out ``Awaited`` (it may still run).

        Wakes on the store's notification on Redis and PostgreSQL, polls SQLite and memory.
        ``KeyReuseMismatch`` if the key holds another call's record.
        """
        return self._waiting().result(intent, timeout)

    def enqueue_many(self, items: Iterable[IntentItem]) -> list[Intent]:
        """Check every item first, then send them all (SQS: batches of 10)."""
        intents = [self._coerce(item) for item in items]
        if not intents:
            return []
        queue = self._queue(None)
        with self._sending(queue, count=len(intents)) as trace:
            intents = [self._traced(intent, trace) for intent in intents]
            if self.settings.transport == "celery":
                for intent in intents:
                    self._publish(intent, queue, trace.carrier)
                return intents
            outgoing = [self._outgoing(intent, trace.carrier) for intent in intents]
            self._sqs().send_many(queue, outgoing)
        return intents

    def send_intent(self, intent: Intent, queue: str | None = None) -> str | None:
        """Send an intent; returns the SQS MessageId (or Celery's task id).

        With tracing on, the envelope sent carries its send's ``meta["traceparent"]`` (unless
        it has one): a dead letter of it, replayed, links back to this trace.
        """
        queue = self._queue(queue)
        origin = intent.meta.get(TRACEPARENT)
        with self._sending(queue, intent=intent, origin=origin) as trace:
            intent = self._traced(intent, trace)
            self._check_size(intent.to_json())
            if self.settings.transport == "celery":
                message_id = self._publish(intent, queue, trace.carrier)
            else:
                message_id = self._sqs().send(queue, self._outgoing(intent, trace.carrier))
            trace.sent(message_id)
        return message_id

    def send_raw(
        self, body: bytes, queue: str | None = None, *, dedup_id: str | None = None
    ) -> str | None:
        """Re-send a body exactly as it was (a dead letter's replay).

        On a FIFO queue the deduplication id is fresh unless given: the original's key may
        still sit in SQS's 5-minute window, which would drop the replay silently. The store
        still runs the tool at most once per key.
        """
        self._check_size(body)
        queue = self._queue(queue)
        try:
            intent: Intent | None = Intent.parse(body, max_bytes=len(body))
        except InvalidIntent:
            intent = None
        # The body keeps the trace it was first sent in: this send links to it.
        origin = intent.meta.get(TRACEPARENT) if intent is not None else None
        with self._sending(queue, intent=intent, origin=origin) as trace:
            if self.settings.transport == "celery":
                from intentq.consumers.celery import publish_raw

                with _celery_errors(queue):
                    result = publish_raw(self._app(), body, queue, trace.carrier)
                message_id = _task_id(result)
            else:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidIntent("malformed_json", f"SQS bodies are text: {exc}") from exc
                group = group_id(intent) if intent is not None else DEFAULT_GROUP
                dedup = fifo_id(dedup_id or uuid.uuid4().hex)
                message = Outgoing(text, "raw", group, dedup, trace.carrier)
                message_id = self._sqs().send(queue, message)
            trace.sent(message_id)
        return message_id

    def close(self) -> None:
        """Close the client, app or store the producer made itself."""
        if self._waiter is not None:
            self._waiter.close()
            self._waiter = None
        if self._own_store and self._store is not None:
            self._store.close()
            self._store, self._own_store = None, False
        if self._own_client and self._sqs_client is not None:
            self._sqs_client.close()
            self._sqs_client, self._sender, self._own_client = None, None, False
        if self._own_app and self._celery_app is not None:
            self._celery_app.close()
            self._celery_app, self._own_app = None, False

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------

    def _check_size(self, body: bytes) -> None:
        limit = self.settings.max_message_bytes
        if len(body) > limit:
            raise InvalidIntent("too_large", f"{len(body)} bytes, the limit is {limit}")

    def _coerce(self, item: IntentItem) -> Intent:
        if isinstance(item, Intent):
            if self.registry is not None:
                self.registry.validate(item.tool, item.args)
            self._check_size(item.to_json())
            return item
        if isinstance(item, Mapping):
            unknown = set(item) - {"tool", "args", "key", "meta"}
            if unknown or "tool" not in item or "args" not in item:
                raise InvalidIntent(
                    "bad_field_type", f"an item needs tool and args, got {sorted(item)}"
                )
            return self.intent(item["tool"], item["args"], item.get("key"), item.get("meta"))
        if isinstance(item, Sequence) and not isinstance(item, str | bytes) and len(item) >= 2:
            if len(item) > 4:
                raise InvalidIntent("bad_field_type", "an item is (tool, args[, key[, meta]])")
            return self.intent(*item)
        raise InvalidIntent("bad_field_type", f"cannot make an intent of {type(item).__name__}")

    def _outgoing(self, intent: Intent, attributes: Mapping[str, str]) -> Outgoing:
        body = intent.to_json().decode("ascii")  # canonical JSON is ASCII
        return Outgoing(body, intent.intent_id, group_id(intent), fifo_id(intent.key), attributes)

    def _queue(self, queue: str | None) -> str:
        if queue:
            return queue
        celery = self.settings.transport == "celery"
        return self.settings.celery_queue if celery else self.settings.sqs_queue

    @contextmanager
    def _sending(
        self,
        queue: str,
        *,
        count: int = 1,
        intent: Intent | None = None,
        origin: Any = None,
    ) -> Iterator[Sending | Untraced]:
        """A PRODUCER span for one send (intentq.observe.tracing), or nothing to trace."""
        if self._tracing is None:
            yield UNTRACED
            return
        with self._tracing.sending(
            self.settings.transport, queue_name(queue), count=count,
            tool=intent.tool if intent is not None else None,
            intent_id=intent.intent_id if intent is not None else None,
            origin=origin if isinstance(origin, str) else None,
        ) as sending:  # fmt: skip
            yield sending

    @staticmethod
    def _traced(intent: Intent, trace: Sending | Untraced) -> Intent:
        """``intent`` with its send's trace context in ``meta`` (kept if it has one)."""
        traceparent = trace.carrier.get(TRACEPARENT)
        if not traceparent or TRACEPARENT in intent.meta:
            return intent
        return replace(intent, meta={**intent.meta, TRACEPARENT: traceparent})

    def _sqs(self) -> SqsSender:
        with self._lock:
            if self._sender is None:
                if self._sqs_client is None:
                    self._sqs_client = sqs_client_for(self.settings)
                    self._own_client = True
                self._sender = SqsSender(self._sqs_client)
            return self._sender

    def _waiting(self) -> Waiter:
        from intentq.connections import open_store_for
        from intentq.waiting.blocking import Waiter

        with self._lock:
            if self._waiter is None:
                if self._store is None:
                    self._store, self._own_store = open_store_for(self.settings), True
                self._waiter = Waiter(self._store)
            return self._waiter

    def _app(self) -> Any:
        with self._lock:
            if self._celery_app is None:
                from intentq.consumers.celery import create_app

                self._celery_app = create_app(self.settings, self.registry or Registry())
                self._own_app = True
            return self._celery_app

    def _publish(
        self, intent: Intent, queue: str, headers: Mapping[str, str] | None = None
    ) -> str | None:
        from intentq.consumers.celery import publish

        with _celery_errors(queue):
            return _task_id(publish(self._app(), intent, queue, headers))


def _task_id(result: Any) -> str | None:
    task_id = getattr(result, "id", None)
    return str(task_id) if task_id is not None else None


@contextmanager
def _celery_errors(queue: str) -> Iterator[None]:
    """Broker errors from Celery/kombu become ``TransportUnavailable``/``TransportError``."""
    from kombu.exceptions import OperationalError

    where = f"publishing to Celery queue {queue!r}"
    try:
        yield
    except IntentqError:
        raise
    except (OperationalError, ConnectionError, TimeoutError, OSError) as exc:
        raise TransportUnavailable(f"{where}: {exc}") from exc
    except Exception as exc:
        raise TransportError(f"{where}: {exc}") from exc
