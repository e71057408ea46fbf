"""Private fast paths run only on the library releases they were tested with."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from intentq import internals
from intentq.connections import open_store
from intentq.dedup.base import Acquired, Cached, DedupStore


@pytest.fixture(autouse=True)
def fresh_checks() -> Iterator[None]:
    internals.private_path.cache_clear()
    yield
    internals.private_path.cache_clear()


def untested_release(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(internals, "_release", lambda package: (99, 0))


def round_trip(store: DedupStore) -> None:
    key = uuid.uuid4().hex
    claim = store.claim("tool", key, "fp", lease=30, ttl=60)
    assert isinstance(claim, Acquired)
    store.complete("tool", key, claim.token, {"n": 1}, ttl=60)
    again = store.claim("tool", key, "fp", lease=30, ttl=60)
    assert isinstance(again, Cached) and again.result == {"n": 1}


def test_installed_releases_are_the_tested_ones() -> None:
    assert internals.private_path("redis")
    assert internals.private_path("sqlalchemy")


def test_an_untested_release_or_the_switch_turns_the_private_path_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(internals.PUBLIC_ONLY_ENV, "1")
    assert not internals.private_path("redis")
    monkeypatch.delenv(internals.PUBLIC_ONLY_ENV)
    internals.private_path.cache_clear()
    untested_release(monkeypatch)
    assert not internals.private_path("sqlalchemy")


def test_redis_store_on_an_untested_release_uses_the_public_client(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    untested_release(monkeypatch)
    with open_store(redis_url, prefix=f"internals-{uuid.uuid4().hex[:6]}") as store:
        assert store._direct is None  # type: ignore[attr-defined]
        round_trip(store)


def test_sql_store_on_an_untested_release_keeps_no_connection(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    untested_release(monkeypatch)
    with open_store(pg_url, prefix=f"internals-{uuid.uuid4().hex[:6]}") as store:
        store.create_schema()
        round_trip(store)
        assert store._driver.keeper.kept == []  # type: ignore[attr-defined]


def test_sql_store_on_a_tested_release_keeps_its_connection(pg_url: str) -> None:
    with open_store(pg_url, prefix=f"internals-{uuid.uuid4().hex[:6]}") as store:
        store.create_schema()
        round_trip(store)
        assert len(store._driver.keeper.kept) == 1  # type: ignore[attr-defined]
