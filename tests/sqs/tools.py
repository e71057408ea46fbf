"""Tools for the SQS tests, importable by worker subprocesses.

Every side effect is a row in a PostgreSQL table of the test's own, with no unique
constraint: a tool that ran twice for one key leaves two rows.
"""

from __future__ import annotations

import os
import queue
import time
from collections import Counter
from typing import Any

import psycopg
from pydantic import BaseModel

from intentq import Registry, ToolContext, TransientError

EFFECTS_DSN_ENV = "SQS_TEST_EFFECTS_DSN"
EFFECTS_TABLE_ENV = "SQS_TEST_EFFECTS_TABLE"


def libpq_dsn(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://...`` -> ``postgresql://...`` for psycopg itself."""
    scheme, _, rest = sqlalchemy_url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else sqlalchemy_url


class Effects:
    """Rows of ``(tool, key, phase, pid, attempt, info)``; phases ``start`` and ``done``."""

    def __init__(self, dsn: str, table: str) -> None:
        self.dsn = libpq_dsn(dsn)
        self.table = table
        self._idle: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
        self._all: list[psycopg.Connection[Any]] = []

    @classmethod
    def from_env(cls) -> Effects:
        return cls(os.environ[EFFECTS_DSN_ENV], os.environ[EFFECTS_TABLE_ENV])

    def env(self) -> dict[str, str]:
        return {EFFECTS_DSN_ENV: self.dsn, EFFECTS_TABLE_ENV: self.table}

    def create(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE {self.table} (id bigserial PRIMARY KEY, tool text, key text,"
                " phase text, pid int, attempt int, info text, at timestamptz DEFAULT now())"
            )

    def drop(self) -> None:
        self.close()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {self.table}")

    def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()

    def _conn(self) -> psycopg.Connection[Any]:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            conn = psycopg.connect(self.dsn, autocommit=True)
            self._all.append(conn)
            return conn

    def record(self, ctx: ToolContext, phase: str, info: str = "") -> None:
        conn = self._conn()
        try:
            conn.execute(
                f"INSERT INTO {self.table} (tool, key, phase, pid, attempt, info)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (ctx.tool, ctx.key, phase, os.getpid(), ctx.attempt, info),
            )
        finally:
            self._idle.put(conn)

    def rows(self, phase: str = "done") -> list[tuple[str, str, int, int, str]]:
        """``(tool, key, pid, attempt, info)`` of one phase, in insertion order."""
        conn = self._conn()
        try:
            cur = conn.execute(
                f"SELECT tool, key, pid, attempt, info FROM {self.table} WHERE phase = %s"
                " ORDER BY id",
                (phase,),
            )
            return list(cur.fetchall())
        finally:
            self._idle.put(conn)

    def counts(self, phase: str = "done") -> Counter[str]:
        """How many times each key reached ``phase``."""
        return Counter(key for _, key, _, _, _ in self.rows(phase))


class Booking(BaseModel):
    slot: str
    n: int = 0


class Sleep(BaseModel):
    seconds: float
    n: int = 0


class Step(BaseModel):
    group: str
    seq: int
    flaky: bool = False


def build_registry(effects: Effects) -> Registry:
    """``book`` (a quick side effect), ``sleep`` (a slow one), ``step`` (FIFO order)."""
    registry = Registry()

    @registry.tool("book", args=Booking)
    def book(args: Booking, ctx: ToolContext) -> dict[str, Any]:
        effects.record(ctx, "done", args.slot)
        return {"slot": args.slot}

    @registry.tool("sleep", args=Sleep)
    def sleep(args: Sleep, ctx: ToolContext) -> float:
        effects.record(ctx, "start")
        time.sleep(args.seconds)
        effects.record(ctx, "done")
        return args.seconds

    @registry.tool("step", args=Step)
    def step(args: Step, ctx: ToolContext) -> int:
        # A flaky step fails once: its group must wait for the retry, in order.
        if args.flaky and ctx.attempt == 1:
            effects.record(ctx, "failed", f"{args.group}:{args.seq}")
            raise TransientError("first attempt fails")
        effects.record(ctx, "done", f"{args.group}:{args.seq}")
        return args.seq

    return registry


def env_registry() -> Registry:
    """The registry a worker subprocess serves, its effects table named by the environment."""
    return build_registry(Effects.from_env())
