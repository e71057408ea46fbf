"""One classification of botocore failures; each caller keeps its own exception types."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from intentq.errors import DLQUnavailable, TransportError, TransportUnavailable
from intentq.sqs.errors import error_code, is_gone
from intentq.sqs.queues import resolve_queue_url, translated
from tests.support.aws import client_error

URL = "http://127.0.0.1:4566/000000000000/jobs"


@pytest.mark.parametrize(
    "error",
    [
        client_error("ThrottlingException"),
        client_error("SomethingNew", 503),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        SSLError(endpoint_url="https://127.0.0.1:1", error=OSError("handshake reset")),
    ],
    ids=["throttling", "503", "refused", "read-timeout", "ssl"],
)
def test_outages_are_transport_unavailable(error: Exception) -> None:
    with pytest.raises(TransportUnavailable) as info, translated("SendMessage", URL):
        raise error
    assert info.value.__cause__ is error
    assert str(info.value).startswith("SQS SendMessage on 'jobs': ")


@pytest.mark.parametrize(
    "error",
    [client_error("AccessDenied", 403), client_error("QueueDoesNotExist"), NoCredentialsError()],
    ids=["access-denied", "missing-queue", "no-credentials"],
)
def test_refusals_are_transport_errors_not_outages(error: Exception) -> None:
    with pytest.raises(TransportError) as info, translated("SendMessage", URL):
        raise error
    assert not isinstance(info.value, TransportUnavailable)
    assert info.value.__cause__ is error


def test_the_same_failure_is_a_dlq_error_through_the_dlq() -> None:
    from intentq.dlq.sqs.scan import translated as dlq_translated

    busy = pytest.raises(DLQUnavailable, match="SQS SendMessage on 'dlq' failed: Service")
    with busy, dlq_translated("dlq", "SendMessage"):
        raise client_error("ServiceUnavailable", 503)
    down = pytest.raises(DLQUnavailable, match="SQS unreachable for SendMessage on 'dlq': ")
    with down, dlq_translated("dlq", "SendMessage"):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


class _NoQueues:
    def __init__(self, code: str, status: int = 400) -> None:
        self.error = client_error(code, status)

    def get_queue_url(self, **_: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "code", ["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "NonExistentQueue"]
)
def test_resolving_a_missing_queue_says_so(code: str) -> None:
    client = _NoQueues(code)
    with pytest.raises(TransportError, match="SQS queue 'jobs' does not exist") as info:
        resolve_queue_url(client, "jobs")  # type: ignore[arg-type]
    assert not isinstance(info.value, TransportUnavailable)
    assert info.value.__cause__ is client.error


def test_resolving_during_an_outage_is_unavailable() -> None:
    with pytest.raises(TransportUnavailable, match="GetQueueUrl on 'jobs'"):
        resolve_queue_url(_NoQueues("InternalError", 500), "jobs")  # type: ignore[arg-type]


def test_error_codes_and_gone_handles() -> None:
    assert error_code(client_error("ReceiptHandleIsInvalid")) == "ReceiptHandleIsInvalid"
    assert error_code(ValueError("no response")) == error_code(None) == ""
    assert is_gone("AWS.SimpleQueueService.MessageNotInflight")
    assert not is_gone("AccessDenied")
