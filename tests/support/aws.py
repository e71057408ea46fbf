"""botocore errors as a real SQS endpoint would raise them, for tests of error sorting."""

from __future__ import annotations

from botocore.exceptions import ClientError


def client_error(code: str, status: int = 400, operation: str = "SendMessage") -> ClientError:
    """A ``ClientError`` with ``code`` and HTTP ``status``, as raised by ``operation``."""
    response = {
        "Error": {"Code": code, "Message": f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)  # type: ignore[arg-type]
