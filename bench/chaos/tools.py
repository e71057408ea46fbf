"""The tools chaos workers run; every side effect is a row in a PostgreSQL table.

The ``effects`` table has no unique constraint: a tool that ran twice for one key leaves two
``effect`` rows. ``flags`` holds the operator's fix for the ``fixable`` tool. Both live in a
schema of the run's own, named with the DSN by ``CHAOS_FX`` (JSON) in worker processes.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from typing import Any, NamedTuple

import psycopg
from pydantic import BaseModel
from sqlalchemy import text

from intentq import Registry, ToolContext, TransientError

FX_ENV = "CHAOS_FX"
FIX_FLAG = "fixable"
# Attempts a valid intent may take: kills and transient failures both spend one.
EFFECT_MAX_ATTEMPTS = 20


class NotFixedYet(RuntimeError):
    """The ``fixable`` tool's permanent error, until the operator sets its flag."""


class EffectArgs(BaseModel):
    n: int
    fail_times: int = 0  # attempts that raise TransientError first


class Slot(BaseModel):
    """The bad-input corpus's tool: ``book_slot`` with a ``slot`` string."""

    slot: str


class SlowArgs(BaseModel):
    seconds: float
    n: int = 0


class Row(NamedTuple):
    kind: str
    tool: str
    key: str
    attempt: int
    pid: int
    at: float  # epoch seconds, the database's clock


class Effects:
    """Rows ``(kind, tool, key, intent_id, attempt, pid)`` in ``"<schema>".effects``."""

    def __init__(self, dsn: str, schema: str, transactional: bool = False) -> None:
        self.dsn = dsn
        self.schema = schema
        # Write ``effect`` rows in the store's transaction (SQL store only).
        self.transactional = transactional
        self.table = f'"{schema}".effects'
        self.flags = f'"{schema}".flags'
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[psycopg.Connection[Any]] = []

    @classmethod
    def from_env(cls) -> Effects:
        config = json.loads(os.environ[FX_ENV])
        return cls(config["dsn"], config["schema"], bool(config.get("transactional")))

    def env(self) -> dict[str, str]:
        config = {"dsn": self.dsn, "schema": self.schema, "transactional": self.transactional}
        return {FX_ENV: json.dumps(config)}

    def create(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE {self.table} (id bigserial PRIMARY KEY, kind text, tool text,"
                " key text, intent_id text, attempt int, pid int,"
                " at timestamptz DEFAULT clock_timestamp())"
            )
            conn.execute(f"CREATE TABLE {self.flags} (name text PRIMARY KEY)")

    # -- writing (worker side) -------------------------------------------------------------

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.dsn, autocommit=True, application_name="chaos-fx")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        # No resend: an INSERT whose reply was lost may have committed, and sending it again
        # would count one run twice. The tool fails transiently instead, on a new connection.
        conn = self._conn()
        try:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []
        except psycopg.OperationalError as exc:
            conn.close()
            raise ConnectionError(f"effects table unreachable: {exc}") from exc

    def note(self, kind: str, ctx: ToolContext) -> None:
        self._execute(
            f"INSERT INTO {self.table} (kind, tool, key, intent_id, attempt, pid)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (kind, ctx.tool, ctx.key, ctx.intent_id, ctx.attempt, os.getpid()),
        )

    def effect(self, ctx: ToolContext, transactional: bool | None = None) -> None:
        """The side effect: an ``effect`` row, in the store's transaction when asked to."""
        if not (self.transactional if transactional is None else transactional):
            self.note("effect", ctx)
            return
        ctx.session.execute(
            text(
                f"INSERT INTO {self.table} (kind, tool, key, intent_id, attempt, pid)"
                " VALUES ('effect', :tool, :key, :intent_id, :attempt, :pid)"
            ),
            {
                "tool": ctx.tool,
                "key": ctx.key,
                "intent_id": ctx.intent_id,
                "attempt": ctx.attempt,
                "pid": os.getpid(),
            },
        )

    def fixed(self) -> bool:
        return bool(self._execute(f"SELECT 1 FROM {self.flags} WHERE name = %s", (FIX_FLAG,)))

    # -- reading (the run's side) ------------------------------------------------------------

    def fix(self) -> None:
        """The operator's fix: from now on ``fixable`` succeeds."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                f"INSERT INTO {self.flags} (name) VALUES (%s) ON CONFLICT DO NOTHING", (FIX_FLAG,)
            )

    def rows(self, kind: str | None = None) -> list[Row]:
        """Every row (of one kind), in insertion order."""
        where, params = ("WHERE kind = %s", (kind,)) if kind else ("", ())
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(
                f"SELECT kind, tool, key, attempt, pid, extract(epoch FROM at)::float8"
                f" FROM {self.table} {where} ORDER BY id",
                params,
            )
            return [Row(*row) for row in cur.fetchall()]

    def counts(self, kind: str = "effect", tool: str | None = None) -> Counter[str]:
        """How many ``kind`` rows each key has."""
        return Counter(row.key for row in self.rows(kind) if tool in (None, row.tool))

    def distinct_keys(self, kind: str, tool: str) -> int:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                f"SELECT count(DISTINCT key) FROM {self.table} WHERE kind = %s AND tool = %s",
                (kind, tool),
            ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


def build_registry(fx: Effects) -> Registry:
    """``effect`` (maybe transient first), ``fixable`` (permanent until fixed), ``slow``,
    and ``book_slot``, the tool the bad-input corpus was written against.

    With ``fx.transactional``, ``effect`` and ``fixable`` write their row in the store's
    transaction (``transactional=True`` tools on the SQL store): it commits with the
    completion record or not at all. ``slow`` writes outside it, ``slow_tx`` inside.
    """
    registry = Registry()
    tx = fx.transactional

    @registry.tool("effect", args=EffectArgs, max_attempts=EFFECT_MAX_ATTEMPTS, transactional=tx)
    def effect(args: EffectArgs, ctx: ToolContext) -> dict[str, int]:
        fx.note("call", ctx)
        if ctx.attempt <= args.fail_times:
            fx.note("transient", ctx)
            raise TransientError(f"attempt {ctx.attempt} of {args.fail_times} fails")
        fx.effect(ctx)
        return {"n": args.n, "attempt": ctx.attempt}

    @registry.tool("fixable", args=EffectArgs, max_attempts=EFFECT_MAX_ATTEMPTS, transactional=tx)
    def fixable(args: EffectArgs, ctx: ToolContext) -> dict[str, int]:
        fx.note("call", ctx)
        if not fx.fixed():
            raise NotFixedYet(f"intent {args.n} needs the fix first")
        fx.effect(ctx)
        return {"n": args.n}

    @registry.tool("book_slot", args=Slot)
    def book_slot(args: Slot, ctx: ToolContext) -> str:
        fx.effect(ctx)
        return args.slot

    @registry.tool("slow", args=SlowArgs, max_attempts=EFFECT_MAX_ATTEMPTS)
    def slow(args: SlowArgs, ctx: ToolContext) -> dict[str, Any]:
        fx.note("start", ctx)
        time.sleep(args.seconds)
        fx.note("effect", ctx)
        return {"pid": os.getpid(), "attempt": ctx.attempt}

    @registry.tool("slow_tx", args=SlowArgs, max_attempts=EFFECT_MAX_ATTEMPTS, transactional=True)
    def slow_tx(args: SlowArgs, ctx: ToolContext) -> dict[str, Any]:
        fx.note("start", ctx)
        time.sleep(args.seconds)
        fx.effect(ctx, transactional=True)
        return {"pid": os.getpid(), "attempt": ctx.attempt}

    return registry


def env_registry() -> Registry:
    """The registry a worker process serves, its tables named by ``CHAOS_FX``."""
    return build_registry(Effects.from_env())
