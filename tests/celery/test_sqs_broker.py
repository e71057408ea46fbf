"""Deduplication and retries on the SQS broker (the local server), with the Redis store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.celery.conftest import Effects, Harness, make_harness, redis_db
from tests.celery.suite import FullSuite
from tests.support.services import SqsServer

STORE_DB = 13
# Short polls: a worker stopped mid-poll can leave the server holding a receive that
# swallows the next message until its visibility timeout.
TRANSPORT_OPTIONS = {
    "region": "us-east-1",
    "is_secure": False,
    "wait_time_seconds": 1,
    "polling_interval": 0.1,
    "visibility_timeout": 10,
}


@pytest.fixture(scope="module")
def h(
    sqs_server: SqsServer,
    redis_url: str,
    result_backend: str,
    effects: Effects,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Harness]:
    harness = make_harness(
        tmp_path_factory.mktemp("celery-sqs"),
        effects,
        broker_url=f"sqs://test:test@127.0.0.1:{sqs_server.port}",
        dedup_url=redis_db(redis_url, STORE_DB),
        result_backend=result_backend,
        transport_options=TRANSPORT_OPTIONS,
    )
    try:
        harness.new_worker().start()
        yield harness
    finally:
        harness.close()


class TestSqsBroker(FullSuite):
    pass
