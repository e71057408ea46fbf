"""Redis Cluster for the store: its URL form, its client, and the scripts on every node.

``redis+cluster://host:port`` (``rediss+cluster://`` with TLS) names a node of the cluster;
more may follow, comma-separated (``redis+cluster://10.0.0.1:6379,10.0.0.2:6379``), for
when the first does not answer. redis-py's ``RedisCluster`` discovers the others and sends
each call to the master of its key's slot. Every script touches one key, so no call spans
two slots.

A script loaded on one node is unknown to the others, and to a replica promoted by a
failover: Redis 7 replicates what a script wrote, not the script. So a call answered
``NOSCRIPT`` runs again as ``EVAL`` with the source, on its key's node, which keeps it from
then on: one more round trip, once per script and node. redis-py's ``Script`` objects would
``SCRIPT LOAD`` on every master instead, which fails while any master is down, and a cluster
pipeline cannot load scripts at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis import exceptions as rx
from redis.cluster import ClusterNode, RedisCluster

from intentq.dedup.redis.scripts import SCRIPTS

# The URL schemes of a cluster, and the redis-py scheme each stands for.
SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SCHEMES


def cluster_client(url: str, **options: Any) -> RedisCluster:
    """A ``RedisCluster`` for ``redis+cluster://[user:password@]host:port[,host:port…][?…]``.

    The query takes what ``RedisCluster.from_url`` takes (``ssl_cert_reqs``, timeouts…);
    there is no database number on a cluster.
    """
    parts = urlsplit(url)
    scheme = SCHEMES[parts.scheme.lower()]
    userinfo, at, hosts = parts.netloc.rpartition("@")
    first, *others = [h for h in hosts.split(",") if h]
    startup = [_node(address) for address in others]
    first_url = urlunsplit((scheme, f"{userinfo}{at}{first}", parts.path, parts.query, ""))
    return RedisCluster.from_url(first_url, startup_nodes=startup, **options)


def _node(address: str) -> ClusterNode:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"a cluster node must be host:port, not {address!r}")
    return ClusterNode(host.strip("[]"), int(port))  # type: ignore[no-untyped-call]


class ClusterScripts:
    """``EVALSHA`` on a ``RedisCluster``, with ``EVAL`` where a node lacks the script."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client
        self.sources = {script.sha: script.source for script in SCRIPTS.values()}

    @classmethod
    def for_client(cls, client: Any) -> ClusterScripts | None:
        return cls(client) if isinstance(client, RedisCluster) else None

    def load(self) -> None:
        """``SCRIPT LOAD`` every script on every master (ahead of time; calls do without)."""
        for source in self.sources.values():
            self.client.script_load(source)

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        """One call; an error reply is raised."""
        try:
            return self.client.evalsha(sha, numkeys, *args)
        except rx.NoScriptError:
            return self.client.eval(self.sources[sha], numkeys, *args)

    def evalsha_batch(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``(sha, numkeys, *args)`` calls pipelined: one round trip per node, all nodes at
        once, replies in the calls' order; an error reply is returned in its place."""
        replies = self._pipelined("EVALSHA", calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, rx.NoScriptError)]
        if missing:
            again = [(self.sources[calls[i][0]], *calls[i][1:]) for i in missing]
            for i, reply in zip(missing, self._pipelined("EVAL", again), strict=True):
                replies[i] = reply
        return replies

    def _pipelined(self, command: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        # ``ClusterPipeline.evalsha`` is blocked (for scripts without keys, which no pipeline
        # can route); queued as a command, a call with its key is routed like any other.
        with self.client.pipeline(transaction=False) as pipe:  # type: ignore[no-untyped-call]
            for call in calls:
                pipe.execute_command(command, *call)
            return list(pipe.execute(raise_on_error=False))
