"""The SQL store's table and the database clock it reads."""

from __future__ import annotations

import re

from sqlalchemy import (
    Column,
    ColumnElement,
    Double,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    literal_column,
)
from sqlalchemy.engine import Dialect

from intentq.errors import ConfigError

DEFAULT_TABLE = "intentq_dedup"
# Leaves room for the index name suffix within PostgreSQL's 63-character identifiers.
TABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}\Z")
# 2440587.5 is julianday() of 1970-01-01T00:00:00Z. 'now' is fixed for one statement (one
# sqlite3_step) and has millisecond resolution.
SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def dedup_table(name: str = DEFAULT_TABLE, metadata: MetaData | None = None) -> Table:
    """One row per record, keyed by ``{prefix}:{tool}:{key}``; times are epoch seconds.

    The table as the newest revision in ``intentq/migrations/dedup`` leaves it: the
    migrations create it, this definition reads and writes it.
    """
    if not TABLE_NAME_RE.match(name):
        raise ConfigError(f"bad dedup table name {name!r}: use [A-Za-z_][A-Za-z0-9_]{{0,47}}")
    return Table(
        name,
        metadata if metadata is not None else MetaData(),
        Column("store_key", String(512), primary_key=True),
        Column("tool", String(64), nullable=False),
        Column("key", String(255), nullable=False),
        Column("state", String(16), nullable=False),
        Column("fingerprint", String(128), nullable=False),
        Column("token", String(64), nullable=False),
        Column("lease_until", Double, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("result", Text),
        Column("error", Text),
        Column("created_at", Double, nullable=False),
        Column("updated_at", Double, nullable=False),
        Column("expires_at", Double, nullable=False),
        # The record format the row was written in (codec.RECORD_FORMAT); NULL: by 0.1.
        # Added by revision 2, nullable so that adding it rewrites no row.
        Column("record_format", SmallInteger),
        # gc() finds expired rows by this index, in bounded batches.
        Index(f"ix_{name}_expires_at", "expires_at"),
    )


def db_now(dialect: Dialect) -> ColumnElement[float]:
    """The database's current time as float epoch seconds: never the worker's clock.

    Fixed for one statement, however often the statement reads it, and current for each
    statement of a long transaction.
    """
    if dialect.name == "postgresql":
        # statement_timestamp(), not now(): inside a long transaction now() is its start.
        # Not clock_timestamp() either: it moves within the statement, so each use would read
        # the clock again and a statement would need a one-row subquery to agree with itself.
        # date_part() is a double already (EXTRACT's numeric costs more).
        return func.date_part(literal_column("'epoch'"), func.statement_timestamp(), type_=Double)
    if dialect.name == "sqlite":
        if getattr(dialect.dbapi, "sqlite_version_info", (0,)) >= (3, 42, 0):
            return literal_column("unixepoch('subsec')", Double)
        return literal_column(SQLITE_NOW, Double)
    raise ConfigError(f"the SQL dedup store supports PostgreSQL and SQLite, not {dialect.name!r}")
