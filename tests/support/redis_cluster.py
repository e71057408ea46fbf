"""A Redis Cluster of the tests' own: three masters and three replicas on free loopback ports.

Each node is a ``redis-server`` process in a directory of its own, without persistence;
``redis-cli --cluster create`` joins them. ``start()`` returns once every node says
``cluster_state:ok`` with all slots served and every replica is in sync with its master. A
short node timeout makes a killed master's replica take over within a few seconds.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis

T = TypeVar("T")
INSTALL = "apt-get install redis-server redis-tools"
# How long a master may not answer before its replica takes over (milliseconds).
NODE_TIMEOUT_MS = 1000
START_TIMEOUT = 30.0  # seconds for the nodes to answer, join and sync
POLL = 0.05
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


def binaries() -> tuple[str, str]:
    """``redis-server`` and ``redis-cli``; the test fails naming the packages if one is missing."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.fail(f"a Redis Cluster test needs redis-server and redis-cli: {INSTALL}")
    return server, cli


def poll(probe: Callable[[], T], timeout: float, what: str) -> T:
    """``probe()`` until it is truthy; a Redis error counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError):
            value = probe()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL)


def free_node_port() -> int:
    """A free loopback port whose bus port (+10000, at most 65535) is free as well."""
    for _ in range(100):
        with socket.socket() as client, socket.socket() as bus:
            client.bind(("127.0.0.1", 0))
            port = int(client.getsockname()[1])
            if port + BUS_OFFSET > 65535:
                continue
            try:
                bus.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
            return port
    raise AssertionError("no free port pair for a cluster node")


class Node:
    """One ``redis-server --cluster-enabled yes`` process."""

    def __init__(self, exe: str, workdir: Path) -> None:
        self.port = free_node_port()
        self.dir = workdir / str(self.port)
        self.dir.mkdir(parents=True)
        self.log_path = self.dir / "redis.log"
        self.exe = exe
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            self.exe, "--port", str(self.port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-config-file", str(self.dir / "nodes.conf"),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # A replica may take over however long it was cut off: the tests kill on purpose.
            "--cluster-replica-validity-factor", "0",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--dir", str(self.dir), "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def query(self, *command: str) -> object:
        client = self.client()
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def info(self, section: str) -> dict[str, object]:
        client = self.client()
        try:
            return dict(client.info(section))
        finally:
            client.close()

    def node_id(self) -> str:
        return str(self.query("CLUSTER", "MYID"), "ascii")  # type: ignore[arg-type]

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last word to the replicas."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class LocalCluster:
    """``masters`` masters with ``replicas`` replicas each, all on 127.0.0.1."""

    def __init__(self, workdir: Path, masters: int = 3, replicas: int = 1) -> None:
        server, self.cli = binaries()
        self.replicas = replicas
        self.nodes = [Node(server, workdir) for _ in range(masters * (1 + replicas))]

    @property
    def url(self) -> str:
        """The store's URL: two of the nodes, for the client to discover the rest."""
        return "redis+cluster://" + ",".join(n.address for n in self.nodes[:2])

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            poll(lambda n=node: n.query("PING"), START_TIMEOUT, f"{node.address} to answer")
        created = subprocess.run(
            [self.cli, "--cluster", "create", *(n.address for n in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise AssertionError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}")
        self.wait_healthy()

    def alive(self) -> list[Node]:
        return [n for n in self.nodes if n.alive]

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Until every live node serves all slots and every live replica is in sync."""
        for node in self.alive():
            poll(lambda n=node: _serving(n, len(self.alive())), timeout, f"{node.address} ok")
        for node in self.alive():
            poll(lambda n=node: _in_sync(n), timeout, f"{node.address} in sync")

    def masters(self) -> list[Node]:
        """Live nodes that are masters now."""
        return [n for n in self.alive() if n.info("replication").get("role") == "master"]

    def replica_of(self, master: Node) -> Node:
        """A live replica of ``master``."""
        master_id = master.node_id()
        for node in self.alive():
            lines = str(node.query("CLUSTER", "NODES"), "utf-8").splitlines()  # type: ignore[arg-type]
            for line in lines:
                fields = line.split()
                if "myself" in fields[2] and "slave" in fields[2] and fields[3] == master_id:
                    return node
        raise AssertionError(f"{master.address} has no replica")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {n.address}\n{n.log_tail()}" for n in self.nodes)


def _serving(node: Node, known: int) -> bool:
    info = str(node.query("CLUSTER", "INFO"), "utf-8")  # type: ignore[arg-type]
    fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
    return (
        fields.get("cluster_state") == "ok"
        and fields.get("cluster_slots_ok") == "16384"
        and int(fields.get("cluster_known_nodes", 0)) >= known
    )


def _in_sync(node: Node) -> bool:
    """A master: every replica it lists is online at its offset; a replica: its link is up."""
    info = node.info("replication")
    if info.get("role") == "master":
        offset = int(info.get("master_repl_offset", 0))  # type: ignore[call-overload]
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return all(r.get("state") == "online" and int(r["offset"]) == offset for r in replicas)
    return info.get("master_link_status") == "up" and not info.get("master_sync_in_progress")


@contextlib.contextmanager
def running_cluster(workdir: Path) -> Iterator[LocalCluster]:
    """A started cluster, stopped afterwards (SIGTERM, then SIGKILL) whatever happened."""
    cluster = LocalCluster(workdir)
    try:
        cluster.start()
        yield cluster
    except BaseException:
        print(cluster.logs())  # the nodes' own account of what went wrong
        raise
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster for the run's contract and race tests (nothing is killed there)."""
    with running_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A cluster for one test alone: a failover test breaks it."""
    with running_cluster(tmp_path / "cluster") as cluster:
        yield cluster
