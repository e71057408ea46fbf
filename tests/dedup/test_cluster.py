"""The Redis store's Cluster plumbing: the URL form, scripts a node lacks, what an outage says."""

from __future__ import annotations

import pytest
import redis

from intentq.connections import open_store
from intentq.dedup.base import Acquired, Busy, Cached, ClaimRequest
from intentq.dedup.redis.scripts import SCRIPTS
from intentq.dedup.redis.store import RedisDedupStore
from intentq.errors import DedupError, StoreUnavailable
from tests.support.net import free_port
from tests.support.redis_cluster import LocalCluster

TOOL = "ship_parcel"
FP = "b" * 64


def test_a_cluster_where_nothing_listens_is_unavailable() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        open_store(f"redis+cluster://127.0.0.1:{free_port()}")
    assert isinstance(caught.value.__cause__, redis.RedisClusterException)


def test_a_later_node_in_the_url_is_tried_when_the_first_does_not_answer(
    redis_cluster: LocalCluster, unique: str
) -> None:
    live = redis_cluster.nodes[0].address
    with open_store(f"redis+cluster://127.0.0.1:{free_port()},{live}", prefix=unique) as store:
        assert isinstance(store, RedisDedupStore)
        assert isinstance(store.client, redis.RedisCluster)
        assert isinstance(store.claim(TOOL, "k", FP), Acquired)
        assert store.forget(TOOL, "k") is True


@pytest.mark.parametrize("url", ["redis+cluster://127.0.0.1:7000,nohost", "redis+cluster://:1,:"])
def test_a_malformed_node_list_is_a_usage_error(url: str) -> None:
    with pytest.raises(DedupError, match="bad Redis URL"):
        open_store(url)


def test_a_server_without_cluster_mode_is_named(redis_url: str) -> None:
    url = redis_url.replace("redis://", "redis+cluster://").rsplit("/", 1)[0]
    with pytest.raises(DedupError, match="luster mode is not enabled"):
        open_store(url)


def test_nodes_that_lost_their_scripts_run_them_from_source(
    redis_cluster: LocalCluster, unique: str
) -> None:
    """A promoted replica has none of the scripts: single calls and batches still work."""
    with RedisDedupStore.from_url(redis_cluster.url, prefix=unique) as store:
        for node in redis_cluster.alive():
            node.query("SCRIPT", "FLUSH")
        first = store.claim(TOOL, "single", FP)
        assert isinstance(first, Acquired)
        store.complete(TOOL, "single", first.token, "sent")
        keys = [f"batch-{i}" for i in range(30)]  # on every master
        for node in redis_cluster.alive():
            node.query("SCRIPT", "FLUSH")

        claims = store.claim_many(
            [ClaimRequest(TOOL, key, FP) for key in keys] + [ClaimRequest(TOOL, "single", FP)]
        )

        assert all(isinstance(claim, Acquired) for claim in claims[:-1])
        assert claims[-1] == Cached("sent")
        assert isinstance(store.claim(TOOL, keys[0], FP), Busy)
        masters = redis_cluster.masters()
        assert all(m.query("SCRIPT", "EXISTS", SCRIPTS["claim"].sha) == [1] for m in masters), (
            "a node that ran a script from source keeps it"
        )
