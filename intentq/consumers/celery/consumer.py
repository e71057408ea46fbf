"""A worker consumer that dead-letters what Celery cannot hand to any task.

Celery drops some messages before a task ever sees them: a body that does not decode (it
logs and acks), a content type outside ``accept_content`` such as pickle (rejected unread),
a task name no worker registered, e.g. an intent for an unknown tool (rejected), and a
message with no task header at all. This consumer writes each to the DLQ first, with the
raw body, and only then lets Celery ack or reject it. When the DLQ cannot be written, the
message is requeued a little later instead of being dropped.

Runs in the worker's main process; its DLQ is opened there on the first such message.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery.worker.consumer.consumer import Consumer

from intentq.consumers.celery.publish import TASK_PREFIX, PlainTask
from intentq.consumers.celery.runtime import runtime_of
from intentq.consumers.celery.task import TRANSPORT
from intentq.dlq.base import DeadLetter, Reason
from intentq.errors import InvalidIntent
from intentq.intent import Intent, canonical_json
from intentq.outcome import Delivery, SendToDLQ

log = logging.getLogger("intentq.celery")

# A message whose letter could not be written comes back after this many seconds.
DLQ_RETRY_DELAY = 5.0
JSON = "application/json"


class DeadLetteringConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer; messages no task can take are dead-lettered before they go."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        letter = _raw_letter(self.app, message, Reason.POISON, "DecodeError", str(exc))
        if self._put(message, letter):
            super().on_decode_error(message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        # Also a disallowed content type: never decoded, the raw bytes are kept as they came.
        letter = _raw_letter(self.app, message, Reason.POISON, type(exc).__name__, str(exc))
        if self._put(message, letter):
            super().on_invalid_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        letter = _raw_letter(
            self.app, message, Reason.POISON, "UnknownMessage", "no task name in the message"
        )
        if self._put(message, letter):
            super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        letter = _unknown_task_letter(self.app, message)
        if self._put(message, letter):
            super().on_unknown_task(body, message, exc)

    def _put(self, message: Any, letter: DeadLetter) -> bool:
        try:
            letter_id = runtime_of(self.app).dead_letters().put(letter)
        except Exception:
            log.exception("could not dead-letter a %s message; requeued later", letter.reason)
            self.timer.call_after(DLQ_RETRY_DELAY, _requeue, (message,))
            return False
        log.warning("dead-lettered a message as %s: letter %s", letter.reason, letter_id)
        return True


def _requeue(message: Any) -> None:
    try:
        message.reject(requeue=True)
    except Exception:
        # The channel is gone: the broker redelivers the message on its own.
        log.warning("could not requeue a message", exc_info=True)


def _queue_of(app: Any, message: Any) -> str:
    info = getattr(message, "delivery_info", None) or {}
    return str(info.get("routing_key") or runtime_of(app).settings.celery_queue)


def _letter(app: Any, message: Any, body: bytes, reason: Reason, error_type: str, text: str,
            **ids: str | None) -> DeadLetter:  # fmt: skip
    now = datetime.now(UTC)
    return DeadLetter(
        id="",
        body=body,
        reason=reason,
        error_type=error_type,
        error_message=text[:2000],
        source_transport=TRANSPORT,
        source_queue=_queue_of(app, message),
        first_seen=now,
        dead_at=now,
        **ids,  # type: ignore[arg-type]
    )


def _raw_letter(app: Any, message: Any, reason: Reason, error_type: str, text: str) -> DeadLetter:
    headers = message.headers if isinstance(getattr(message, "headers", None), dict) else {}
    name, task_id = headers.get("task"), headers.get("id")
    tool = (
        name[len(TASK_PREFIX) :] if isinstance(name, str) and name.startswith(TASK_PREFIX) else name
    )
    raw = message.body
    body = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "replace")
    return _letter(
        app, message, body, reason, error_type, text,
        tool=tool if isinstance(tool, str) else None,
        intent_id=task_id if isinstance(task_id, str) else None,
    )  # fmt: skip


def _unknown_tool_letter(app: Any, message: Any, intent: Intent, name: str) -> DeadLetter:
    """The executor's letter for an intent no task here takes: like every refusal, it also
    leaves the key failed in the store with the letter's id, where a waiter looks."""
    queue = _queue_of(app, message)
    delivery = Delivery(TRANSPORT, queue, intent.intent_id)
    prepared = runtime_of(app).executor().prepare(intent.to_json(), delivery)
    if isinstance(prepared, SendToDLQ):
        return prepared.letter
    # The registry knows the tool, but this app has no task for it: a deployment mismatch.
    return _letter(
        app, message, intent.to_json(), Reason.UNKNOWN_TOOL, "UnknownTool",
        f"unknown tool {intent.tool!r}: no worker on this queue registers {name!r}",
        tool=intent.tool, key=intent.key, intent_id=intent.intent_id,
    )  # fmt: skip


def _unknown_task_letter(app: Any, message: Any) -> DeadLetter:
    headers = message.headers or {}
    name, task_id = str(headers.get("task", "")), str(headers.get("id", ""))
    if message.content_type != JSON:
        return _raw_letter(app, message, Reason.UNKNOWN_TOOL, "NotRegistered", f"task {name!r}")
    try:
        args, kwargs, _ = message.decode()
    except Exception:
        return _raw_letter(app, message, Reason.UNKNOWN_TOOL, "NotRegistered", f"task {name!r}")
    if name.startswith(TASK_PREFIX) and len(args) == 1 and not kwargs:
        try:
            intent = Intent.parse(canonical_json(args[0]))
        except (InvalidIntent, TypeError, ValueError):
            pass
        else:
            return _unknown_tool_letter(app, message, intent, name)
    body = PlainTask(name, task_id, list(args), dict(kwargs)).to_json()
    return _letter(
        app, message, body, Reason.UNKNOWN_TOOL, "NotRegistered",
        f"no worker on this queue registers task {name!r}", tool=name, intent_id=task_id,
    )  # fmt: skip
