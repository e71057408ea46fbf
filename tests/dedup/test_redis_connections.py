"""The Redis store's own connections: never shared across a fork, dropped when cut, replaced
when the server closed them while idle, and clients it cannot take connections from directly
keep working through redis-py."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from intentq.dedup.base import Acquired, Cached
from intentq.dedup.redis.store import RedisDedupStore
from intentq.errors import StoreUnavailable
from tests.dedup.conftest import RedisServer

TOOL = "book_slot"
FP = "c" * 64


@pytest.fixture
def store(own_redis: RedisServer) -> Iterator[RedisDedupStore]:
    store = RedisDedupStore.from_url(own_redis.url, prefix="conn")
    store.create_schema()
    yield store
    store.close()


def _client_id(store: RedisDedupStore) -> int:
    assert store._direct is not None
    return int(store._direct.call("CLIENT", "ID"))


def _kill_client(server: RedisServer, client_id: int) -> None:
    """The server closes that connection, as a restart or a client timeout would."""
    admin = redis.Redis.from_url(server.url)
    try:
        admin.client_kill_filter(_id=client_id)
    finally:
        admin.close()


def _child(store: RedisDedupStore, out: Any) -> None:
    ids = {_client_id(store)}
    claims = [store.claim(TOOL, f"child-{i}", FP) for i in range(50)]
    for i, claim in enumerate(claims):
        assert isinstance(claim, Acquired)
        store.complete(TOOL, f"child-{i}", claim.token, i)
    ids.add(_client_id(store))
    out.send(sorted(ids))


def test_a_forked_child_never_uses_the_parents_connection(store: RedisDedupStore) -> None:
    parent_id = _client_id(store)  # an idle connection the child inherits a copy of
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(store, send))
    child.start()
    child_ids = receive.recv()
    child.join(30)
    assert child.exitcode == 0
    assert parent_id not in child_ids and len(child_ids) == 1
    # The parent's connection survived the child (no shutdown of a shared socket) and
    # every record the child wrote is there.
    assert _client_id(store) == parent_id
    for i in range(50):
        assert store.claim(TOOL, f"child-{i}", FP) == Cached(i)


def test_a_connection_cut_by_the_server_is_dropped_not_reused(
    store: RedisDedupStore, own_redis: RedisServer
) -> None:
    first = _client_id(store)
    _kill_client(own_redis, first)
    with pytest.raises(StoreUnavailable):
        store.claim(TOOL, "after-cut", FP)
    claim = store.claim(TOOL, "after-cut", FP)
    assert isinstance(claim, Acquired) and claim.attempt == 1 and not claim.takeover
    assert _client_id(store) != first


def test_an_idle_connection_the_server_closed_is_replaced_before_use(
    store: RedisDedupStore, own_redis: RedisServer
) -> None:
    assert store._direct is not None
    first = _client_id(store)
    _kill_client(own_redis, first)
    store._direct.idle_check = 0.0  # every connection counts as idle: it is polled first
    claim = store.claim(TOOL, "after-idle-cut", FP)
    assert isinstance(claim, Acquired) and claim.attempt == 1 and not claim.takeover
    assert _client_id(store) != first


def test_an_error_reply_leaves_the_connection_in_step(store: RedisDedupStore) -> None:
    assert store._direct is not None
    first = _client_id(store)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        store._direct.call("NO-SUCH-COMMAND")
    replies = store._direct.batch([("PING",), ("NO-SUCH-COMMAND",), ("ECHO", "x")])
    assert replies[0] == b"PONG" and replies[2] == b"x"
    assert isinstance(replies[1], redis.ResponseError)
    assert _client_id(store) == first  # the same connection, still usable


def test_a_client_that_decodes_replies_gets_the_same_records(own_redis: RedisServer) -> None:
    store = RedisDedupStore.from_url(own_redis.url, prefix="text", decode_responses=True)
    try:
        assert store._direct is not None
        claim = store.claim(TOOL, "k", FP)
        assert isinstance(claim, Acquired)
        store.complete(TOOL, "k", claim.token, {"ok": "yes"})
        assert store.claim(TOOL, "k", FP) == Cached({"ok": "yes"})
        record = store.get(TOOL, "k")
        assert record is not None and record.result == {"ok": "yes"}
    finally:
        store.close()


@pytest.mark.parametrize(
    "make_client",
    [
        pytest.param(lambda url: redis.Redis.from_url(url, protocol=3), id="resp3"),
        pytest.param(
            lambda url: redis.Redis.from_url(url, single_connection_client=True), id="single"
        ),
        pytest.param(
            lambda url: redis.Redis(
                connection_pool=redis.BlockingConnectionPool.from_url(url, max_connections=2)
            ),
            id="blocking-pool",
        ),
    ],
)
def test_clients_of_other_kinds_go_through_redis_py(
    own_redis: RedisServer, make_client: Any
) -> None:
    client = make_client(own_redis.url)
    store = RedisDedupStore(client, prefix="other")
    try:
        assert store._direct is None
        claims = store.claim_many([])  # an empty batch is no call at all
        assert claims == []
        claim = store.claim(TOOL, "k", FP)
        assert isinstance(claim, Acquired)
        store.complete(TOOL, "k", claim.token, {"ok": True})
        assert store.claim(TOOL, "k", FP) == Cached({"ok": True})
    finally:
        client.close()
