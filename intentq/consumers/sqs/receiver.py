"""One SQS queue as the worker sees it: receive, delete and change visibility, in batches."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from intentq.errors import TransportError
from intentq.sqs.queues import (
    MAX_BATCH,
    MAX_VISIBILITY,
    error_code,
    in_batches,
    is_fifo,
    is_gone,
    queue_name,
    translated,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import MessageSystemAttributeNameType

log = logging.getLogger("intentq.sqs")

# Only what the worker reads: every attribute asked for is sent, and parsed, per message.
_ATTRIBUTES: list[MessageSystemAttributeNameType] = ["ApproximateReceiveCount", "MessageGroupId"]
# Message attributes: the W3C trace context a producer sends along (intentq.observe.tracing).
_MESSAGE_ATTRIBUTES = ["traceparent", "tracestate"]


@dataclass(frozen=True)
class Received:
    """One delivery of one message: the receipt handle is valid until the next delivery."""

    message_id: str
    receipt_handle: str
    body: bytes
    receive_count: int = 1
    group_id: str | None = None
    received_at: float = field(default_factory=time.monotonic)
    # String message attributes asked for (the trace context), by name.
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_sqs(cls, message: Mapping[str, Any]) -> Received:
        """From a ``ReceiveMessage`` entry as boto3 returns it."""
        attributes = message.get("Attributes") or {}
        strings = {
            name: str(value["StringValue"])
            for name, value in (message.get("MessageAttributes") or {}).items()
            if "StringValue" in value
        }
        return cls(
            message_id=str(message["MessageId"]),
            receipt_handle=str(message["ReceiptHandle"]),
            body=str(message.get("Body", "")).encode("utf-8"),
            receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
            group_id=attributes.get("MessageGroupId"),
            attributes=strings,
        )

    def visibility_left(self) -> int:
        """How far this delivery's visibility may still be pushed: 12 h from receipt."""
        return max(0, MAX_VISIBILITY - int(time.monotonic() - self.received_at) - 1)


@dataclass(frozen=True)
class Failure:
    """A batch entry SQS refused; ``gone`` means the delivery is no longer ours."""

    message: Received
    code: str
    text: str

    @property
    def gone(self) -> bool:
        return is_gone(self.code)


class SqsQueue:
    """A queue bound to a client and its URL."""

    def __init__(self, client: SQSClient, url: str) -> None:
        self.client = client
        self.url = url
        self.name = queue_name(url)
        self.fifo = is_fifo(url)

    def receive(self, max_messages: int, wait_seconds: int, visibility: int) -> list[Received]:
        """Long-poll for up to ``max_messages`` (1..10), hidden for ``visibility`` seconds."""
        with translated("ReceiveMessage", self.url):
            response = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(MAX_BATCH, max_messages)),
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=visibility,
                MessageSystemAttributeNames=_ATTRIBUTES,
                MessageAttributeNames=_MESSAGE_ATTRIBUTES,
            )
        return [Received.from_sqs(m) for m in response.get("Messages", [])]

    def delete(self, messages: Sequence[Received]) -> list[Failure]:
        """``DeleteMessageBatch`` (10 at a time); returns the entries SQS refused."""

        def call(entries: list[Any]) -> Any:
            with translated("DeleteMessageBatch", self.url):
                return self.client.delete_message_batch(QueueUrl=self.url, Entries=entries)

        failed = in_batches(messages, lambda m: {"ReceiptHandle": m.receipt_handle}, call)
        return [Failure(*f) for f in failed]

    def change_visibility(self, changes: Sequence[tuple[Received, int]]) -> list[Failure]:
        """``ChangeMessageVisibilityBatch`` (10 at a time); returns refused entries."""

        def entry(change: tuple[Received, int]) -> dict[str, Any]:
            m, seconds = change
            return {
                "ReceiptHandle": m.receipt_handle,
                "VisibilityTimeout": min(seconds, m.visibility_left()),
            }

        def call(entries: list[Any]) -> Any:
            with translated("ChangeMessageVisibilityBatch", self.url):
                return self.client.change_message_visibility_batch(
                    QueueUrl=self.url, Entries=entries
                )

        failed = in_batches(changes, entry, call)
        return [Failure(m, code, message) for (m, _), code, message in failed]

    def extend(self, message: Received, seconds: int) -> bool:
        """Keep one delivery hidden ``seconds`` more; ``False`` if it is no longer ours."""
        try:
            with translated("ChangeMessageVisibility", self.url):
                self.client.change_message_visibility(
                    QueueUrl=self.url,
                    ReceiptHandle=message.receipt_handle,
                    VisibilityTimeout=min(seconds, message.visibility_left()),
                )
        except TransportError as exc:
            if is_gone(error_code(exc.__cause__)):
                return False
            raise
        return True

