"""The boto3 SQS client: standard retries, bounded timeouts, and no credential hunt locally."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from intentq.extras import require

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


# A long poll waits up to 20 s; leave room above it before calling the read dead.
DEFAULT_READ_TIMEOUT = 40.0


def new_client(
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    max_connections: int = 10,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> SQSClient:
    """A boto3 SQS client, in a session of its own.

    Credentials not given come from the usual boto3 chain; against a local endpoint (plain
    http or loopback) without ``AWS_ACCESS_KEY_ID`` set, dummy ones are used: local servers
    do not check them, and walking the chain would probe the EC2 metadata service for seconds.
    """
    require("boto3", "sqs", "Amazon SQS")
    import boto3
    from botocore.config import Config
    if (
        endpoint_url
        and aws_access_key_id is None
        and aws_secret_access_key is None
        and _is_local(endpoint_url)
        and not os.environ.get("AWS_ACCESS_KEY_ID")
    ):
        aws_access_key_id = aws_secret_access_key = "test"
    config = Config(
        max_pool_connections=max_connections,
        retries={"mode": "standard", "max_attempts": 3},
        read_timeout=read_timeout,
        connect_timeout=5,
    )
    return boto3.session.Session().client(
        "sqs",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        config=config,
    )



def _is_local(endpoint: str) -> bool:
    parsed = urlparse(endpoint)
    return parsed.scheme == "http" or parsed.hostname in ("localhost", "127.0.0.1", "::1")


def sdk_attempts(client: SQSClient) -> int:
    """How many attempts botocore makes of one call on ``client``, its own retries counted."""
    retries = getattr(getattr(getattr(client, "meta", None), "config", None), "retries", None)
    if not isinstance(retries, dict):
        return 1
    if "total_max_attempts" in retries:
        return max(1, int(retries["total_max_attempts"]))
    return max(1, int(retries.get("max_attempts", 0)) + 1)  # legacy: retries, not attempts
