"""Results and errors as stored: JSON text, so falsy values (``0``, ``{}``, ``None``) survive.

Every record states the format it was written in (Redis field ``fmt``, SQL column
``record_format``). Format 1 is JSON text for ``result`` and ``error``; a record without one
was written by intentq 0.1, in the same JSON, and reads as it always did. A record in a
format newer than ``RECORD_FORMAT`` is refused (``NewerRecordFormat``), never guessed at.
"""

from __future__ import annotations

import json
from typing import Any

from intentq.errors import NewerRecordFormat

# The record format this code writes, and the newest it reads.
RECORD_FORMAT = 1
# What a record without a stated format was written in: intentq 0.1's, read as format 1.
LEGACY_FORMAT = 0

# Built once: ``json.dumps`` with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_format(stated: Any) -> int:
    """The format a record states (``None`` or empty: 0.1's); ``NewerRecordFormat`` if this
    code cannot read it."""
    if stated is None or stated in ("", b""):
        return LEGACY_FORMAT
    found = int(stated)
    if found > RECORD_FORMAT:
        raise NewerRecordFormat(found, RECORD_FORMAT)
    return found


def dump(value: Any) -> str:
    """Strict, compact JSON (no NaN): what every backend stores for a result or an error."""
    return _ENCODER.encode(value)


def load(text: str | bytes | None) -> Any:
    """The stored JSON back as a value; a missing field reads as ``None``."""
    return None if text is None else json.loads(text)


def load_error(text: str | bytes | None) -> dict[str, Any]:
    """A stored error dict (``{}`` when none was kept)."""
    value = load(text)
    return dict(value) if isinstance(value, dict) else {}
