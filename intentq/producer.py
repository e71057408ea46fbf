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
from typing import TYPE_CHECKING, Any

from intentq.config.settings import Settings
from intentq.connections import sqs_client_for
from intentq.errors import IntentqError, InvalidIntent, TransportError, TransportUnavailable
from intentq.intent import Intent
from intentq.registry import Registry
from intentq.sqs.send import DEFAULT_GROUP, Outgoing, SendFailed, SqsSender, fifo_id, group_id

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = ["IntentItem", "Producer", "SendFailed"]

# What ``enqueue_many`` takes: an Intent, {"tool", "args", "key"?, "meta"?},
# or a tuple (tool, args[, key[, meta]]).
IntentItem = Intent | Mapping[str, Any] | Sequence[Any]


class Producer:
    """Sends intents the way ``settings.transport`` says: SQS or Celery.

    A given ``sqs_client`` or ``celery_app`` stays open; ones the producer makes are closed
    by ``close()``.
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry | None = None,
        *,
        sqs_client: SQSClient | None = None,
        celery_app: Any = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self._sqs_client = sqs_client
        self._celery_app = celery_app
        self._own_client = False
        self._own_app = False
        self._sender: SqsSender | None = None
        self._lock = threading.Lock()

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

    def enqueue(
        self,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Intent:
        """Check and send one intent; ``key`` defaults to the new intent id."""
        intent = self.intent(tool, args, key=key, meta=meta)
        self.send_intent(intent)
        return intent

    def enqueue_many(self, items: Iterable[IntentItem]) -> list[Intent]:
        """Check every item first, then send them all (SQS: batches of 10)."""
        intents = [self._coerce(item) for item in items]
        if not intents:
            return []
        if self.settings.transport == "celery":
            for intent in intents:
                self._publish(intent, self.settings.celery_queue)
            return intents
        outgoing = [self._outgoing(intent) for intent in intents]
        self._sqs().send_many(self.settings.sqs_queue, outgoing)
        return intents

    def send_intent(self, intent: Intent, queue: str | None = None) -> str | None:
        """Send an intent as it is; returns the SQS MessageId (or Celery's task id)."""
        self._check_size(intent.to_json())
        if self.settings.transport == "celery":
            return self._publish(intent, queue or self.settings.celery_queue)
        return self._sqs().send(queue or self.settings.sqs_queue, self._outgoing(intent))

    def send_raw(
        self, body: bytes, queue: str | None = None, *, dedup_id: str | None = None
    ) -> str | None:
        """Re-send a body exactly as it was (a dead letter's replay).

        On a FIFO queue the deduplication id is fresh unless given: the original's key may
        still sit in SQS's 5-minute window, which would drop the replay silently. The store
        still runs the tool at most once per key.
        """
        self._check_size(body)
        if self.settings.transport == "celery":
            from intentq.consumers.celery import publish_raw

            with _celery_errors(queue or self.settings.celery_queue):
                result = publish_raw(self._app(), body, queue or self.settings.celery_queue)
            return _task_id(result)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidIntent("malformed_json", f"SQS bodies are text: {exc}") from exc
        try:
            group = group_id(Intent.parse(body, max_bytes=len(body)))
        except InvalidIntent:
            group = DEFAULT_GROUP
        message = Outgoing(text, "raw", group, fifo_id(dedup_id or uuid.uuid4().hex))
        return self._sqs().send(queue or self.settings.sqs_queue, message)

    def close(self) -> None:
        """Close the client or app the producer made itself."""
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

    def _outgoing(self, intent: Intent) -> Outgoing:
        body = intent.to_json().decode("ascii")  # canonical JSON is ASCII
        return Outgoing(body, intent.intent_id, group_id(intent), fifo_id(intent.key))

    def _sqs(self) -> SqsSender:
        with self._lock:
            if self._sender is None:
                if self._sqs_client is None:
                    self._sqs_client = sqs_client_for(self.settings)
                    self._own_client = True
                self._sender = SqsSender(self._sqs_client)
            return self._sender

    def _app(self) -> Any:
        with self._lock:
            if self._celery_app is None:
                from intentq.consumers.celery import create_app

                self._celery_app = create_app(self.settings, self.registry or Registry())
                self._own_app = True
            return self._celery_app

    def _publish(self, intent: Intent, queue: str) -> str | None:
        from intentq.consumers.celery import publish

        with _celery_errors(queue):
            return _task_id(publish(self._app(), intent, queue))


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
