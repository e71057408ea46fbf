"""boto3 failures as DLQ errors: unreachable or throttled -> ``DLQUnavailable``, else the rest."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
)

from intentq.errors import DLQError, DLQUnavailable

MISSING_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
# Codes that say "try again later" rather than "this request is wrong".
_TRANSIENT = frozenset(
    {
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestThrottled",
        "ThrottlingException",
        "Throttling",
        "KmsThrottled",
        "RequestTimeout",
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def translated(queue: str, action: str) -> Iterator[None]:
    """Run an SQS call; its failure comes out as a DLQ error with the cause chained."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in MISSING_QUEUE:
            raise DLQError(
                f"the DLQ queue {queue!r} does not exist: run `intentq init` "
                "(or create_schema()) first"
            ) from exc
        if code in _TRANSIENT or status >= 500:
            raise DLQUnavailable(f"SQS {action} on {queue!r} failed: {code}: {message}") from exc
        raise DLQError(f"SQS {action} on {queue!r} failed: {code}: {message}") from exc
    except (ConnectionError, HTTPClientError) as exc:
        # Refused, reset, timed out: the endpoint is not answering.
        raise DLQUnavailable(f"SQS unreachable for {action} on {queue!r}: {exc}") from exc
    except BotoCoreError as exc:  # no credentials, no region, a bad parameter
        raise DLQError(f"SQS {action} on {queue!r} failed: {exc}") from exc
