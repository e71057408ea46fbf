"""Every scenario on the RabbitMQ broker, with the Redis store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.celery.conftest import Effects, Harness, make_harness, redis_db
from tests.celery.suite import FullSuite

STORE_DB = 13


@pytest.fixture(scope="module")
def h(
    amqp_url: str,
    redis_url: str,
    result_backend: str,
    effects: Effects,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Harness]:
    harness = make_harness(
        tmp_path_factory.mktemp("celery-rabbitmq"),
        effects,
        broker_url=amqp_url,
        dedup_url=redis_db(redis_url, STORE_DB),
        result_backend=result_backend,
    )
    try:
        harness.new_worker().start()
        yield harness
    finally:
        harness.close()


class TestRabbitMQBroker(FullSuite):
    """RabbitMQ hands a dead connection's unacked messages straight back: no timeout."""
