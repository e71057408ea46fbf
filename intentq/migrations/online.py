"""What a revision uses to change a PostgreSQL table that workers are busy with.

An ``ALTER TABLE`` needs the table's ACCESS EXCLUSIVE lock, if only for a moment; waiting for
it behind a long transaction would stop every worker queued behind the ALTER. So a revision
first sets a short ``lock_timeout`` (the runner tries again a few times) and only adds
nullable columns, which change the catalog and rewrite no row. Indexes on a table that
exists are built ``CONCURRENTLY``, outside any transaction; a back-fill, when one is needed,
updates bounded batches, each committed on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# How long an ALTER may wait for its lock before it gives up (and the runner tries again).
LOCK_TIMEOUT = "3s"


def short_lock_wait() -> None:
    """``SET LOCAL lock_timeout`` for this revision's transaction (PostgreSQL only)."""
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def index_sql(name: str, table: str, columns: Sequence[str], dialect: str) -> str:
    """``CREATE INDEX``: ``CONCURRENTLY`` on PostgreSQL; ``IF NOT EXISTS`` everywhere."""
    quote = op.get_context().impl.dialect.identifier_preparer.quote
    concurrently = " CONCURRENTLY" if dialect == "postgresql" else ""
    cols = ", ".join(quote(c) for c in columns)
    return f"CREATE INDEX{concurrently} IF NOT EXISTS {quote(name)} ON {quote(table)} ({cols})"


def create_index_concurrently(name: str, table: str, columns: Sequence[str]) -> None:
    """Build an index on a table in use without blocking its writers.

    PostgreSQL: in an autocommit block (``CONCURRENTLY`` refuses a transaction); an index a
    failed build left INVALID is dropped and built again, since ``IF NOT EXISTS`` would keep
    it. SQLite: a plain ``CREATE INDEX IF NOT EXISTS`` (one writer at a time anyway).
    """
    context = op.get_context()
    dialect = context.dialect.name
    if dialect != "postgresql":
        op.execute(index_sql(name, table, columns, dialect))
        return
    quote = context.impl.dialect.identifier_preparer.quote
    with context.autocommit_block():
        if not context.as_sql:
            from sqlalchemy import text

            bind = op.get_bind()
            valid = bind.execute(
                text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
                {"name": quote(name)},
            ).scalar()
            if valid is True:
                return
            if valid is False:
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(name)}")
        op.execute(index_sql(name, table, columns, dialect))


def drop_index_concurrently(name: str) -> None:
    """Drop an index (if it is there) without blocking the table's readers and writers:
    ``CONCURRENTLY`` in an autocommit block on PostgreSQL, a plain ``DROP`` on SQLite."""
    context = op.get_context()
    quote = context.impl.dialect.identifier_preparer.quote
    if context.dialect.name != "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {quote(name)}")
        return
    with context.autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(name)}")


def table_exists(table: str) -> bool:
    """Whether ``table`` is there already: asked of the database, or, when printing SQL, of
    what the runner found (``config.attributes["adopt"]``)."""
    context = op.get_context()
    if context.as_sql:
        config = context.config
        return bool(config is not None and config.attributes.get("adopt"))
    from sqlalchemy import inspect

    return inspect(op.get_bind()).has_table(table)
