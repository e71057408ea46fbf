"""How much the idempotency store costs, per backend, against a raw baseline in the same run.

For each backend (redis, postgresql, sqlite, memory):

- new intents: ``claim`` + ``complete`` of a key never seen, per second, next to the raw
  minimum the same database needs for it (Redis: two plain ``SET`` round trips; SQL: one
  ``INSERT .. ON CONFLICT DO NOTHING`` plus one ``UPDATE``, autocommit, on a table of the
  same shape). Raw and store take turns, one intent each, so load on the machine hits both.
- Redis also against the same two SETs sent on connections kept outside redis-py's command
  layer, as the store sends its scripts: what the scripts cost with the client layer equal;
- duplicates: ``claim`` of a completed key (answers ``Cached``), per second;
- batches: ``claim_many`` of 10 new keys, batches per second.

Round trips are counted on the client: Redis packets sent (a pipeline is one), PostgreSQL
requests on the wire (libpq's trace: every request ends with a Sync or a simple Query, pings
included), SQLite statements (in-process calls, no network).
Prints a table, writes bench/results/dedup.json.

    .venv/bin/python bench/dedup.py [--n 3000] [--backends redis,postgresql,sqlite,memory]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis

if __package__ in (None, ""):  # run as a script: make `intentq` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intentq.dedup.base import Acquired, Cached, ClaimRequest, DedupStore
from intentq.dedup.memory import MemoryDedupStore
from intentq.dedup.redis.connections import DirectConnections
from intentq.dedup.redis.store import RedisDedupStore
from intentq.dedup.sql.store import SqlDedupStore

RESULTS = Path(__file__).resolve().parent / "results"
TOOL = "bench_tool"
FP = "f" * 64
RESULT = {"booking_id": 42, "slot": "15:00"}
RESULT_JSON = json.dumps(RESULT, separators=(",", ":"))
TTL = 3600.0
LEASE = 300.0
BATCH = 10


class CountingConnection(redis.Connection):
    """A redis-py connection that counts what it sends: one count per round trip."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


class SqlCounter:
    """Counts statements SQLite runs on the store's connections (its round trips are
    in-process calls): sqlite3's trace callback, which sees the store's direct calls too."""

    def __init__(self, store: SqlDedupStore) -> None:
        from sqlalchemy import event

        self.total = 0
        self._traced: dict[int, Any] = {}
        self._engine = store.engine
        event.listen(store.engine, "checkout", self._checkout)

    def _checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if id(dbapi_connection) not in self._traced:
            dbapi_connection.set_trace_callback(self._statement)
            self._traced[id(dbapi_connection)] = dbapi_connection

    def _statement(self, statement: str) -> None:
        if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
            self.total += 1

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self._engine, "checkout", self._checkout)
        for connection in self._traced.values():
            connection.set_trace_callback(None)


class WireCounter:
    """Counts PostgreSQL requests on the wire: libpq's trace, one Sync or Query per request."""

    def __init__(self, store: SqlDedupStore, path: Path) -> None:
        from sqlalchemy import event

        self.path = path
        self._sink = path.open("w")
        self._traced: dict[int, Any] = {}
        self._engines = {store.engine, store.autocommit_engine}
        for engine in self._engines:
            event.listen(engine, "checkout", self._checkout)

    def _checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if id(dbapi_connection) not in self._traced:
            dbapi_connection.pgconn.trace(self._sink.fileno())
            self._traced[id(dbapi_connection)] = dbapi_connection

    @property
    def total(self) -> int:
        self._sink.flush()
        count = 0
        for line in self.path.read_text().splitlines():
            fields = line.split("\t")
            count += len(fields) > 3 and fields[1] == "F" and fields[3] in ("Sync", "Query")
        return count

    def close(self) -> None:
        from sqlalchemy import event

        for engine in self._engines:
            event.remove(engine, "checkout", self._checkout)
        for connection in self._traced.values():
            connection.pgconn.untrace()
        self._sink.close()


# -- raw baselines -----------------------------------------------------------------------


class RawRedis:
    """Two plain SETs per intent: claim (NX) then record the result."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.prefix = f"bench-raw-{uuid.uuid4().hex[:8]}"

    def intent(self, key: str) -> None:
        name = f"{self.prefix}:{TOOL}:{key}"
        self.client.set(name, "in_progress", nx=True, px=int(LEASE * 1000))
        self.client.set(name, RESULT_JSON, px=int(TTL * 1000))

    def close(self) -> None:
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            self.client.delete(*keys[i : i + 1000])
        self.client.close()


class RawRedisDirect(RawRedis):
    """The same two SETs, sent the way the store sends its scripts: on connections kept
    outside redis-py's command layer. Shows how much of the ratio is that layer alone."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        direct = DirectConnections.for_client(self.client)
        assert direct is not None
        self.direct = direct

    def intent(self, key: str) -> None:
        name = f"{self.prefix}:{TOOL}:{key}"
        self.direct.call("SET", name, "in_progress", "NX", "PX", int(LEASE * 1000))
        self.direct.call("SET", name, RESULT_JSON, "PX", int(TTL * 1000))

    def close(self) -> None:
        self.direct.close()
        super().close()


class RawSql:
    """One INSERT .. ON CONFLICT DO NOTHING plus one UPDATE per intent, autocommit."""

    INSERT = (
        "INSERT INTO {t} (store_key, tool, key, state, fingerprint, token, lease_until, "
        "attempts, created_at, updated_at, expires_at) VALUES ({p}) ON CONFLICT DO NOTHING"
    )

    def __init__(self, kind: str, url_or_path: str, store: SqlDedupStore) -> None:
        self.kind = kind
        self.table = f"raw_{uuid.uuid4().hex[:8]}"
        # The same table shape as the store's, so only the statements differ.
        from intentq.dedup.sql.schema import dedup_table

        dedup_table(self.table).create(store.engine)
        self._store = store
        if kind == "postgresql":
            import psycopg

            self.conn: Any = psycopg.connect(url_or_path, autocommit=True)
            mark = "%s"
        else:
            self.conn = sqlite3.connect(url_or_path, isolation_level=None)
            self.conn.execute("PRAGMA busy_timeout = 30000")
            mark = "?"
        self.insert = self.INSERT.format(t=self.table, p=", ".join([mark] * 11))
        self.update = (
            f"UPDATE {self.table} SET state = 'completed', result = {mark}, token = '', "
            f"updated_at = {mark}, expires_at = {mark} WHERE store_key = {mark}"
        )

    def intent(self, key: str) -> None:
        now = time.time()
        name = f"raw:{TOOL}:{key}"
        token = uuid.uuid4().hex
        self.conn.execute(
            self.insert,
            (name, TOOL, key, "in_progress", FP, token, now + LEASE, 1, now, now, now + TTL),
        )
        self.conn.execute(self.update, (RESULT_JSON, now, now + TTL, name))

    def close(self) -> None:
        self.conn.close()
        from sqlalchemy import text

        with self._store.engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {self.table}"))


# -- measuring -----------------------------------------------------------------------------


def _keys(n: int) -> Iterator[str]:
    run = uuid.uuid4().hex[:8]
    return (f"{run}-{i}" for i in range(n))


def store_intent(store: DedupStore) -> Callable[[str], None]:
    def intent(key: str) -> None:
        claim = store.claim(TOOL, key, FP, lease=LEASE, ttl=TTL)
        assert isinstance(claim, Acquired), claim
        store.complete(TOOL, key, claim.token, RESULT, ttl=TTL)

    return intent


def rate(action: Callable[[str], None], keys: list[str]) -> float:
    start = time.perf_counter()
    for key in keys:
        action(key)
    return len(keys) / (time.perf_counter() - start)


def alternate(
    raw: Callable[[str], None] | None, store: Callable[[str], None], n: int
) -> tuple[float | None, float]:
    """Rates of raw and store, one intent of each in turn, so load hits both alike."""
    raw_time = store_time = 0.0
    clock = time.perf_counter
    for key in _keys(n):
        if raw is not None:
            start = clock()
            raw(key)
            raw_time += clock() - start
        start = clock()
        store(key)
        store_time += clock() - start
    return (n / raw_time if raw is not None else None), n / store_time


def measure(
    name: str,
    store: DedupStore,
    raw: RawRedis | RawSql | None,
    n: int,
    batches: int,
    start_counting: Callable[[], Callable[[], int]] | None,
    repeat: int,
) -> dict[str, Any]:
    """Rates first (new intents: ``repeat`` runs, medians), then round trips per operation."""
    intent = store_intent(store)
    warm = list(_keys(200))
    for key in warm:  # scripts loaded, statements prepared, pools filled
        intent(key)
        if raw is not None:
            raw.intent(key)

    runs = [alternate(raw.intent if raw else None, intent, n) for _ in range(repeat)]
    raw_rate = statistics.median(r for r, _ in runs) if raw else None
    new_rate = statistics.median(s for _, s in runs)
    ratios = [s / r for r, s in runs if r]

    done = list(_keys(min(n, 2000)))
    for key in done:
        intent(key)
    dup_rate = rate(lambda k: _cached(store.claim(TOOL, k, FP)), done)

    batch_keys = list(_keys(batches * BATCH))
    requests = [
        [ClaimRequest(TOOL, k, FP, LEASE, TTL) for k in batch_keys[i : i + BATCH]]
        for i in range(0, len(batch_keys), BATCH)
    ]
    start = time.perf_counter()
    for batch in requests:
        store.claim_many(batch)
    batch_rate = len(requests) / (time.perf_counter() - start)

    trips: dict[str, float | None] = {"new_intent": None, "duplicate": None, "batch_of_10": None}
    if start_counting is not None:
        round_trips = start_counting()
        for what, action in (
            ("new_intent", lambda: [intent(k) for k in _keys(100)]),
            ("duplicate", lambda: [store.claim(TOOL, k, FP) for k in done[:100]]),
            ("batch_of_10", lambda: [store.claim_many(b) for b in _fresh_batches(10)]),
        ):
            before = round_trips()
            action()
            trips[what] = (round_trips() - before) / (10 if what == "batch_of_10" else 100)

    return {
        "backend": name,
        "new_intents_per_s": new_rate,
        "raw_intents_per_s": raw_rate,
        "ratio_to_raw": statistics.median(ratios) if ratios else None,
        "ratio_runs": ratios,
        "duplicate_claims_per_s": dup_rate,
        "batches_of_10_per_s": batch_rate,
        "round_trips": trips,
    }


def _cached(claim: Any) -> None:
    assert isinstance(claim, Cached), claim


def _fresh_batches(count: int) -> list[list[ClaimRequest]]:
    keys = list(_keys(count * BATCH))
    return [
        [ClaimRequest(TOOL, k, FP, LEASE, TTL) for k in keys[i : i + BATCH]]
        for i in range(0, len(keys), BATCH)
    ]


# -- backends ------------------------------------------------------------------------------


def run_redis(url: str, n: int, batches: int, repeat: int) -> dict[str, Any]:
    client = redis.Redis.from_url(url, connection_class=CountingConnection)
    store = RedisDedupStore(client, prefix=f"bench-{uuid.uuid4().hex[:8]}")
    raw = RawRedis(url)
    direct = RawRedisDirect(url)
    try:
        store.create_schema()
        result = measure(
            "redis", store, raw, n, batches, lambda: lambda: CountingConnection.sent, repeat
        )
        intent = store_intent(store)
        runs = [alternate(direct.intent, intent, n) for _ in range(repeat)]
        result["ratio_to_raw_direct"] = statistics.median(s / r for r, s in runs if r)
        return result
    finally:
        direct.close()
        keys = list(client.scan_iter(match=f"{store.prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()
        raw.close()


def run_sql(kind: str, url: str, n: int, batches: int, tmp: Path, repeat: int) -> dict[str, Any]:
    store = SqlDedupStore.from_url(url, table_name=f"bench_{uuid.uuid4().hex[:8]}")
    store.create_schema()
    if kind == "postgresql":
        raw = RawSql(kind, url.replace("postgresql+psycopg://", "postgresql://"), store)
    else:
        raw = RawSql(kind, url.removeprefix("sqlite:///"), store)
    counters: list[WireCounter | SqlCounter] = []

    def start_counting() -> Callable[[], int]:
        if kind == "sqlite":
            counters.append(SqlCounter(store))
        else:
            counters.append(WireCounter(store, tmp / "libpq-trace.txt"))
        return lambda: counters[0].total

    try:
        return measure(kind, store, raw, n, batches, start_counting, repeat)
    finally:
        for counter in counters:
            counter.close()
        raw.close()
        store.drop_schema()
        store.close()


def run_memory(n: int, batches: int, repeat: int) -> dict[str, Any]:
    return measure("memory", MemoryDedupStore(), None, n, batches, None, repeat)


# -- report --------------------------------------------------------------------------------


def versions(args: argparse.Namespace, backends: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    if "redis" in backends:
        client = redis.Redis.from_url(args.redis_url)
        info["redis"] = client.info("server")["redis_version"]
        client.close()
    if "postgresql" in backends:
        import psycopg

        with psycopg.connect(args.pg_url.replace("+psycopg", "")) as conn:
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    return info


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _range(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'backend':<11}{'new/s':>9}{'raw/s':>9}{'ratio':>7}{'range':>11}{'dup/s':>11}{'batch10/s':>11}"
        f"{'RT new':>8}{'RT dup':>8}{'RT b10':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        rt = r["round_trips"]
        lines.append(
            f"{r['backend']:<11}{_fmt(r['new_intents_per_s']):>9}{_fmt(r['raw_intents_per_s']):>9}"
            f"{_fmt(r['ratio_to_raw'], '.2f'):>7}{_range(r['ratio_runs']):>11}"
            f"{_fmt(r['duplicate_claims_per_s']):>11}"
            f"{_fmt(r['batches_of_10_per_s']):>11}{_fmt(rt['new_intent'], '.1f'):>8}"
            f"{_fmt(rt['duplicate'], '.1f'):>8}{_fmt(rt['batch_of_10'], '.1f'):>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="new intents per backend")
    parser.add_argument("--batches", type=int, default=300, help="claim_many batches of 10")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the new-intent race")
    parser.add_argument("--backends", default="redis,postgresql,sqlite,memory")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sqlite-path", default=None, help="default: a temporary file")
    parser.add_argument("--out", type=Path, default=RESULTS / "dedup.json")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="intentq-bench-") as tmp:
        sqlite_path = args.sqlite_path or str(Path(tmp) / "dedup.db")
        for backend in backends:
            print(f"measuring {backend} ...", file=sys.stderr, flush=True)
            if backend == "redis":
                rows.append(run_redis(args.redis_url, args.n, args.batches, args.repeat))
            elif backend == "postgresql":
                rows.append(
                    run_sql("postgresql", args.pg_url, args.n, args.batches, Path(tmp), args.repeat)
                )
            elif backend == "sqlite":
                url = f"sqlite:///{sqlite_path}"
                rows.append(run_sql("sqlite", url, args.n, args.batches, Path(tmp), args.repeat))
            elif backend == "memory":
                rows.append(run_memory(args.n, args.batches, args.repeat))
            else:
                parser.error(f"unknown backend {backend!r}")

    report = {
        "bench": "dedup",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": versions(args, backends),
        "n": args.n,
        "batches": args.batches,
        "repeat": args.repeat,
        "results": rows,
    }
    print(table(rows))
    print(
        f"ratio: median of {args.repeat} runs of store/raw (range: lowest-highest run). "
        "RT: client round trips per new intent (claim + complete), per duplicate claim, "
        "per claim_many of 10 (PostgreSQL: requests on the wire; SQLite: statements)."
    )
    for r in rows:
        if r.get("ratio_to_raw_direct") is not None:
            print(
                f"{r['backend']}: store/raw is {r['ratio_to_raw_direct']:.2f} when the raw SETs "
                "skip redis-py's command layer too, as the store's scripts do."
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
