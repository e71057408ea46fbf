"""Apply, report and print a table's revisions: the one place Alembic is driven from.

Alembic runs from code, configured here (no ``alembic.ini``): the family's script
directory, the table's name and its version table go in through ``config.attributes``.
Upgrades from several processes at once take turns: on PostgreSQL under an advisory lock
named after the table, on SQLite under the database's write lock (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from intentq.errors import SchemaMismatch, SchemaTooNew
from intentq.migrations.versions import Family, Version, problem

# An upgrade whose ALTER gave up waiting for its lock (online.LOCK_TIMEOUT) tries again this
# many times, a little later each time, before it reports the failure.
LOCK_ATTEMPTS = 5
LOCK_RETRY_DELAY = 1.0
# SQLSTATE lock_not_available: an ALTER's lock_timeout ran out.
LOCK_NOT_AVAILABLE = "55P03"
# Milliseconds an SQLite upgrade waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_MS = 60_000
# Seconds between tries for the PostgreSQL advisory lock another upgrade holds.
ADVISORY_LOCK_POLL = 0.05


@dataclass(frozen=True)
class Target:
    """One table to migrate: its family, the engine it lives on and its configured name."""

    family: Family
    engine: Engine
    table: str

    @property
    def version_table(self) -> str:
        return self.family.version_table(self.table)

    @property
    def what(self) -> str:
        return f"{self.family.what} {self.table!r}"


@dataclass(frozen=True)
class Step:
    """One revision an upgrade applies: its id, number and what it does (one line)."""

    revision: str
    number: int
    doc: str


@dataclass(frozen=True)
class Status:
    """Where a table is: the version found, and what an upgrade would apply.

    ``legacy``: the table exists without a version table, made by intentq 0.1; an upgrade
    adopts it as revision 1, its rows untouched, then applies the rest.
    """

    what: str
    found: Version | None
    exists: bool
    legacy: bool
    needs: int
    head: int
    pending: tuple[Step, ...]

    @property
    def problem(self) -> SchemaMismatch | None:
        """Why this code cannot run on the table as it is (``None``: it can)."""
        return problem(self.what, self.found, self.needs)

    @property
    def found_text(self) -> str:
        if self.legacy:
            return "0.1 (no version table)"
        return "none" if self.found is None else str(self.found)

    @property
    def state(self) -> str:
        """``current``, ``behind``, ``absent``, ``newer`` (usable) or ``too new``."""
        if isinstance(self.problem, SchemaTooNew):
            return "too new"
        if self.found is None:
            return "behind" if self.legacy else "absent"
        if self.found.number < self.needs:
            return "behind"
        return "newer" if self.found.number > self.head else "current"

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.what,
            "found": self.found_text,
            "needs": str(self.needs),
            "state": self.state,
            "pending": [
                {"revision": s.revision, "version": s.number, "doc": s.doc} for s in self.pending
            ],
        }


@dataclass(frozen=True)
class Applied:
    """What ``upgrade`` found and the revisions it applied."""

    before: Status
    steps: tuple[Step, ...]


# -- the script directories ------------------------------------------------------------------


@functools.cache
def _script(family: Family) -> Any:
    """The family's ``ScriptDirectory``, read once per process."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(family.script_location)


def _config(target: Target, connection: Connection | None, **attributes: Any) -> Any:
    from alembic.config import Config

    config = Config(output_buffer=attributes.pop("output_buffer", None))
    config.set_main_option("script_location", target.family.script_location)
    config.attributes.update(
        connection=connection,
        table_name=target.table,
        version_table=target.version_table,
        dialect=target.engine.dialect.name,
        **attributes,
    )
    return config


def steps(family: Family, after: Version | None) -> tuple[Step, ...]:
    """The revisions from ``after`` (exclusive; ``None``: from nothing) to the head, oldest
    first; none if ``after`` is not one of this code's revisions (a newer one)."""
    script = _script(family)
    if after is not None and after.revision not in {r.revision for r in script.walk_revisions()}:
        return ()
    revisions = script.iterate_revisions("head", after.revision if after else "base")
    return tuple(
        Step(r.revision, _version(r.revision).number, (r.doc or "").strip().splitlines()[0])
        for r in reversed(list(revisions))
    )


def _version(revision: str) -> Version:
    version = Version.parse(revision)
    if version is None:
        raise ValueError(f"revision id {revision!r} is not NNNN_compat_MMMM")
    return version


def head(family: Family) -> Version:
    """The newest revision this code ships."""
    return _version(_script(family).get_current_head())


# -- reading where a table is ----------------------------------------------------------------


def _status(conn: Connection, target: Target) -> tuple[Status, bool]:
    """The table's status, and whether its version table exists."""
    family = target.family
    inspector = inspect(conn)
    exists = inspector.has_table(target.table)
    versioned = inspector.has_table(target.version_table)
    found: Version | None = None
    if versioned and exists:
        quoted = conn.dialect.identifier_preparer.quote(target.version_table)
        ids = conn.execute(text(f"SELECT version_num FROM {quoted}")).scalars().all()
        parsed = [Version.parse(str(i)) for i in ids]
        if None in parsed:
            raise family.failed(
                f"the {target.what} has a version table {target.version_table!r} holding "
                f"{list(ids)!r}, not intentq revisions"
            )
        found = max((v for v in parsed if v is not None), default=None)
    legacy = exists and not versioned
    # At or past this code's revision: nothing to apply, and no need to load Alembic (a
    # worker's start-up check stays a single read).
    pending = () if found is not None and found.number >= family.needs else steps(family, found)
    status = Status(target.what, found, exists, legacy, family.needs, family.needs, pending)
    return status, versioned


def status(target: Target) -> Status:
    """Where the table is; changes nothing."""
    with _translated(target), target.engine.connect() as conn:
        return _status(conn, target)[0]


def check(target: Target) -> None:
    """``SchemaMismatch`` if this code cannot run on the table: missing, older than it needs,
    or newer and not usable by it (``SchemaTooNew``). A newer compatible revision passes."""
    found = status(target).problem
    if found is not None:
        raise found


# -- changing it -----------------------------------------------------------------------------


def upgrade(target: Target, revision: str = "head") -> Applied:
    """Create the table, or bring it to this code's head (or to ``revision``); safe from many
    processes at once.

    A table intentq 0.1 made (no version table) is adopted as revision 1 with its rows. A
    version table whose table was dropped starts again from nothing. A table at a newer
    revision is left alone if this code can use it, else ``SchemaTooNew``.
    """
    last = target.family.needs if revision == "head" else _version(revision).number
    with _locked(target) as conn:
        before, versioned = _status(conn, target)
        # PostgreSQL: end the transaction the reads began, or Alembic would take it for the
        # caller's and run every revision in it (and the lock's rollback would undo them).
        _commit_unless_held(conn)
        too_new = before.problem
        if isinstance(too_new, SchemaTooNew):
            raise too_new
        pending = tuple(step for step in before.pending if step.number <= last)
        if not pending:
            return Applied(before, ())
        if versioned and not before.exists:
            # The table went (dropped by hand) and left its version: begin again.
            quoted = conn.dialect.identifier_preparer.quote(target.version_table)
            conn.execute(text(f"DELETE FROM {quoted}"))
            _commit_unless_held(conn)
        config = _config(target, conn)
        _retry_on_lock_timeout(conn, lambda: _command("upgrade", config, revision))
        return Applied(before, pending)


def offline_sql(target: Target) -> str:
    """The SQL ``upgrade`` would run, from the version the table is at, as text for a DBA
    (Alembic's offline mode); reads the version, changes nothing."""
    before = status(target)
    header = f"-- {target.what}: version {before.found_text}, this intentq needs {before.needs}"
    too_new = before.problem
    if isinstance(too_new, SchemaTooNew):
        return f"{header}\n-- {too_new}\n"
    if not before.pending:
        return f"{header}\n-- nothing to apply\n"
    buffer = io.StringIO()
    config = _config(target, None, output_buffer=buffer, adopt=before.legacy)
    start = before.found.revision if before.found is not None else None
    _command("upgrade", config, f"{start}:head" if start else "head", sql=True)
    return f"{header}\n{buffer.getvalue().rstrip()}\n"


def _command(name: str, config: Any, *args: Any, **kw: Any) -> None:
    from alembic import command

    getattr(command, name)(config, *args, **kw)


def _retry_on_lock_timeout(conn: Connection, run: Callable[[], None]) -> None:
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            run()
            return
        except sa_exc.OperationalError as exc:
            if _sqlstate(exc) != LOCK_NOT_AVAILABLE or attempt == LOCK_ATTEMPTS:
                raise
            conn.rollback()
            time.sleep(LOCK_RETRY_DELAY * attempt)


# -- connections, locks and errors -----------------------------------------------------------


def _sqlstate(exc: sa_exc.DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _lock_key(target: Target) -> int:
    """A stable signed 64-bit advisory-lock key for the table."""
    digest = sha256(f"intentq-migrate:{target.table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _locked(target: Target) -> Iterator[Connection]:
    """A connection that alone may migrate the table until the block ends."""
    with _translated(target):
        if target.engine.dialect.name == "postgresql":
            with target.engine.connect() as conn:
                key = _lock_key(target)
                # Wait by trying, holding no snapshot between tries: a session blocked in
                # pg_advisory_lock holds one, and a CREATE INDEX CONCURRENTLY in the holder's
                # upgrade waits for every older snapshot; the two would deadlock.
                while not conn.execute(select(func.pg_try_advisory_lock(key))).scalar():
                    conn.commit()
                    time.sleep(ADVISORY_LOCK_POLL)
                conn.commit()
                try:
                    yield conn
                finally:
                    if not conn.invalidated:
                        conn.rollback()
                        conn.execute(select(func.pg_advisory_unlock(key)))
                        conn.commit()
            return
        with _sqlite_engine(target.engine) as engine, engine.connect() as conn:
            conn.begin()  # BEGIN IMMEDIATE: the write lock, held to the end
            yield conn
            conn.commit()


def _commit_unless_held(conn: Connection) -> None:
    """Commit on PostgreSQL; on SQLite everything commits at the end, under the lock."""
    if conn.dialect.name == "postgresql":
        conn.commit()


@contextmanager
def _sqlite_engine(engine: Engine) -> Iterator[Engine]:
    """An engine whose transactions begin IMMEDIATE, on the same SQLite database.

    A database in memory lives in its engine's own connection: that engine, as it is.
    """
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
        yield engine
        return
    own = create_engine(engine.url, poolclass=NullPool)

    @event.listens_for(own, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions begin below, not in the driver
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")

    @event.listens_for(own, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        yield own
    finally:
        own.dispose()


@contextmanager
def _translated(target: Target) -> Iterator[None]:
    """Driver errors as the family's: unreachable -> ``unavailable``, else ``failed``."""
    family = target.family
    try:
        yield
    except sa_exc.DBAPIError as exc:
        why = " ".join(str(exc.orig).split())
        # A lock wait that timed out is a busy table, not an unreachable database.
        unreachable = exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
        if unreachable and _sqlstate(exc) != LOCK_NOT_AVAILABLE:
            raise family.unavailable(f"{target.what}: database unavailable: {why}") from exc
        raise family.failed(f"{target.what}: migration failed: {why}") from exc
    except (sa_exc.TimeoutError, sa_exc.DisconnectionError) as exc:
        raise family.unavailable(f"{target.what}: database unavailable: {exc}") from exc
