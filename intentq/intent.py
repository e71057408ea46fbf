"""The intent envelope (wire format version 1): parse, validate, canonical JSON, fingerprint."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from intentq.defaults import MAX_MESSAGE_BYTES
from intentq.errors import InvalidIntent

WIRE_VERSION = 1
# Every transport refuses bodies above it.
DEFAULT_MAX_BYTES = MAX_MESSAGE_BYTES
KEY_MAX_LENGTH = 200
_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{1,200}\Z")
_UUID_RE = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\Z"
)
# Fixed namespace: keys derived from tool-call ids must be the same in every process forever.
TOOL_CALL_NAMESPACE = uuid.UUID("6f1d7c52-4b0e-5c3e-9a57-2f9d4f7e1a10")
_REQUIRED = ("v", "intent_id", "key", "tool", "args")


def normalize_key(key: str) -> str:
    """Return ``key`` in canonical form (UUIDs lower-cased) or raise ``InvalidIntent``."""
    if not isinstance(key, str):
        raise InvalidIntent("bad_key", f"key must be a string, not {type(key).__name__}")
    if not _KEY_RE.match(key):
        raise InvalidIntent(
            "bad_key",
            f"key must be 1-{KEY_MAX_LENGTH} characters of [A-Za-z0-9._:-], got {key[:40]!r}",
        )
    return key.lower() if _UUID_RE.match(key) else key


_v7_lock = threading.Lock()
_v7_last = 0


def new_intent_id() -> str:
    """A new UUIDv7 (RFC 9562): time-ordered, strictly increasing within this process."""
    global _v7_last
    with _v7_lock:
        # 48-bit ms timestamp, then 12 bits of sub-ms counter (rand_a) keep ids monotonic
        # when several are made in one millisecond.
        now = time.time_ns() // 1_000_000 << 12
        stamp = max(now, _v7_last + 1)
        _v7_last = stamp
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (stamp >> 12) << 80 | 0x7 << 76 | (stamp & 0xFFF) << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def key_for_tool_call(conversation_id: str, tool_call_id: str) -> str:
    """A stable key for an LLM tool call: an agent that restarts re-derives the same key."""
    return str(uuid.uuid5(TOOL_CALL_NAMESPACE, f"{conversation_id}\x1f{tool_call_id}"))


# Built once: ``json.dumps``/``json.loads`` with options build a new coder on every call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII escapes: one byte string per JSON value."""
    return _CANONICAL.encode(value).encode("ascii")


def fingerprint(tool: str, args: Any) -> str:
    """sha256 of the canonical JSON of ``{"tool", "args"}``: what a key promises to mean."""
    return hashlib.sha256(canonical_json({"tool": tool, "args": args})).hexdigest()


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:20]}... is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _loads(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidIntent("malformed_json", f"body is not UTF-8: {exc}") from None
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise InvalidIntent("malformed_json", "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() refusing a huge literal
        raise InvalidIntent("malformed_json", str(exc)[:200]) from None


@dataclass(frozen=True)
class Intent:
    """One tool call to run at most once per ``(tool, key)``."""

    intent_id: str
    key: str
    tool: str
    args: Mapping[str, Any]
    created_at: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    v: int = WIRE_VERSION

    @classmethod
    def create(
        cls,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Intent:
        """A new intent; ``key`` defaults to the new intent id."""
        if not isinstance(tool, str) or not tool:
            raise InvalidIntent("bad_field_type", "tool must be a non-empty string")
        if not isinstance(args, Mapping):
            raise InvalidIntent("bad_field_type", "args must be a JSON object")
        intent_id = new_intent_id()
        intent = cls(
            intent_id=intent_id,
            key=normalize_key(key if key is not None else intent_id),
            tool=tool,
            args=dict(args),
            created_at=_utc_now(),
            meta=dict(meta or {}),
        )
        try:
            canonical_json(intent.as_dict())
        except (TypeError, ValueError) as exc:
            raise InvalidIntent("bad_field_type", f"not JSON-serialisable: {exc}") from None
        return intent

    @classmethod
    def parse(cls, data: bytes | str, max_bytes: int = DEFAULT_MAX_BYTES) -> Intent:
        """Decode and validate an envelope; raises only ``InvalidIntent``."""
        if isinstance(data, str):
            try:
                data = data.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidIntent("malformed_json", f"body is not UTF-8: {exc}") from None
        if len(data) > max_bytes:
            raise InvalidIntent("too_large", f"{len(data)} bytes, the limit is {max_bytes}")
        obj = _loads(data)
        if not isinstance(obj, dict):
            raise InvalidIntent("not_an_object", f"envelope is a JSON {type(obj).__name__}")
        missing = [name for name in _REQUIRED if name not in obj]
        if "v" in obj and (obj["v"] != WIRE_VERSION or isinstance(obj["v"], bool)):
            raise InvalidIntent("unsupported_version", f"version {str(obj['v'])[:20]!r}")
        if missing:
            raise InvalidIntent("missing_field", f"missing {', '.join(missing)}")
        intent_id, tool, args = obj["intent_id"], obj["tool"], obj["args"]
        meta, created_at = obj.get("meta", {}), obj.get("created_at", "")
        if not isinstance(intent_id, str) or not _UUID_RE.match(intent_id):
            raise InvalidIntent("bad_field_type", "intent_id must be a UUID string")
        if not isinstance(tool, str) or not tool:
            raise InvalidIntent("bad_field_type", "tool must be a non-empty string")
        if not isinstance(args, dict):
            raise InvalidIntent("bad_field_type", "args must be a JSON object")
        if not isinstance(meta, dict):
            raise InvalidIntent("bad_field_type", "meta must be a JSON object")
        if not isinstance(created_at, str):
            raise InvalidIntent("bad_field_type", "created_at must be a string")
        return cls(
            intent_id=intent_id.lower(),
            key=normalize_key(obj["key"]),
            tool=tool,
            args=args,
            created_at=created_at,
            meta=meta,
        )

    def as_dict(self) -> dict[str, Any]:
        """The envelope as a plain JSON-able dict."""
        return {
            "v": self.v,
            "intent_id": self.intent_id,
            "key": self.key,
            "tool": self.tool,
            "args": dict(self.args),
            "created_at": self.created_at,
            "meta": dict(self.meta),
        }

    def to_json(self) -> bytes:
        """The wire form: canonical JSON bytes."""
        return canonical_json(self.as_dict())

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the canonical ``{"tool", "args"}``; same key + other fingerprint = misuse."""
        return fingerprint(self.tool, self.args)
