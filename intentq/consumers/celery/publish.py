"""Sending intents to Celery workers, and re-sending dead letters' raw bodies (replay).

An intent travels as the Celery task ``intentq.<tool>`` with one positional argument, the
envelope as a JSON object, and the intent id as the task id. A dead letter of a plain Celery
task keeps ``{"celery_task": name, "id": task id, "args": [...], "kwargs": {...}}`` as its
body, so it can be re-sent as that task. Any other body goes to the ``intentq:raw`` task,
which hands it to the executor as raw bytes: it is dead-lettered again with its reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from intentq.errors import InvalidIntent
from intentq.intent import Intent, canonical_json

TASK_PREFIX = "intentq."
# A colon cannot appear in a tool name, so this never collides with ``intentq.<tool>``.
RAW_TASK = "intentq:raw"
# Fixed namespace: the raw task's id is derived from the body, the same in every process.
RAW_NAMESPACE = uuid.UUID("0b6c2f1e-8d4a-5f3b-9c7e-1a2b3c4d5e6f")


def task_name(tool: str) -> str:
    """The Celery task that runs ``tool``: ``intentq.<tool>``."""
    return f"{TASK_PREFIX}{tool}"


def publish(app: Any, intent: Intent, queue: str, headers: Mapping[str, str] | None = None) -> Any:
    """Send ``intent`` to ``queue``; the task id is the intent id. Returns an ``AsyncResult``.

    ``headers`` go along as message headers (the trace context, ``traceparent``).
    """
    return app.send_task(
        task_name(intent.tool), args=[intent.as_dict()], task_id=intent.intent_id, queue=queue,
        headers=dict(headers) if headers else None,
    )  # fmt: skip


@dataclass(frozen=True)
class PlainTask:
    """A plain Celery task call, as a dead letter keeps it."""

    name: str
    task_id: str
    args: list[Any]
    kwargs: dict[str, Any]

    def to_json(self) -> bytes:
        return canonical_json(
            {"celery_task": self.name, "id": self.task_id, "args": self.args, "kwargs": self.kwargs}
        )


def parse_plain_task(body: bytes) -> PlainTask | None:
    """The plain task call ``body`` describes, or ``None`` if it is something else."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict) or set(data) != {"celery_task", "id", "args", "kwargs"}:
        return None
    name, task_id, args, kwargs = data["celery_task"], data["id"], data["args"], data["kwargs"]
    if not (isinstance(name, str) and isinstance(task_id, str)):
        return None
    if not (isinstance(args, list) and isinstance(kwargs, dict)):
        return None
    return PlainTask(name, task_id, args, kwargs)


def publish_raw(app: Any, body: bytes, queue: str, headers: Mapping[str, str] | None = None) -> Any:
    """Re-send a dead letter's raw body to ``queue``.

    An envelope is published as its intent (same task id, so duplicates are deduplicated);
    a plain task call as that task with its own id; anything else to ``intentq:raw``, which
    dead-letters it again with the reason it fails for.
    """
    try:
        intent = Intent.parse(body)
    except InvalidIntent:
        pass
    else:
        return publish(app, intent, queue, headers)
    extra = dict(headers) if headers else None
    plain = parse_plain_task(body)
    if plain is not None:
        return app.send_task(
            plain.name, args=plain.args, kwargs=plain.kwargs, task_id=plain.task_id, queue=queue,
            headers=extra,
        )  # fmt: skip
    raw_id = uuid.uuid5(RAW_NAMESPACE, hashlib.sha256(body).hexdigest())
    return app.send_task(
        RAW_TASK, args=[base64.b64encode(body).decode("ascii")], task_id=str(raw_id), queue=queue,
        headers=extra,
    )  # fmt: skip
