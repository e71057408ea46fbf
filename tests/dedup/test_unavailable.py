"""A store that cannot be reached says so (``StoreUnavailable``, a transient error); no guess."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import exc as sa_exc

from intentq.dedup import open_store
from intentq.dedup.base import Acquired, ClaimRequest, DedupStore
from intentq.dedup.redis.store import RedisDedupStore
from intentq.dedup.sql.store import SqlDedupStore
from intentq.errors import DedupError, StoreUnavailable, TransientError
from tests.dedup.conftest import Backend, RedisServer
from tests.support.net import free_port

TOOL = "refund"
FP = "c" * 64
TOKEN = "d" * 32

CALLS: dict[str, Callable[[DedupStore], Any]] = {
    "claim": lambda s: s.claim(TOOL, "k", FP),
    "claim_many": lambda s: s.claim_many([ClaimRequest(TOOL, "k", FP)] * 3),
    "complete": lambda s: s.complete(TOOL, "k", TOKEN, 1),
    "fail": lambda s: s.fail(TOOL, "k", TOKEN, {"reason": "x"}),
    "release": lambda s: s.release(TOOL, "k", TOKEN),
    "extend": lambda s: s.extend(TOOL, "k", TOKEN, 10),
    "get": lambda s: s.get(TOOL, "k"),
    "forget": lambda s: s.forget(TOOL, "k"),
    "reset": lambda s: s.reset(TOOL, "k"),
}


def assert_unavailable(store: DedupStore, driver_error: type[BaseException]) -> None:
    for name, call in CALLS.items():
        with pytest.raises(StoreUnavailable) as caught:
            call(store)
        assert isinstance(caught.value, TransientError), name
        assert isinstance(caught.value.__cause__, driver_error), (name, caught.value.__cause__)


def test_redis_where_nothing_listens_is_unavailable() -> None:
    with open_store(f"redis://127.0.0.1:{free_port()}/0") as store:
        assert_unavailable(store, redis.ConnectionError)


def test_a_stopped_redis_is_unavailable_and_a_restarted_one_works_again(
    own_redis: RedisServer,
) -> None:
    store = RedisDedupStore.from_url(own_redis.url, prefix="outage")
    try:
        assert isinstance(store.claim(TOOL, "before", FP), Acquired)
        own_redis.stop()

        assert_unavailable(store, redis.ConnectionError)

        own_redis.start()  # empty, and without the scripts: they are loaded again
        assert store.get(TOOL, "k") is None  # nothing was claimed during the outage
        assert isinstance(store.claim(TOOL, "k", FP), Acquired)
    finally:
        store.close()


def test_postgresql_on_a_wrong_port_is_unavailable(
    pg_url: str, make_backend: Callable[[str], Backend]
) -> None:
    reachable = make_backend("postgresql").store
    assert isinstance(reachable, SqlDedupStore)
    wrong = pg_url.replace(":5432/", f":{free_port()}/")
    store = SqlDedupStore.from_url(wrong, table_name=reachable.table.name)
    try:
        assert_unavailable(store, sa_exc.OperationalError)
        with pytest.raises(StoreUnavailable):
            store.create_schema()
    finally:
        store.close()
    assert reachable.get(TOOL, "k") is None  # nothing claimed


def test_sqlite_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'missing' / 'dedup.db'}") as store:
        assert_unavailable(store, sa_exc.OperationalError)


@pytest.mark.parametrize("name", ["postgresql", "sqlite"])
def test_a_missing_table_is_a_clear_error_not_an_outage(
    make_backend: Callable[[str], Backend], name: str
) -> None:
    store = make_backend(name).store
    assert isinstance(store, SqlDedupStore)
    store.drop_schema()

    with pytest.raises(DedupError, match="create_schema") as caught:
        store.claim(TOOL, "k", FP)
    assert not isinstance(caught.value, StoreUnavailable)
    store.create_schema()
    assert isinstance(store.claim(TOOL, "k", FP), Acquired)


def test_a_bad_store_url_is_a_config_error() -> None:
    from intentq.errors import ConfigError

    with pytest.raises(ConfigError):
        open_store("mongodb://127.0.0.1/x")
