"""Results and errors as stored: JSON text, so falsy values (``0``, ``{}``, ``None``) survive."""

from __future__ import annotations

import json
from typing import Any

# Built once: ``json.dumps`` with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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
