"""A SQL dead-letter table of a million letters: what a page, a count, stats and a purge cost.

Fills a PostgreSQL table (made by ``create_schema``, so at the newest revision) with letters
like a busy DLQ's: 40 tools of skewed popularity, every reason, dead over the last 30 days
(more of them recently), envelopes of a few hundred bytes, errors with tracebacks. The fill
goes through ``COPY``; then ``VACUUM ANALYZE``, as autovacuum leaves a table at rest.

Then times, through the store's own calls (the median and the worst of ``--repeat``):

- the first page; a page deep in the table (from a cursor 25 days in); pages filtered by a
  tool (a common one and a rare one), a reason, an age (``since 7d``), a tool and an age,
  and a deep page of a tool;
- the counts ``dlq list`` shows beside a page;
- ``stats`` unfiltered, by tool and by age;
- the count a filtered replay dry run starts with, and the dry run itself (no dedup store);
- a filtered purge of about 10,000 letters, batch by batch.

Each query is EXPLAINed (ANALYZE, on the same parameters): the plan's index and the most
rows any node of it examined. Prints a table; ``--json`` writes bench/results/dlq_million.json.
Run by hand (minutes), not in CI:

    .venv/bin/python bench/dlq_million.py [--rows 1000000] [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `intentq` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from intentq.dlq import LetterFilter, Reason
from intentq.dlq.purge import purge
from intentq.dlq.replay import as_of, replay
from intentq.dlq.sql import SqlDeadLetterStore, cursor_of

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DATABASE = "intentq_bench"
TABLE = "bench_dead_letters"
PAGE = 50  # what `intentq dlq list` shows by default
SPREAD = timedelta(days=30)
TOOLS = [f"tool_{i:02d}" for i in range(40)]
# Tool popularity: Zipf-like, so one tool has ~20% of the letters and the last ~0.6%.
TOOL_WEIGHTS = [1 / (i + 1) ** 0.9 for i in range(len(TOOLS))]
REASONS = {
    Reason.EXHAUSTED: 40, Reason.PERMANENT: 25, Reason.SCHEMA: 15, Reason.POISON: 5,
    Reason.UNKNOWN_TOOL: 5, Reason.CRASH_LOOP: 5, Reason.KEY_REUSE_MISMATCH: 5,
}  # fmt: skip
ERRORS = {
    Reason.EXHAUSTED: ("TimeoutError", "upstream did not answer within 30s"),
    Reason.PERMANENT: ("ValueError", "slot 15:00 is taken for resource 4411"),
    Reason.SCHEMA: ("ValidationError", "1 validation error for Args: slot field required"),
    Reason.POISON: ("InvalidIntent", "body is not JSON: Expecting value: line 1 column 1"),
    Reason.UNKNOWN_TOOL: ("UnknownTool", "no tool named in the registry"),
    Reason.CRASH_LOOP: ("CrashLoop", "claimed 5 times without finishing"),
    Reason.KEY_REUSE_MISMATCH: ("KeyReuseMismatch", "key reused with other arguments"),
}
TRACEBACK = "Traceback (most recent call last):\n" + "".join(
    f'  File "/srv/app/tools/booking.py", line {100 + i}, in call_{i}\n    return step_{i}(x)\n'
    for i in range(8)
)
COLUMNS = (
    "id", "body", "reason", "tool", "key", "intent_id", "error_type", "error_message",
    "traceback", "attempts", "source_transport", "source_queue", "first_seen", "dead_at",
    "replay_count", "last_replayed_at",
)  # fmt: skip


def uuid7_at(ms: int, rand: int) -> str:
    """A UUIDv7 of the millisecond ``ms``: ids keep the order the letters would have had."""
    value = (ms << 80) | (0x7 << 76) | (0b10 << 62) | (rand & ((1 << 76) - 1) & ~(0xF << 62))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def letters(n: int, now: datetime, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """``n`` rows in COPY order, reproducible from ``seed``."""
    rng = random.Random(seed)
    reasons = list(REASONS)
    tool_cum = list(accumulate(TOOL_WEIGHTS))
    reason_cum = list(accumulate(REASONS.values()))
    spread = SPREAD.total_seconds()
    now_ms = int(now.timestamp() * 1000)
    padding = ["x" * k for k in range(80, 240)]
    queue = "https://sqs.eu-west-1.amazonaws.com/1234/intentq"
    for i in range(n):
        # Ages: more letters recently (an incident yesterday), the rest spread over 30 days.
        age_ms = int(spread * 1000 * rng.random() ** 1.5)
        dead_ms = now_ms - age_ms
        dead_at = now - timedelta(milliseconds=age_ms)
        tool = rng.choices(TOOLS, cum_weights=tool_cum)[0]
        reason = rng.choices(reasons, cum_weights=reason_cum)[0]
        bits = rng.getrandbits(160)
        key = f"conv-{bits & 0xFFFFFFFF:08x}:call-{i}"
        intent_id = uuid7_at(dead_ms - 30_000, bits >> 32)
        created = dead_at - timedelta(seconds=30)
        body = (
            f'{{"v": 1, "id": "{intent_id}", "tool": "{tool}", "key": "{key}", "args": '
            f'{{"slot": "{bits % 24:02d}:00", "resource": {bits % 10_000}, '
            f'"note": "{padding[bits % len(padding)]}"}}, "created_at": "{created.isoformat()}"}}'
        ).encode()
        error_type, error_message = ERRORS[reason]
        yield (
            uuid7_at(dead_ms, bits >> 84), body, str(reason), tool, key, intent_id, error_type,
            error_message, TRACEBACK if reason in (Reason.EXHAUSTED, Reason.PERMANENT) else None,
            1 + bits % 5, "sqs", queue, created, dead_at, 0, None,
        )  # fmt: skip


def ensure_database(url: str) -> None:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = sa.make_url(url).database
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if found.first() is None:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()


def fill(store: SqlDeadLetterStore, n: int, now: datetime) -> float:
    """COPY ``n`` letters in; returns the seconds it took (the VACUUM ANALYZE included)."""
    started = time.perf_counter()
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        columns = ", ".join(f'"{c}"' for c in COLUMNS)
        with cursor.copy(f"COPY {store.table.name} ({columns}) FROM STDIN") as copy:
            for i, row in enumerate(letters(n, now)):
                copy.write_row(row)
                if i and i % 100_000 == 0:
                    print(f"  {i:,} letters in {time.perf_counter() - started:.0f}s", flush=True)
        raw.commit()
    finally:
        raw.close()
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM ANALYZE {store.table.name}")
    return time.perf_counter() - started


def timed(call: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Milliseconds of each of ``repeat`` calls (after one warm-up), and the last result."""
    result = call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def explain(store: SqlDeadLetterStore, query: sa.Select[Any]) -> tuple[str, int]:
    """The indexes the plan reads (or the scan it does), and the most rows one node examined
    (returned, or removed by a filter, times its loops)."""
    compiled = query.compile(store.engine)
    with store.engine.connect() as conn:
        plan = conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", dict(compiled.params)
        ).scalar_one()[0]["Plan"]
    scans: list[str] = []
    most = 0

    def walk(node: dict[str, Any]) -> None:
        nonlocal most
        loops = node.get("Actual Loops", 1)
        examined = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        most = max(most, examined * loops)
        if "Index Name" in node:
            short = node["Index Name"].replace(f"ix_{store.table.name}_", "")
            scans.append(f"{node['Node Type'].replace('Scan', '').strip()} {short}")
        elif node["Node Type"].endswith("Seq Scan"):
            scans.append(node["Node Type"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return ", ".join(dict.fromkeys(scans)), most


def deep_cursor(store: SqlDeadLetterStore, dead_at: datetime, f: LetterFilter) -> str:
    """The cursor of the first letter dead at or after ``dead_at`` (an index seek)."""
    page = store.list(replace(f, since=dead_at), limit=1)
    letter = page.letters[0]
    assert letter.dead_at is not None
    return cursor_of(letter.dead_at, letter.id)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    ensure_database(args.url)
    store = SqlDeadLetterStore.from_url(args.url, TABLE)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    try:
        if not args.reuse:
            store.drop_schema()
            store.create_schema()
            seconds = fill(store, args.rows, now)
            print(f"filled {args.rows:,} letters in {seconds:.0f}s (COPY, VACUUM ANALYZE)")
        else:
            with store.engine.connect() as conn:
                newest = conn.execute(sa.select(sa.func.max(store.table.c.dead_at))).scalar()
            now = newest or now
        count = store.count()
        with store.engine.connect() as conn:
            size = conn.exec_driver_sql(
                f"SELECT pg_size_pretty(pg_total_relation_size('{TABLE}')), "
                f"pg_size_pretty(pg_indexes_size('{TABLE}'))"
            ).one()
        print(f"{count:,} letters; table with indexes {size[0]}, indexes {size[1]}")

        top, rare = TOOLS[0], TOOLS[-1]
        week = LetterFilter(since=now - timedelta(days=7))
        deep = deep_cursor(store, now - timedelta(days=25), LetterFilter())
        deep_tool = deep_cursor(store, now - timedelta(days=25), LetterFilter(tool=top))
        pages: list[tuple[str, LetterFilter, str | None]] = [
            ("page: first", LetterFilter(), None),
            ("page: deep (cursor 25 days in)", LetterFilter(), deep),
            (f"page: tool {top} (common)", LetterFilter(tool=top), None),
            (f"page: tool {rare} (rare)", LetterFilter(tool=rare), None),
            ("page: reason schema", LetterFilter(reason=Reason.SCHEMA), None),
            ("page: since 7d", week, None),
            (f"page: tool {top}, since 7d", LetterFilter(tool=top, since=week.since), None),
            (f"page: tool {top}, deep", LetterFilter(tool=top), deep_tool),
        ]
        for name, f, cursor in pages:
            times, page = timed(
                lambda f=f, c=cursor: store.list(f, limit=PAGE, cursor=c), args.repeat
            )
            scan, examined = explain(store, store.page_query(f, cursor, PAGE + 1))
            rows.append(row(name, times, len(page.letters), scan, examined))
        counts = [
            ("count: all (list's total)", LetterFilter()),
            (f"count: tool {top}", LetterFilter(tool=top)),
            ("count: since 7d", week),
        ]
        for name, f in counts:
            times, n = timed(lambda f=f: store.count(f), args.repeat)
            scan, examined = explain(store, store.count_query(f))
            rows.append(row(name, times, n, scan, examined))
        for name, f in [
            ("stats: all", LetterFilter()),
            (f"stats: tool {top}", LetterFilter(tool=top)),
            ("stats: since 7d", week),
        ]:
            times, stats = timed(lambda f=f: store.stats(f, now), args.repeat)
            scan, examined = explain(store, store.stats_query(f, now))
            rows.append(row(name, times, stats.total, scan, examined))

        # A set of about 10,000 letters: one tool and reason, dead in the last days.
        target = pick_target(store, now)
        held = as_of(target, datetime.now(UTC))
        times, n = timed(lambda: store.count(held), args.repeat)
        rows.append(row("replay dry run: count", times, n, "", 0))
        started = time.perf_counter()
        summary = replay(store, None, store.iter(held, page_size=500), lambda *_: None,
                         dry_run=True, problems_only=True)  # fmt: skip
        elapsed = (time.perf_counter() - started) * 1000
        rows.append(row("replay dry run: every letter planned", [elapsed], summary.replayed,
                        "pages of 500", 0))  # fmt: skip
        started = time.perf_counter()
        batches: list[int] = []
        purged = purge(store, all_letters=True, filter=target, on_progress=batches.append)
        elapsed = (time.perf_counter() - started) * 1000
        rows.append(row(f"purge: {len(batches)} batches", [elapsed], purged, "", 0))
        assert store.count(target) == 0
    finally:
        if not args.keep:
            store.drop_schema()
        store.close()
    return rows


def pick_target(store: SqlDeadLetterStore, now: datetime) -> LetterFilter:
    """The tool and reason whose letters number closest to 10,000."""
    stats = store.stats(None, now)
    (tool, reason), _ = min(stats.by_tool_reason.items(), key=lambda x: abs(x[1] - 10_000))
    return LetterFilter(tool=tool, reason=Reason(reason))


def row(name: str, times: list[float], n: int, scan: str, examined: int) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "what": name, "median_ms": statistics.median(ordered), "max_ms": ordered[-1],
        "rows": n, "plan": scan, "examined": examined,
    }  # fmt: skip


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'':38} {'median ms':>10} {'max ms':>8} {'rows':>9} {'examined':>9}  plan"
    print(head)
    print("-" * len(head))
    for r in rows:
        examined = f"{r['examined']:,}" if r["examined"] else ""
        print(
            f"{r['what']:38} {r['median_ms']:10.1f} {r['max_ms']:8.1f} {r['rows']:9,} "
            f"{examined:>9}  {r['plan']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", default=f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}")
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per query")
    parser.add_argument("--reuse", action="store_true", help="keep the table a run left")
    parser.add_argument("--keep", action="store_true", help="leave the table for --reuse")
    parser.add_argument("--json", action="store_true", help="write bench/results/dlq_million.json")
    args = parser.parse_args()
    rows = run(args)
    print()
    print(f"{platform.node()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d}")  # fmt: skip
    print_table(rows)
    if args.json:
        out = Path(__file__).resolve().parent / "results" / "dlq_million.json"
        out.write_text(json.dumps({"rows": args.rows, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
