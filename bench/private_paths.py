"""What each private-API fast path of the stores gains, on a realistic tool.

intentq leans on two libraries' private names, each behind a version check with a public
fallback (``intentq.internals``):

- redis-py: the Redis store sends ``EVALSHA`` on its connections' sockets itself
  (``Connection._sock``, ``redis._parsers``) instead of ``Redis.evalsha``;
- SQLAlchemy: the SQL store keeps pooled connections checked out between calls, firing the
  pool's own events on reuse (``_pool``, ``_connection_record``, ``_recycle``, ``_pre_ping``,
  ``_max_overflow``) instead of a checkout and a checkin per call.

Each round runs N intents the way a worker does (claim, the tool, complete) on a pool of
threads, with a tool that does ``--work-ms`` of I/O (a sleep) and with a no-op, once on the
private path and once on the public one, in alternating order. A private path is worth
keeping only where it gains at least 5% on the realistic tool. Prints medians and ratios.

    python bench/private_paths.py [--n 2000] [--rounds 5] [--concurrency 20] [--work-ms 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from intentq.connections import open_store
from intentq.dedup.base import Acquired, DedupStore

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def drain(store: DedupStore, n: int, concurrency: int, work: float) -> tuple[float, float]:
    """Intents per second and process CPU per intent (µs) for ``n`` claim-work-complete."""
    tool = "bench"

    def one(_: int) -> None:
        key = uuid.uuid4().hex
        claim = store.claim(tool, key, "fp", lease=60, ttl=300)
        assert isinstance(claim, Acquired)
        if work:
            time.sleep(work)
        store.complete(tool, key, claim.token, {"ok": True}, ttl=300)

    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, cpu / n * 1e6


def redis_public(store: DedupStore) -> None:
    store._direct = None  # type: ignore[attr-defined]  # the public path: Redis.evalsha


def sql_public(store: DedupStore) -> None:
    store._driver.keeper.disable_keeping()  # type: ignore[attr-defined]


CASES: dict[str, tuple[str, Callable[[DedupStore], None]]] = {
    "redis": (REDIS_URL, redis_public),
    "postgres": (PG_URL, sql_public),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--work-ms", type=float, default=1.0)
    parser.add_argument("--stores", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print("store     tool      private/s  public/s  ratio  cpu µs private  cpu µs public")
    for name in args.stores:
        url, make_public = CASES[name]
        private = open_store(url, prefix=f"bench-{uuid.uuid4().hex[:6]}")
        public = open_store(url, prefix=f"bench-{uuid.uuid4().hex[:6]}")
        for store in (private, public):
            store.create_schema()
        make_public(public)
        for label, work in (("no-op", 0.0), (f"{args.work_ms:g} ms I/O", args.work_ms / 1000)):
            rates: dict[str, list[float]] = {"private": [], "public": []}
            cpus: dict[str, list[float]] = {"private": [], "public": []}
            for r in range(args.rounds):
                order = [("private", private), ("public", public)]
                for side, store in order if r % 2 == 0 else reversed(order):
                    rate, cpu = drain(store, args.n, args.concurrency, work)
                    rates[side].append(rate)
                    cpus[side].append(cpu)
            fast, slow = statistics.median(rates["private"]), statistics.median(rates["public"])
            print(
                f"{name:9} {label:9} {fast:9.0f} {slow:9.0f}  {fast / slow:5.2f}"
                f"  {statistics.median(cpus['private']):14.0f}"
                f"  {statistics.median(cpus['public']):13.0f}"
            )
        private.close()
        public.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
