"""Dead letters as JSON, so a letter the DLQ could not take rides along with a retried task."""

from __future__ import annotations

import base64
from dataclasses import fields
from datetime import datetime
from typing import Any

from intentq.dlq.base import DeadLetter, Reason

_TIMES = ("first_seen", "dead_at", "last_replayed_at")


def letter_to_json(letter: DeadLetter) -> dict[str, Any]:
    """Every field of ``letter`` as JSON: the body in base64, times in ISO 8601."""
    out: dict[str, Any] = {}
    for f in fields(letter):
        value = getattr(letter, f.name)
        if f.name == "body":
            value = base64.b64encode(value).decode("ascii")
        elif f.name == "reason":
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[f.name] = value
    return out


def letter_from_json(data: dict[str, Any]) -> DeadLetter:
    """The inverse of ``letter_to_json``."""
    values = dict(data)
    values["body"] = base64.b64decode(values["body"])
    values["reason"] = Reason(values["reason"])
    for name in _TIMES:
        if values.get(name):
            values[name] = datetime.fromisoformat(values[name])
    known = {f.name for f in fields(DeadLetter)}
    return DeadLetter(**{k: v for k, v in values.items() if k in known})
