"""The outbox's database as the relay and the operators' commands use it: an engine of their
own on the application's database, the table, and driver errors translated.

The application writes rows through its own session (``intentq.outbox.writing``); this is
for everyone who reads them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from intentq.config.redact import redacted
from intentq.errors import OutboxError, OutboxUnavailable
from intentq.outbox.table import lease_table, outbox_table

if TYPE_CHECKING:
    from intentq.migrations import Target

# Seconds a PostgreSQL connection attempt may take before the database counts as down.
CONNECT_TIMEOUT = 5
# Milliseconds an SQLite write waits for the application's writers.
SQLITE_BUSY_TIMEOUT_MS = 30_000


class OutboxDatabase:
    """The outbox table on its engine; ``close()`` disposes of an engine made here."""

    def __init__(self, engine: sa.Engine, table_name: str, *, owns_engine: bool = False) -> None:
        self.engine = engine
        self.table = outbox_table(table_name)
        self.lease = lease_table(table_name)
        self.dialect = engine.dialect.name
        self._owns_engine = owns_engine

    @classmethod
    def from_url(cls, url: str, table_name: str) -> OutboxDatabase:
        """An engine for ``postgresql+psycopg://`` or ``sqlite:///`` URLs, disposed by close."""
        options: dict[str, Any] = {}
        if url.lower().startswith("postgresql"):
            options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
            options["pool_pre_ping"] = True
        try:
            engine = sa.create_engine(url, **options)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
            raise OutboxError(f"cannot open the outbox database {redacted(url)!r}: {exc}") from exc
        if engine.dialect.name == "sqlite":
            _immediate_writes(engine)
        elif engine.dialect.name != "postgresql":
            raise OutboxError(f"the outbox runs on PostgreSQL or SQLite, not {engine.dialect.name}")
        return cls(engine, table_name, owns_engine=True)

    @property
    def schema_target(self) -> Target:
        """What ``intentq init`` migrates: the outbox family, on this engine."""
        from intentq.migrations import OUTBOX, Target

        return Target(OUTBOX, self.engine, self.table.name)

    def check_schema(self) -> None:
        """``SchemaMismatch`` unless the table is at a revision this code runs on."""
        from intentq.migrations import check

        check(self.schema_target)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection in a transaction (SQLite: ``BEGIN IMMEDIATE``), committed on exit."""
        with translated(self.table.name), self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


def _immediate_writes(engine: sa.Engine) -> None:
    """A busy timeout, and transactions that take SQLite's write lock when they begin (a
    deferred one that read first would fail, not wait, when the application wrote meanwhile).

    The journal mode is the application's to choose (WAL lets the relay read while it writes).
    """

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _why(exc: sa_exc.DBAPIError) -> str:
    return " ".join(str(exc.orig).split())


@contextmanager
def translated(table: str) -> Iterator[None]:
    """Driver errors as ``OutboxUnavailable`` (the database is out of reach) or
    ``OutboxError`` (a missing table says to run ``intentq init``)."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        why = _why(exc)
        if "no such table" in why or getattr(exc.orig, "sqlstate", None) == "42P01":
            raise OutboxError(
                f"the outbox table {table!r} does not exist: run `intentq init` ({why})"
            ) from exc
        if exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        ):
            raise OutboxUnavailable(f"outbox database unavailable: {why}") from exc
        raise OutboxError(f"outbox query failed: {why}") from exc
    except (sa_exc.TimeoutError, sa_exc.DisconnectionError) as exc:
        raise OutboxUnavailable(f"outbox database unavailable: {exc}") from exc
