"""Every scenario on the Redis broker, with the Redis store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.celery.conftest import BROKER_DB, Effects, Harness, make_harness, redis_db
from tests.celery.suite import FullSuite

STORE_DB = 13
# A killed worker's messages come back after the visibility timeout: keep it short here,
# and look for them every second.
TRANSPORT_OPTIONS = {
    "visibility_timeout": 4,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}


@pytest.fixture(scope="module")
def h(
    redis_url: str, result_backend: str, effects: Effects, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    harness = make_harness(
        tmp_path_factory.mktemp("celery-redis"),
        effects,
        broker_url=redis_db(redis_url, BROKER_DB),
        dedup_url=redis_db(redis_url, STORE_DB),
        result_backend=result_backend,
        transport_options=TRANSPORT_OPTIONS,
    )
    try:
        harness.new_worker().start()
        yield harness
    finally:
        harness.close()


class TestRedisBroker(FullSuite):
    pass
