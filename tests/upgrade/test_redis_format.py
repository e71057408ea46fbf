"""Redis records state their format (``fmt``): 0.1's, which state none, read as they were;
a newer one is refused, never misread; 0.1 and today's workers share one Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from intentq.dedup.base import Acquired, Busy, Cached, ClaimRequest, Dead, State
from intentq.dedup.redis import RedisDedupStore
from intentq.errors import NewerRecordFormat
from tests.upgrade.legacy import FIXTURES
from tests.upgrade.test_rolling import Fleet, envelope

FP = "f" * 64
REDIS_DB = 7  # the dedup tests' own database: cleaned by prefix


@pytest.fixture
def store(redis_url: str, unique: str) -> Iterator[RedisDedupStore]:
    url = f"{redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    with closing(RedisDedupStore.from_url(url, prefix=f"upgrade-{unique}")) as store:
        try:
            yield store
        finally:
            keys = list(store.client.scan_iter(f"{store.prefix}:*"))
            if keys:
                store.client.delete(*keys)


def load_0_1(store: RedisDedupStore) -> None:
    """The hashes 0.1's scripts wrote, their times moved by the fixture's age."""
    fixture = json.loads((FIXTURES / "redis_0.1.json").read_text())
    shift = int(time.time() * 1000) - int(fixture["written_at_ms"])
    for name, fields in fixture["hashes"].items():
        moved = {
            k: str(int(v) + shift) if k in ("created", "updated", "expires", "lease") else v
            for k, v in fields.items()
        }
        key = f"{store.prefix}:{name}"
        store.client.hset(key, mapping=moved)
        store.client.pexpireat(key, int(moved["expires"]))


def fields(store: RedisDedupStore, key: str) -> dict[str, str]:
    raw: dict[Any, Any] = store.client.hgetall(f"{store.prefix}:book:{key}")  # type: ignore[assignment]
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_0_1_records_read_as_they_were(store: RedisDedupStore) -> None:
    load_0_1(store)
    assert "fmt" not in fields(store, "done")

    done = store.get("book", "done")
    assert done is not None and done.state is State.COMPLETED
    assert store.claim("book", "done", FP) == Cached({"booked": "15:00"})
    assert isinstance(store.claim("book", "failed", FP), Dead)
    assert isinstance(store.claim("book", "running", FP), Busy)

    # A claim of today's states its format, on a new key and on a takeover of 0.1's record
    assert isinstance(store.claim("book", "new", FP), Acquired)
    assert fields(store, "new")["fmt"] == "1"
    store.client.hset(f"{store.prefix}:book:running", "lease", "0")  # its owner is gone
    took = store.claim("book", "running", FP)
    assert isinstance(took, Acquired) and took.takeover
    assert fields(store, "running")["fmt"] == "1"


def test_a_newer_format_is_refused_and_left_alone(store: RedisDedupStore) -> None:
    claim = store.claim("book", "k", FP, lease=0.05)
    assert isinstance(claim, Acquired)
    store.client.hset(f"{store.prefix}:book:k", "fmt", "2")
    time.sleep(0.1)  # the lease ran out: format 1 would allow a takeover
    before = fields(store, "k")

    with pytest.raises(NewerRecordFormat, match="format 2"):
        store.claim("book", "k", FP)
    with pytest.raises(NewerRecordFormat):
        store.claim_many([ClaimRequest("book", "other", FP), ClaimRequest("book", "k", FP)])
    with pytest.raises(NewerRecordFormat):
        store.get("book", "k")
    assert fields(store, "k") == before


def test_0_1_and_todays_workers_share_one_redis(
    store: RedisDedupStore, intentq_0_1: Path, tmp_path: Path
) -> None:
    url = store.client.get_connection_kwargs()
    redis_url = f"redis://{url['host']}:{url['port']}/{url['db']}"
    fleet = Fleet(f"sqlite:///{tmp_path / 'letters.db'}", intentq_0_1, tmp_path)
    bodies = [envelope("book", f"r{i}") for i in range(12)]
    jobs = {"store": redis_url, "prefix": store.prefix, "create": True}
    old = fleet.spawn("old", "work", bodies=bodies, **jobs)
    new = fleet.spawn("new", "work", bodies=bodies[::-1], **jobs)
    fleet.wait(*old, "old")
    fleet.wait(*new, "new")

    ran = fleet.ran()
    assert {f"book r{i}": ran[f"book r{i}"] for i in range(12)} == {
        f"book r{i}": 1 for i in range(12)
    }
    formats = {fields(store, f"r{i}").get("fmt") for i in range(12)}
    assert formats <= {None, "1"}
    for i in range(12):
        record = store.get("book", f"r{i}")
        assert record is not None and record.state is State.COMPLETED
