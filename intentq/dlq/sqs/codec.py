"""A dead letter as an SQS message: the raw body, the metadata packed in a few attributes.

SQS allows at most 10 attributes per message and 1 MiB for body and attributes together, and
bodies must be Unicode text of an allowed set. A letter uses at most five attributes:

- ``intentq-id``: the letter id;
- ``intentq-reason``, ``intentq-tool``: for people reading the queue in a console;
- ``intentq-body-encoding``: ``base64`` (or ``empty``) when the body is not storable as text;
- ``intentq-meta``: JSON of every other field.

A message without ``intentq-meta`` arrived by the source queue's own redrive policy.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from intentq.defaults import MAX_MESSAGE_BYTES
from intentq.dlq.base import DeadLetter, Reason
from intentq.errors import DLQError, InvalidIntent
from intentq.intent import Intent

ID_ATTR = "intentq-id"
REASON_ATTR = "intentq-reason"
TOOL_ATTR = "intentq-tool"
ENCODING_ATTR = "intentq-body-encoding"
META_ATTR = "intentq-meta"
CODEC_VERSION = 1
# What a letter moved by a redrive policy says about itself: SQS records no error.
REDRIVE_ERROR_TYPE = "RedrivePolicy"
_TRUNCATED = "[... {n} characters cut to fit an SQS message ...]\n"
# Characters SQS accepts in bodies and attribute values: #x9 #xA #xD #x20-#xD7FF
# #xE000-#xFFFD #x10000-#x10FFFF.
_REJECTED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TOOL_ATTR_MAX = 256
_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


@dataclass(frozen=True)
class Encoded:
    """What ``send_message`` takes: the body text and the message attributes."""

    body: str
    attributes: dict[str, dict[str, str]]

    @property
    def size(self) -> int:
        """Bytes SQS counts against its limit: body, and each attribute's name, type and value."""
        return len(self.body.encode("utf-8")) + sum(
            len(name) + len(a["DataType"]) + len(a["StringValue"].encode("utf-8"))
            for name, a in self.attributes.items()
        )


def sqs_safe(text: str) -> bool:
    """Whether SQS accepts ``text`` as a body or attribute value."""
    return _REJECTED.search(text) is None


def encode_body(body: bytes) -> tuple[str, str | None]:
    """``(text, encoding)``: the body as is when SQS can hold it, else base64."""
    if not body:
        return "-", "empty"  # SQS refuses an empty body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and sqs_safe(text):
        return text, None
    return base64.b64encode(body).decode("ascii"), "base64"


def decode_body(text: str, encoding: str | None) -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise DLQError(f"a base64 letter body does not decode: {exc}") from exc
    if encoding == "empty":
        return b""
    return text.encode("utf-8")


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if isinstance(value, str) else None


def _attr(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _meta(letter: DeadLetter, tool_in_attr: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "v": CODEC_VERSION,
        "tool": None if tool_in_attr else letter.tool,
        "key": letter.key,
        "intent_id": letter.intent_id,
        "error_type": letter.error_type,
        "error_message": letter.error_message,
        "traceback": letter.traceback,
        "attempts": letter.attempts,
        "source_transport": letter.source_transport,
        "source_queue": letter.source_queue,
        "first_seen": _time(letter.first_seen),
        "dead_at": _time(letter.dead_at),
        "replay_count": letter.replay_count,
        "last_replayed_at": _time(letter.last_replayed_at),
    }
    return {k: v for k, v in meta.items() if v is not None}


def _build(letter: DeadLetter) -> Encoded:
    body, encoding = encode_body(letter.body)
    tool = letter.tool
    tool_in_attr = bool(tool) and len(tool or "") <= _TOOL_ATTR_MAX and sqs_safe(tool or "")
    attributes = {ID_ATTR: _attr(letter.id), REASON_ATTR: _attr(str(letter.reason))}
    if tool_in_attr and tool:
        attributes[TOOL_ATTR] = _attr(tool)
    if encoding:
        attributes[ENCODING_ATTR] = _attr(encoding)
    # ASCII-only JSON: whatever an error message holds, the attribute value is valid text.
    meta = json.dumps(_meta(letter, tool_in_attr), separators=(",", ":"), ensure_ascii=True)
    attributes[META_ATTR] = _attr(meta)
    return Encoded(body, attributes)


def _cut(text: str | None, excess: int) -> str | None:
    """``text`` less at least ``excess`` encoded bytes, keeping its end (a traceback's end
    names the error); ``None`` if nothing would be left."""
    if not text:
        return None
    # An escaped character costs at most 12 JSON bytes; cutting ``excess`` characters frees
    # at least ``excess`` bytes, so the caller's loop ends after a few passes.
    keep = len(text) - excess - len(_TRUNCATED) - 8
    if keep <= 0:
        return None
    return _TRUNCATED.format(n=len(text) - keep) + text[-keep:]


def encode(letter: DeadLetter, max_bytes: int = MAX_MESSAGE_BYTES) -> Encoded:
    """The message for ``letter``; a too-long traceback, then error message, is cut to fit.

    Raises ``DLQError`` when the body alone cannot fit: SQS cannot hold that letter.
    """
    if not letter.id:
        raise ValueError("a letter needs its id before it is encoded")
    encoded = _build(letter)
    while encoded.size > max_bytes:
        excess = encoded.size - max_bytes
        if letter.traceback:
            letter = replace(letter, traceback=_cut(letter.traceback, excess))
        elif letter.error_message:
            letter = replace(letter, error_message=_cut(letter.error_message, excess))
        else:
            raise DLQError(
                f"dead letter {letter.id} does not fit in an SQS message: {encoded.size} bytes "
                f"with a {len(encoded.body)}-character body, the limit is {max_bytes}"
            )
        encoded = _build(letter)
    return encoded


def order_key(letter: DeadLetter) -> tuple[int, str]:
    """``(ms, id)``: a UUIDv7 id's own time, else ``dead_at``; equals id order for UUIDv7."""
    if _UUID7.match(letter.id):
        return int(letter.id.replace("-", "")[:12], 16), letter.id
    stamp = letter.dead_at or letter.first_seen
    return (int(stamp.timestamp() * 1000) if stamp else 0), letter.id


def _string(attributes: dict[str, Any], name: str) -> str | None:
    value = attributes.get(name, {}).get("StringValue")
    return value if isinstance(value, str) else None


def _sent_at(system: dict[str, Any]) -> datetime | None:
    stamp = system.get("SentTimestamp")
    return datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else None


def _redriven(message: dict[str, Any], letter_id: str | None) -> DeadLetter:
    """A message SQS moved here itself: no error kept, so the envelope says what it can."""
    body = str(message.get("Body", "")).encode("utf-8")
    system = message.get("Attributes", {})
    tool = key = intent_id = None
    try:
        intent = Intent.parse(body)
        tool, key, intent_id = intent.tool, intent.key, intent.intent_id
    except InvalidIntent:
        pass
    sent = _sent_at(system)
    # Real SQS names the source queue's ARN on redriven messages; others say nothing.
    source = system.get("DeadLetterQueueSourceArn")
    return DeadLetter(
        id=letter_id or str(message["MessageId"]),
        body=body,
        reason=Reason.EXHAUSTED,
        tool=tool,
        key=key,
        intent_id=intent_id,
        error_type=REDRIVE_ERROR_TYPE,
        error_message="moved by the source queue's redrive policy after maxReceiveCount receives",
        source_transport="sqs" if source else None,
        source_queue=source,
        first_seen=sent,
        dead_at=sent,
    )


def decode(message: dict[str, Any]) -> DeadLetter:
    """The letter a received message holds, whoever wrote it."""
    attributes = message.get("MessageAttributes", {})
    letter_id = _string(attributes, ID_ATTR)
    raw_meta = _string(attributes, META_ATTR)
    if not letter_id or not raw_meta:
        return _redriven(message, letter_id)
    try:
        meta = json.loads(raw_meta)
        return DeadLetter(
            id=letter_id,
            body=decode_body(str(message.get("Body", "")), _string(attributes, ENCODING_ATTR)),
            reason=Reason(_string(attributes, REASON_ATTR) or ""),
            tool=_string(attributes, TOOL_ATTR) or meta.get("tool"),
            key=meta.get("key"),
            intent_id=meta.get("intent_id"),
            error_type=meta.get("error_type"),
            error_message=meta.get("error_message"),
            traceback=meta.get("traceback"),
            attempts=int(meta.get("attempts", 0)),
            source_transport=meta.get("source_transport"),
            source_queue=meta.get("source_queue"),
            first_seen=_parse_time(meta.get("first_seen")),
            dead_at=_parse_time(meta.get("dead_at")),
            replay_count=int(meta.get("replay_count", 0)),
            last_replayed_at=_parse_time(meta.get("last_replayed_at")),
        )
    except (ValueError, TypeError, AttributeError, DLQError):
        # Damaged metadata must not hide the message: list it as SQS would have left it.
        return _redriven(message, letter_id)
