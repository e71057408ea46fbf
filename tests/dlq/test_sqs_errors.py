"""How botocore's failures come out: an outage is ``DLQUnavailable``, a refusal ``DLQError``."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from intentq.dlq.sqs.scan import translated
from intentq.errors import DLQError, DLQUnavailable
from tests.support.aws import client_error


@pytest.mark.parametrize(
    "error",
    [
        client_error("ThrottlingException"),
        client_error("RequestThrottled"),
        client_error("ServiceUnavailable", 503),
        client_error("SomethingNew", 500),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ],
    ids=["throttling", "throttled", "503", "500", "refused", "connect-timeout", "read-timeout"],
)
def test_outages_and_throttling_are_unavailable(error: Exception) -> None:
    with pytest.raises(DLQUnavailable) as info, translated("dlq", "ReceiveMessage"):
        raise error
    assert info.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        client_error("AccessDenied", 403),
        client_error("InvalidParameterValue"),
        NoCredentialsError(),
    ],
    ids=["access-denied", "invalid-parameter", "no-credentials"],
)
def test_refusals_are_dlq_errors_not_outages(error: Exception) -> None:
    with pytest.raises(DLQError) as info, translated("dlq", "ReceiveMessage"):
        raise error
    assert not isinstance(info.value, DLQUnavailable)
    assert info.value.__cause__ is error


def test_a_missing_queue_says_what_to_run() -> None:
    with pytest.raises(DLQError, match="run `intentq init`"), translated("dlq", "GetQueueUrl"):
        raise client_error("AWS.SimpleQueueService.NonExistentQueue")
