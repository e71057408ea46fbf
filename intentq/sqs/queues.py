"""Amazon SQS plumbing shared by the producer and the worker: queue names and URLs, visibility.

Its client comes from ``intentq.sqs.client``, its errors from ``intentq.sqs.errors``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from intentq.errors import TransportError, TransportUnavailable
from intentq.sqs import errors as sqs_errors
from intentq.sqs.errors import error_code, is_gone

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "MAX_BATCH",
    "MAX_VISIBILITY",
    "error_code",
    "in_batches",
    "is_fifo",
    "is_gone",
    "is_queue_url",
    "queue_name",
    "resolve_queue_url",
    "translated",
    "visibility",
]

# SQS refuses a visibility timeout above 12 hours.
MAX_VISIBILITY = 12 * 3600
# SQS batch calls take at most 10 entries.
MAX_BATCH = 10

T = TypeVar("T")


def in_batches(
    items: Sequence[T],
    entry: Callable[[T], dict[str, Any]],
    call: Callable[[list[Any]], Mapping[str, Any]],
) -> list[tuple[T, str, str]]:
    """Send ``items`` through an SQS batch call, ``MAX_BATCH`` entries at a time.

    ``entry`` makes an item's entry (its ``Id`` is added here); ``call`` sends one batch.
    Returns ``(item, code, message)`` for each entry SQS refused.
    """
    failed: list[tuple[T, str, str]] = []
    for start in range(0, len(items), MAX_BATCH):
        chunk = items[start : start + MAX_BATCH]
        entries = [{"Id": str(i), **entry(item)} for i, item in enumerate(chunk)]
        for refused in call(entries).get("Failed", []):
            code, message = str(refused.get("Code", "")), str(refused.get("Message", ""))
            failed.append((chunk[int(refused["Id"])], code, message))
    return failed


def is_queue_url(name_or_url: str) -> bool:
    return name_or_url.startswith(("http://", "https://"))


def queue_name(name_or_url: str) -> str:
    """The queue's name: the last path segment of a URL, or the name itself."""
    if is_queue_url(name_or_url):
        return urlparse(name_or_url).path.rstrip("/").rsplit("/", 1)[-1]
    return name_or_url


def is_fifo(name_or_url: str) -> bool:
    return queue_name(name_or_url).endswith(".fifo")


def resolve_queue_url(client: SQSClient, name_or_url: str) -> str:
    """A queue URL as given, or looked up by name (``TransportError`` if there is none)."""
    if is_queue_url(name_or_url):
        return name_or_url
    with translated(
        "GetQueueUrl", name_or_url, missing=f"SQS queue {name_or_url!r} does not exist"
    ):
        return str(client.get_queue_url(QueueName=name_or_url)["QueueUrl"])


def visibility(seconds: float) -> int:
    """Whole seconds for a visibility timeout: rounded up, within SQS's 0..12 h."""
    return max(0, min(MAX_VISIBILITY, math.ceil(seconds)))


def translated(
    action: str, queue: str, *, missing: str | None = None
) -> AbstractContextManager[None]:
    """Turn botocore errors into ``TransportUnavailable`` / ``TransportError``, chained.

    With ``missing``, a queue that does not exist is a ``TransportError`` saying that.
    """
    return sqs_errors.translated(
        f"SQS {action} on {queue_name(queue)!r}",
        error=TransportError,
        unavailable=TransportUnavailable,
        missing=missing,
    )
