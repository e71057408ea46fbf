"""Dead letters in a SQL table (SQLAlchemy 2 Core): PostgreSQL via psycopg 3, or SQLite."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection, Engine, RowMapping

from intentq.config.redact import redacted
from intentq.dedup.sql.engine import ProcessPools
from intentq.dlq.base import (
    AGE_WINDOWS,
    OLDER,
    DeadLetter,
    DeadLetterStore,
    LetterFilter,
    Letters,
    LetterStats,
    Page,
    Reason,
)
from intentq.dlq.sql_schema import DEFAULT_TABLE, dead_letter_table
from intentq.errors import DLQError, DLQUnavailable, LetterNotFound
from intentq.intent import new_intent_id

if TYPE_CHECKING:
    from intentq.migrations import Target

# Letters a purge deletes per transaction: a batch's ids are all it holds in memory, and
# stopping anywhere loses at most the batch under way (its transaction rolls back).
PURGE_BATCH = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cursor_of(dead_at: datetime, letter_id: str) -> str:
    """A page's cursor: ``MICROSECONDS:ID``, the last letter's ``(dead_at, id)``."""
    micros = (dead_at.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}:{letter_id}"


def parse_cursor(cursor: str) -> tuple[datetime, str]:
    """``(dead_at, id)`` from ``cursor_of``; ``DLQError`` for anything else (an id alone, as
    intentq before revision 2 of the table gave, is not a cursor any more)."""
    micros, sep, letter_id = cursor.partition(":")
    if not sep or not letter_id or not micros.lstrip("-").isdigit():
        raise DLQError(f"not a cursor of the SQL DLQ: {cursor!r}")
    return _EPOCH + timedelta(microseconds=int(micros)), letter_id


def _storable(value: Any) -> Any:
    """Text a database column takes: PostgreSQL refuses NUL and every driver refuses lone
    surrogates, and a letter must be written whatever its message held (the body is bytes
    and is kept exactly)."""
    if not isinstance(value, str):
        return value
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


class SqlDeadLetterStore(DeadLetterStore):
    """A queryable table; filters and pagination run in SQL. See docs for the DDL."""

    def __init__(
        self, engine: Engine, table_name: str = DEFAULT_TABLE, *, owns_engine: bool = False
    ) -> None:
        self.engine = engine
        self.table = dead_letter_table(table_name)
        self._owns_engine = owns_engine
        # A forked child gets a pool of its own: the parent's connections stay the parent's.
        self._pools = ProcessPools([engine])

    @classmethod
    def from_url(cls, url: str, table_name: str = DEFAULT_TABLE) -> SqlDeadLetterStore:
        """Open an engine for ``url``; the store disposes of it on ``close``."""
        options: dict[str, Any] = {"pool_pre_ping": True}
        if url.lower().startswith("sqlite"):
            # Workers of several processes write one file: wait for the lock, not fail.
            options = {"connect_args": {"timeout": 30.0}}
        try:
            engine = sa.create_engine(url, **options)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise DLQError(f"cannot open DLQ {redacted(url)!r}: {exc}") from exc
        return cls(engine, table_name, owns_engine=True)

    # -- plumbing ----------------------------------------------------------------------------

    @staticmethod
    def _why(exc: sa.exc.DBAPIError) -> str:
        return " ".join(str(exc.orig).split())  # drivers' messages span lines: keep one

    @contextmanager
    def _conn(self, write: bool = False) -> Iterator[Connection]:
        """A connection (in a transaction when ``write``); driver errors become DLQ errors."""
        self._pools.for_this_process()
        try:
            with self.engine.begin() if write else self.engine.connect() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if "no such table" in self._why(exc):
                raise self._no_table(exc) from exc
            raise DLQUnavailable(f"DLQ database unavailable: {self._why(exc)}") from exc
        except sa.exc.ProgrammingError as exc:
            if "does not exist" in self._why(exc):
                raise self._no_table(exc) from exc
            raise DLQError(f"DLQ query failed: {self._why(exc)}") from exc
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise DLQUnavailable(f"DLQ database connection lost: {self._why(exc)}") from exc
            raise DLQError(f"DLQ query failed: {self._why(exc)}") from exc
        except sa.exc.SQLAlchemyError as exc:
            raise DLQError(f"DLQ query failed: {exc}") from exc

    def _no_table(self, exc: sa.exc.DBAPIError) -> DLQError:
        return DLQError(
            f"DLQ table {self.table.name!r} does not exist: run `intentq init` "
            f"(or create_schema()) first ({self._why(exc)})"
        )

    def _where(self, f: LetterFilter | None, cursor: str | None) -> list[ColumnElement[bool]]:
        c = self.table.c
        out: list[ColumnElement[bool]] = []
        if cursor is not None:
            # After (dead_at, id): a range on the index's dead_at, ties on it broken by id.
            # Written out rather than as a row comparison, which SQLite plans less well.
            dead_at, last_id = parse_cursor(cursor)
            out.append(c.dead_at >= dead_at)
            out.append(sa.or_(c.dead_at > dead_at, c.id > last_id))
        if f is None:
            return out
        if f.ids:
            out.append(c.id.in_(f.ids))
        if f.tool is not None:
            out.append(c.tool == f.tool)
        if f.reason is not None:
            out.append(c.reason == str(f.reason))
        if f.error_type is not None:
            out.append(c.error_type == f.error_type)
        if f.since is not None:
            out.append(c.dead_at >= f.since)
        if f.until is not None:
            out.append(c.dead_at < f.until)
        if f.not_replayed_since is not None:
            fence = f.not_replayed_since
            out.append(sa.or_(c.last_replayed_at.is_(None), c.last_replayed_at < fence))
        return out

    def page_query(self, f: LetterFilter | None, cursor: str | None, limit: int) -> sa.Select[Any]:
        """The SELECT behind ``list`` (and a tool's EXPLAIN): matching letters after
        ``cursor``, oldest first, one range of one index."""
        c = self.table.c
        return (
            sa.select(self.table)
            .where(*self._where(f, cursor))
            .order_by(c.dead_at, c.id)
            .limit(limit)
        )

    def _upsert(self, values: dict[str, Any]) -> sa.Executable:
        """One INSERT; the same id again (a letter copied from another store) replaces it."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pg = pg_insert(self.table).values(**values)
            return pg.on_conflict_do_update(index_elements=["id"], set_=values)
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            lite = sqlite_insert(self.table).values(**values)
            return lite.on_conflict_do_update(index_elements=["id"], set_=values)
        return self.table.insert().values(**values)

    @staticmethod
    def _letter(row: RowMapping) -> DeadLetter:
        values = dict(row)
        values["body"] = bytes(values["body"])
        values["reason"] = Reason(values["reason"])
        return DeadLetter(**values)

    # -- the contract ------------------------------------------------------------------------

    def put(self, letter: DeadLetter) -> str:
        letter_id = letter.id or new_intent_id()
        now = datetime.now(UTC)
        values = {k: _storable(v) for k, v in asdict(letter).items()}
        values.update(
            id=letter_id,
            body=bytes(letter.body),
            reason=str(letter.reason),
            dead_at=letter.dead_at or now,
            first_seen=letter.first_seen or letter.dead_at or now,
        )
        with self._conn(write=True) as conn:
            conn.execute(self._upsert(values))
        return letter_id

    def list(
        self, filter: LetterFilter | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page:
        query = self.page_query(filter, cursor, limit + 1)  # one more: is there another page?
        with self._conn() as conn:
            rows = conn.execute(query).mappings().all()
        letters = [self._letter(r) for r in rows[:limit]]
        last = letters[-1] if len(rows) > limit and letters else None
        return Page(letters, cursor_of(last.dead_at, last.id) if last and last.dead_at else None)

    def get(self, letter_id: str) -> DeadLetter:
        with self._conn() as conn:
            row = (
                conn.execute(sa.select(self.table).where(self.table.c.id == letter_id))
                .mappings()
                .first()
            )
        if row is None:
            raise LetterNotFound(letter_id)
        return self._letter(row)

    def count(self, filter: LetterFilter | None = None) -> int:
        with self._conn() as conn:
            return int(conn.execute(self.count_query(filter)).scalar_one())

    def count_query(self, filter: LetterFilter | None) -> sa.Select[Any]:
        """The SELECT behind ``count``: a range of the filter's index, read alone."""
        return sa.select(sa.func.count()).select_from(self.table).where(*self._where(filter, None))

    def delete(self, letter_id: str) -> bool:
        with self._conn(write=True) as conn:
            result = conn.execute(self.table.delete().where(self.table.c.id == letter_id))
        return bool(result.rowcount)

    def delete_many(self, filter: LetterFilter | None = None) -> int:
        with self._conn(write=True) as conn:
            result = conn.execute(self.table.delete().where(*self._where(filter, None)))
        return int(result.rowcount)

    def delete_in_batches(
        self, filter: LetterFilter | None = None, size: int = PURGE_BATCH
    ) -> Iterator[int]:
        """Delete matching letters ``size`` at a time, oldest first, one transaction each.

        Each batch is the next index range after the previous one's last ``(dead_at, id)``:
        no batch walks over the entries of letters already deleted, and memory holds one
        batch's ids. A run stopped anywhere has deleted whole batches; running it again
        finds only the letters left.
        """
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        c = self.table.c
        cursor: str | None = None
        while True:
            keys = sa.select(c.id, c.dead_at).where(*self._where(filter, cursor))
            keys = keys.order_by(c.dead_at, c.id).limit(size)
            with self._conn(write=True) as conn:
                batch = conn.execute(keys).all()
                if not batch:
                    return
                ids = [row.id for row in batch]
                deleted = conn.execute(self.table.delete().where(c.id.in_(ids))).rowcount
            yield int(deleted)
            if len(batch) < size:
                return
            cursor = cursor_of(batch[-1].dead_at, batch[-1].id)

    def stats(self, filter: LetterFilter | None = None, now: datetime | None = None) -> LetterStats:
        """One aggregate query: letters grouped by tool, reason and age window, with their
        count and first and last ``dead_at``. The indexes hold all four columns, so a
        database that can answers from an index alone (PostgreSQL's index-only scan)."""
        stats = LetterStats()
        with self._conn() as conn:
            for tool, reason, age, n, oldest, newest in conn.execute(self.stats_query(filter, now)):
                stats.add(tool, str(reason), str(age), int(n), oldest, newest)
        return stats

    def stats_query(self, filter: LetterFilter | None, now: datetime | None) -> sa.Select[Any]:
        """The aggregate behind ``stats``: (tool, reason, age window, count, min, max)."""
        now = now or datetime.now(UTC)
        c = self.table.c
        window = sa.case(
            *((c.dead_at >= now - span, sa.literal(label)) for label, span in AGE_WINDOWS),
            else_=sa.literal(OLDER),
        ).label("age_window")
        query: sa.Select[Any] = (
            sa.select(
                c.tool, c.reason, window,
                sa.func.count().label("n"), sa.func.min(c.dead_at), sa.func.max(c.dead_at),
            )
            .where(*self._where(filter, None))
            # The window by its name: PostgreSQL would take the CASE's parameters, bound
            # again in GROUP BY, for another expression.
            .group_by(c.tool, c.reason, sa.literal_column("age_window"))
        )  # fmt: skip
        return query

    def mark_replayed(self, letter_id: str) -> DeadLetter:
        c = self.table.c
        query = (
            self.table.update()
            .where(c.id == letter_id)
            .values(replay_count=c.replay_count + 1, last_replayed_at=datetime.now(UTC))
            .returning(*c)
        )
        with self._conn(write=True) as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise LetterNotFound(letter_id)
        return self._letter(row)

    def ending_in(self, suffixes: Collection[str]) -> dict[str, Letters]:
        """For each suffix, the letters whose id ends in it: ``id LIKE '%suffix'`` with the
        suffix's own ``%`` and ``_`` escaped, so no body is read that does not match."""
        found: dict[str, Letters] = {}
        with self._conn() as conn:
            for suffix in suffixes:
                query = (
                    sa.select(self.table)
                    .where(self.table.c.id.endswith(suffix, autoescape=True))
                    .order_by(self.table.c.dead_at, self.table.c.id)
                )
                found[suffix] = [self._letter(r) for r in conn.execute(query).mappings()]
        return found

    @property
    def schema_target(self) -> Target:
        """The table as ``intentq.migrations`` sees it: family, engine, name."""
        from intentq.migrations import DLQ, Target

        return Target(DLQ, self.engine, self.table.name)

    def create_schema(self) -> None:
        """Create the table, or upgrade it to this code's revision (Alembic, with a version
        table of its own); a table intentq 0.1 made is adopted with its letters, and gets
        any index it lacks. Workers starting together take turns."""
        from intentq.migrations import upgrade

        self._pools.for_this_process()
        upgrade(self.schema_target)

    def check_schema(self) -> None:
        """``SchemaMismatch`` unless the table is at the revision this code needs, or at a
        newer one that declares this code compatible; reads the version table only."""
        from intentq.migrations import check

        self._pools.for_this_process()
        check(self.schema_target)

    def drop_schema(self) -> None:
        """Drop the table and its version table (tests and tooling)."""
        version = sa.Table(self.schema_target.version_table, sa.MetaData())
        with self._conn(write=True) as conn:
            self.table.drop(conn, checkfirst=True)
            version.drop(conn, checkfirst=True)

    def close(self) -> None:
        if self._owns_engine:
            self._pools.for_this_process()  # in a forked child, never close the parent's
            self.engine.dispose()
