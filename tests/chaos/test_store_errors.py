"""A transactional tool whose store connection drops mid-write is retried, never dead-lettered."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import text

from intentq import Registry, ToolContext
from intentq.dedup import open_store
from intentq.executor import Executor
from intentq.intent import Intent
from intentq.outcome import Delivery, RetryLater


def test_connection_dropped_inside_a_transactional_tool_is_a_store_outage(
    pg_url: str, unique: str
) -> None:
    table = f"chaos_tx_{unique}"
    dsn = "postgresql://" + pg_url.partition("://")[2]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {table} (key text)")
    registry = Registry()

    @registry.tool("write", transactional=True)
    def write(args: dict[str, Any], ctx: ToolContext) -> None:
        # The store's own connection dies under the tool (a failover, pg_terminate_backend).
        pid = ctx.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        ctx.session.execute(text(f"INSERT INTO {table} (key) VALUES (:k)"), {"k": ctx.key})

    store = open_store(pg_url, prefix=f"chaos-{unique}")
    try:
        store.create_schema()
        executor = Executor(registry, store)
        body = Intent.create("write", {}, key=f"k-{unique}").to_json()

        outcome = executor.process(body, Delivery("memory", "q", "m1"))

        # A lost store connection is transient: the intent is retried, not dead-lettered.
        assert isinstance(outcome, RetryLater), outcome
        assert outcome.spend_attempt
        with psycopg.connect(dsn, autocommit=True) as admin:
            assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    finally:
        store.close()
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP TABLE IF EXISTS {table}")
