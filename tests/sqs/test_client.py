"""The one boto3 SQS client builder: timeouts, pool size, and dummy credentials locally."""

from __future__ import annotations

import pytest

from intentq.config.settings import Settings
from intentq.connections import sqs_client_for
from intentq.dlq.sqs.store import SqsDeadLetterStore
from intentq.sqs.client import new_client


def _access_key(client: object) -> str | None:
    credentials = client._request_signer._credentials  # type: ignore[attr-defined]
    return None if credentials is None else str(credentials.access_key)


def test_settings_give_region_endpoint_and_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    settings = Settings(aws_region="eu-west-1", sqs_endpoint_url="http://127.0.0.1:4566")
    client = sqs_client_for(settings, max_connections=7)
    try:
        assert client.meta.region_name == "eu-west-1"
        assert client.meta.endpoint_url == "http://127.0.0.1:4566"
        assert vars(client.meta.config)["max_pool_connections"] == 7
        assert vars(client.meta.config)["read_timeout"] == 40
        assert _access_key(client) == "test"  # local endpoint: no credential chain walk
    finally:
        client.close()


def test_given_or_environment_credentials_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    given = new_client(
        region="us-east-1",
        endpoint_url="http://localhost:4566",
        aws_access_key_id="mine",
        aws_secret_access_key="secret",
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    chained = new_client(region="us-east-1", endpoint_url="http://localhost:4566")
    try:
        assert _access_key(given) == "mine"
        assert _access_key(chained) == "from-env"
    finally:
        given.close()
        chained.close()


def test_the_sqs_dlq_builds_its_client_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    store = SqsDeadLetterStore.from_url(
        "sqs+http://127.0.0.1:4566/000000000000/dlq", region="us-east-1", scan_wait_seconds=5
    )
    try:
        assert store.client.meta.endpoint_url == "http://127.0.0.1:4566"
        assert vars(store.client.meta.config)["read_timeout"] == 35  # outlasts the long poll
        assert _access_key(store.client) == "test"
    finally:
        store.close()
