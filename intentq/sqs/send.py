"""Sending message bodies to SQS queues: one at a time or in batches, FIFO ids included."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from intentq.defaults import MAX_MESSAGE_BYTES
from intentq.errors import TransportError
from intentq.intent import Intent
from intentq.sqs.queues import MAX_BATCH, is_fifo, resolve_queue_url, translated

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

# FIFO group and deduplication ids: 1-128 characters of ASCII letters, digits, punctuation.
_FIFO_ID_RE = re.compile(r"[!-~]{1,128}\Z")
# When meta names no group, intents of one tool share a group (and its order).
GROUP_META_KEYS = ("group", "conversation_id")
# The group of a raw body that names no tool.
DEFAULT_GROUP = "intentq"


def fifo_id(value: str) -> str:
    """``value`` if SQS takes it as a FIFO id, else its sha256 (64 hex characters)."""
    if _FIFO_ID_RE.match(value):
        return value
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def group_id(intent: Intent) -> str:
    """The FIFO MessageGroupId: ``meta["group"]``, ``meta["conversation_id"]``, or the tool."""
    for name in GROUP_META_KEYS:
        value = intent.meta.get(name)
        if value is not None and str(value):
            return fifo_id(str(value))
    return fifo_id(intent.tool)


@dataclass(frozen=True)
class Outgoing:
    """One body to send; ``ref`` names it in errors (the intent id). ``attributes`` are sent
    as String message attributes (the trace context, ``traceparent``)."""

    body: str
    ref: str
    group_id: str | None = None
    dedup_id: str | None = None
    attributes: Mapping[str, str] | None = None


class SendFailed(TransportError):
    """SQS refused some entries of a batch send, even after a retry; ``failed`` maps ref to why."""

    def __init__(self, queue: str, failed: Mapping[str, str]) -> None:
        names = ", ".join(list(failed)[:10]) + (" ..." if len(failed) > 10 else "")
        super().__init__(f"SQS refused {len(failed)} message(s) for {queue!r}: {names}")
        self.queue = queue
        self.failed = dict(failed)


class SqsSender:
    """Sends to SQS queues named by name or URL (looked up once, then cached)."""

    def __init__(self, client: SQSClient) -> None:
        self.client = client
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def url(self, queue: str) -> str:
        with self._lock:
            url = self._urls.get(queue)
        if url is None:
            url = resolve_queue_url(self.client, queue)
            with self._lock:
                self._urls[queue] = url
        return url

    def send(self, queue: str, message: Outgoing) -> str:
        """``SendMessage``; returns the MessageId (a FIFO duplicate gets the first one's)."""
        url = self.url(queue)
        params: dict[str, Any] = {"QueueUrl": url, "MessageBody": message.body}
        if is_fifo(url):
            params["MessageGroupId"] = message.group_id or DEFAULT_GROUP
            params["MessageDeduplicationId"] = message.dedup_id or fifo_id(message.ref)
        if message.attributes:
            params["MessageAttributes"] = _string_attributes(message.attributes)
        with translated("SendMessage", url):
            return str(self.client.send_message(**params)["MessageId"])

    def send_many(self, queue: str, messages: Sequence[Outgoing]) -> list[str]:
        """``SendMessageBatch`` in batches; refused entries are retried once, then raised."""
        url = self.url(queue)
        ids: dict[int, str] = {}
        refused: dict[int, str] = {}
        for chunk in _chunks(messages):
            pending = chunk
            for attempt in range(2):
                pending, why = self._send_batch(url, messages, pending, ids)
                if not pending:
                    break
                if attempt:
                    refused.update({i: why[i] for i in pending})
        if refused:
            raise SendFailed(queue, {messages[i].ref: refused[i] for i in sorted(refused)})
        return [ids[i] for i in range(len(messages))]

    def _send_batch(
        self,
        url: str,
        messages: Sequence[Outgoing],
        indexes: Sequence[int],
        ids: dict[int, str],
    ) -> tuple[list[int], dict[int, str]]:
        fifo = is_fifo(url)
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for i in indexes:
            entry: SendMessageBatchRequestEntryTypeDef = {
                "Id": str(i),
                "MessageBody": messages[i].body,
            }
            if fifo:
                entry["MessageGroupId"] = messages[i].group_id or DEFAULT_GROUP
                entry["MessageDeduplicationId"] = messages[i].dedup_id or fifo_id(messages[i].ref)
            if messages[i].attributes:
                entry["MessageAttributes"] = _string_attributes(messages[i].attributes or {})
            entries.append(entry)
        with translated("SendMessageBatch", url):
            response = self.client.send_message_batch(QueueUrl=url, Entries=entries)
        for ok in response.get("Successful", []):
            ids[int(ok["Id"])] = ok["MessageId"]
        why = {
            int(f["Id"]): f"{f.get('Code', '')}: {f.get('Message', '')}"
            for f in response.get("Failed", [])
        }
        return sorted(why), why


def _string_attributes(
    attributes: Mapping[str, str],
) -> dict[str, MessageAttributeValueTypeDef]:
    return {
        name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
    }


def _chunks(messages: Sequence[Outgoing]) -> list[list[int]]:
    """Indexes grouped into batches of at most 10 entries and 1 MiB of bodies."""
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, message in enumerate(messages):
        length = len(message.body.encode("utf-8"))
        if current and (len(current) >= MAX_BATCH or size + length > MAX_MESSAGE_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(i)
        size += length
    if current:
        chunks.append(current)
    return chunks
