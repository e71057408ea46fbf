"""botocore failures sorted once for every SQS caller: an outage, a missing queue, or a refusal.

``translated`` raises the caller's own exception types: ``unavailable`` when SQS is out of
reach, throttling or failing (worth another try later), ``error`` for everything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# Error codes that say "try again later", not "this request is wrong".
TRANSIENT_CODES = frozenset(
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
# The queue named does not exist (the query and JSON protocols spell it differently).
MISSING_QUEUE_CODES = frozenset(
    {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "NonExistentQueue"}
)
# The receipt handle no longer names a delivery of ours: deleted, received again, or already
# visible. Real SQS answers a visibility change on an expired handle with
# InvalidParameterValue ("Message does not exist or is not available").
GONE_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidReceiptHandle",
        "InvalidParameterValue",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    }
)


def error_code(exc: BaseException | None) -> str:
    """The AWS error code of a botocore ``ClientError`` (or ``""``)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_gone(code: str) -> bool:
    """The receipt handle no longer names a delivery of ours (received again, or deleted)."""
    return code in GONE_CODES


@contextmanager
def translated(
    where: str,
    *,
    error: type[Exception],
    unavailable: type[Exception],
    unreachable: str | None = None,
    missing: str | None = None,
) -> Iterator[None]:
    """Run SQS calls; a botocore failure comes out as ``unavailable`` or ``error``, chained.

    Messages start with ``where`` (``unreachable``, if given, when the endpoint does not
    answer). With ``missing``, a queue that does not exist is ``error(missing)``; without
    it, a refusal like any other.
    """
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if missing is not None and code in MISSING_QUEUE_CODES:
            raise error(missing) from exc
        message = exc.response.get("Error", {}).get("Message", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        kind = unavailable if code in TRANSIENT_CODES or status >= 500 else error
        raise kind(f"{where}: {code}: {message}") from exc
    except (ConnectionError, HTTPClientError) as exc:
        # Refused, reset, timed out: the endpoint is not answering (botocore's own retries
        # count these two families as transient).
        raise unavailable(f"{unreachable or where}: {exc}") from exc
    except BotoCoreError as exc:  # no credentials, no region, a bad parameter
        raise error(f"{where}: {exc}") from exc
