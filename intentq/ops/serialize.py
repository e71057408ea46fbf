"""Letters and records as plain JSON-able dicts, for ``--json`` output and scripts."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from intentq.dedup.base import Record
from intentq.dlq.base import DeadLetter


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _epoch(value: float) -> str | None:
    if not value or math.isinf(value):
        return None
    return datetime.fromtimestamp(value, UTC).isoformat()


def body_view(body: bytes) -> dict[str, Any]:
    """The body as JSON when it is JSON, as text when it is UTF-8, else base64."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}
    try:
        return {"body": json.loads(text)}
    except ValueError:
        return {"body_text": text}


def letter_summary(letter: DeadLetter) -> dict[str, Any]:
    """The fields a listing shows (no body, no traceback)."""
    return {
        "id": letter.id,
        "tool": letter.tool,
        "key": letter.key,
        "reason": str(letter.reason),
        "error_type": letter.error_type,
        "error_message": letter.error_message,
        "attempts": letter.attempts,
        "dead_at": _iso(letter.dead_at),
        "replay_count": letter.replay_count,
    }


def letter_detail(letter: DeadLetter) -> dict[str, Any]:
    """Everything a letter keeps; the body decoded as far as it goes."""
    out = asdict(letter)
    del out["body"]
    out["reason"] = str(letter.reason)
    for name in ("first_seen", "dead_at", "last_replayed_at"):
        out[name] = _iso(getattr(letter, name))
    out.update(body_view(letter.body))
    return out


def record_detail(record: Record) -> dict[str, Any]:
    """A store record with times as ISO 8601 (the store clock's)."""
    return {
        "tool": record.tool,
        "key": record.key,
        "state": str(record.state),
        "fingerprint": record.fingerprint,
        "owned": bool(record.token),
        "lease_until": _epoch(record.lease_until),
        "attempts": record.attempts,
        "result": record.result,
        "error": record.error,
        "created_at": _epoch(record.created_at),
        "updated_at": _epoch(record.updated_at),
        "expires_at": _epoch(record.expires_at),
    }
