"""Amazon SQS plumbing shared by the producer and the worker: client, queue URLs, errors."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from intentq.errors import ConfigError, TransportError, TransportUnavailable

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from intentq.config.settings import Settings

# SQS refuses a visibility timeout above 12 hours.
MAX_VISIBILITY = 12 * 3600
# Error codes that say "try again later", not "this request is wrong".
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestThrottled",
        "Throttling",
        "ThrottlingException",
        "KmsThrottled",
        "RequestTimeout",
    }
)
_GONE_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidReceiptHandle",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    }
)
QUEUE_MISSING_CODES = frozenset(
    {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "NonExistentQueue"}
)


def make_client(settings: Settings, max_connections: int = 10) -> SQSClient:
    """A boto3 SQS client for the settings' region and endpoint.

    Credentials come from the usual boto3 chain; against a local endpoint (plain http or
    loopback) without ``AWS_ACCESS_KEY_ID`` set, dummy ones are used: local servers do not
    check them, and walking the chain would probe the EC2 metadata service for seconds.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - boto3 is a dependency
        raise ConfigError("the SQS transport needs boto3: pip install boto3") from exc
    options: dict[str, Any] = {"region_name": settings.aws_region}
    if settings.sqs_endpoint_url:
        options["endpoint_url"] = settings.sqs_endpoint_url
        if _is_local(settings.sqs_endpoint_url) and not os.environ.get("AWS_ACCESS_KEY_ID"):
            options["aws_access_key_id"] = "test"
            options["aws_secret_access_key"] = "test"
    config = Config(
        max_pool_connections=max_connections,
        retries={"mode": "standard", "max_attempts": 3},
        # A long poll waits up to 20 s; leave room above it before calling the read dead.
        read_timeout=40,
        connect_timeout=5,
    )
    client: SQSClient = boto3.client("sqs", config=config, **options)
    return client


def _is_local(endpoint: str) -> bool:
    parsed = urlparse(endpoint)
    return parsed.scheme == "http" or parsed.hostname in ("localhost", "127.0.0.1", "::1")


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
    try:
        with translated("GetQueueUrl", name_or_url):
            return str(client.get_queue_url(QueueName=name_or_url)["QueueUrl"])
    except TransportError as exc:
        if error_code(exc.__cause__) in QUEUE_MISSING_CODES:
            raise TransportError(f"SQS queue {name_or_url!r} does not exist") from exc.__cause__
        raise


def visibility(seconds: float) -> int:
    """Whole seconds for a visibility timeout: rounded up, within SQS's 0..12 h."""
    return max(0, min(MAX_VISIBILITY, math.ceil(seconds)))


def error_code(exc: BaseException | None) -> str:
    """The AWS error code of a botocore ``ClientError`` (or ``""``)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_gone(code: str) -> bool:
    """The receipt handle no longer names a delivery of ours (received again, or deleted)."""
    return code in _GONE_CODES


@contextmanager
def translated(action: str, queue: str) -> Iterator[None]:
    """Turn botocore errors into ``TransportUnavailable`` / ``TransportError``, chained."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        HTTPClientError,
        ReadTimeoutError,
    )

    unreachable = (
        EndpointConnectionError,
        ConnectionClosedError,
        ConnectTimeoutError,
        ReadTimeoutError,
        HTTPClientError,
    )
    where = f"SQS {action} on {queue_name(queue)!r}"
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = exc.response.get("Error", {}).get("Message", "")
        if code in _TRANSIENT_CODES or status >= 500:
            raise TransportUnavailable(f"{where}: {code}: {message}") from exc
        raise TransportError(f"{where}: {code}: {message}") from exc
    except unreachable as exc:
        raise TransportUnavailable(f"{where}: {exc}") from exc
    except BotoCoreError as exc:
        raise TransportError(f"{where}: {exc}") from exc
