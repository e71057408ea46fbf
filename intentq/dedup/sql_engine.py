"""Engines for the SQL store: SQLite set up for many processes, and driver errors translated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc

from intentq.config.redact import redacted
from intentq.errors import DedupError, StoreUnavailable

# Seconds a connection attempt may take before the store counts as unreachable.
CONNECT_TIMEOUT = 5
# Milliseconds an SQLite writer waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option naming how an SQLite transaction begins: IMMEDIATE (the default) or
# DEFERRED for read-only work, which then never waits for a writer.
SQLITE_BEGIN = "intentq_sqlite_begin"
_SQLITE_READY = "_intentq_sqlite_ready"


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for ``postgresql+psycopg://`` or ``sqlite:///`` URLs, pre-pinging its pool."""
    options.setdefault("pool_pre_ping", True)
    connect_args = dict(options.pop("connect_args", {}))
    if url.startswith("postgresql"):
        connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT)
    try:
        engine = create_engine(url, connect_args=connect_args, **options)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
        raise DedupError(f"cannot use SQL store URL {redacted(url)!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        prepare_sqlite(engine)
    return engine


def prepare_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for transactions (idempotent).

    IMMEDIATE takes the write lock when a transaction starts: a deferred transaction that
    read first would fail, not wait, when another process wrote in between.
    """
    if getattr(engine, _SQLITE_READY, False):
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions itself; the "begin" hook below does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        connection.exec_driver_sql("BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE")

    setattr(engine, _SQLITE_READY, True)
    # Connections opened before the hooks were installed would miss them.
    engine.dispose()


def _missing_table(exc: sa_exc.DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "42P01" or "no such table" in str(exc.orig)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """An unreachable database -> ``StoreUnavailable``; other driver errors -> ``DedupError``."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        if _missing_table(exc):
            raise DedupError(
                f"{what}: the dedup table does not exist; create it with "
                "store.create_schema() or `intentq init`"
            ) from exc
        if exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        ):
            raise StoreUnavailable(f"{what}: SQL store unavailable: {exc.orig}") from exc
        raise DedupError(f"{what}: SQL store error: {exc.orig}") from exc
    except (sa_exc.TimeoutError, sa_exc.DisconnectionError) as exc:
        raise StoreUnavailable(f"{what}: SQL store unavailable: {exc}") from exc
