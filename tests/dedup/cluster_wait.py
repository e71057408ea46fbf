"""What ``WAIT 1 <ms>`` after each write would cost on a local cluster: a measurement, run as
``python -m tests.dedup.cluster_wait`` (not a test; it prints latencies per claim+complete).

Each intent is a claim and a completion of a new key. "store" is ``RedisDedupStore`` as it
is; "node" sends the same two scripts on a connection to the key's master; "node + WAIT"
sends ``WAIT 1 <ms>`` after each script on that connection, so a reply means one replica has
the write too.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from intentq.dedup import codec
from intentq.dedup.base import Acquired, State, store_key
from intentq.dedup.redis.scripts import SCRIPTS
from intentq.dedup.redis.store import RedisDedupStore
from tests.support.redis_cluster import running_cluster

INTENTS = 2000
WAIT_MS = 100
FP = "a" * 64
MODES = ("store", "node", "node + WAIT")


def _node_call(store: RedisDedupStore, key: str, args: tuple[Any, ...], wait: bool) -> Any:
    client: Any = store.client
    node = client.get_redis_connection(client.get_node_from_key(key))
    with node.pipeline(transaction=False) as pipe:
        pipe.evalsha(args[0], 1, key, *args[1:])
        if wait:
            pipe.execute_command("WAIT", 1, WAIT_MS)
        replies = pipe.execute()
    if wait:
        assert replies[1] == 1, "the replica did not acknowledge in time"
    return replies[0]


def _run(store: RedisDedupStore, mode: str) -> list[float]:
    prefix, took = uuid.uuid4().hex[:8], []
    claim, finish = SCRIPTS["claim"].sha, SCRIPTS["finish"].sha
    for i in range(INTENTS):
        key, token = f"k{i}", uuid.uuid4().hex
        started = time.perf_counter()
        if mode == "store":
            acquired = store.claim(prefix, key, FP, lease=60)
            assert isinstance(acquired, Acquired)
            store.complete(prefix, key, acquired.token, {"ok": True})
        else:
            full = store_key("intentq", prefix, key)
            wait = mode == "node + WAIT"
            _node_call(store, full, (claim, FP, 60000, 86400000, token), wait)
            done = (token, State.COMPLETED.value, "result", codec.dump({"ok": True}), 86400000)
            assert _node_call(store, full, (finish, *done), wait) == 1
        took.append(time.perf_counter() - started)
    return took


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_cluster(Path(tmp)) as cluster:
        store = RedisDedupStore.from_url(cluster.url)
        store.create_schema()
        try:
            for mode in MODES:  # a round to warm up connections and scripts
                _run(store, mode)
            for mode in MODES:
                took = sorted(_run(store, mode))
                print(
                    f"{mode:12} median {statistics.median(took) * 1e6:6.0f} µs  "
                    f"p99 {took[int(len(took) * 0.99)] * 1e6:6.0f} µs  "
                    f"{len(took) / sum(took):6.0f} intents/s"
                )
        finally:
            store.close()


if __name__ == "__main__":
    main()
