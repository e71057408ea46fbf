"""The SQL store (SQLAlchemy 2 Core): PostgreSQL in production, SQLite embedded.

One row per record under a primary key, claimed by ``INSERT .. ON CONFLICT DO NOTHING`` and a
fenced conditional UPDATE; every time is the database's clock. Each call is one autocommit
statement (a claim that takes over an abandoned or expired record, two; on SQLite a claim of a
key that exists reads it in a second one). An SQLite statement that writes takes the write
lock as it starts, like ``BEGIN IMMEDIATE``, so processes sharing the file queue on it; a
batch, a transactional completion and the writing calls through SQLAlchemy begin IMMEDIATE,
while a read (``get``) begins DEFERRED and never waits for a writer.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, MetaData, Table

from intentq.dedup import codec
from intentq.dedup.base import (
    MIN_RETRY_AFTER,
    Busy,
    Claim,
    ClaimRequest,
    CompleteRequest,
    DedupStore,
    Record,
    State,
    store_key,
)
from intentq.dedup.sql.engine import (
    SQLITE_BEGIN,
    ProcessPools,
    make_engine,
    prepare_sqlite,
    translated,
)
from intentq.dedup.sql.schema import DEFAULT_TABLE, dedup_table
from intentq.dedup.sql.statements import GC_BATCH, Statements, acquired, claim_params, settle
from intentq.defaults import DEFAULT_LEASE, DEFAULT_TTL
from intentq.errors import ConfigError, LeaseLost

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from intentq.dedup.sql.driver import Driver, SqliteDriver
    from intentq.dedup.sql.transaction import SqlCompletion
    from intentq.migrations import Target

# A claim re-runs when a concurrent claim wrote between its read and its write; past this
# many rounds of contention it answers Busy rather than spin.
CLAIM_ROUNDS = 5


class SqlDedupStore(DedupStore):
    """Records in one table (``intentq_dedup`` by default); the engine is injected.

    ``autocommit_engine`` (PostgreSQL, optional) is an engine on the same database in
    ``AUTOCOMMIT`` mode for the store's own statements; without it they borrow ``engine``'s
    connections and switch them to autocommit for the call. From a pool of its own, the
    store keeps a few connections checked out between calls (see ``driver``) and
    returns them on ``close()``. A forked child leaves the connections it inherited alone and
    opens its own.
    """

    def __init__(
        self,
        engine: Engine,
        prefix: str = "intentq",
        table_name: str = DEFAULT_TABLE,
        *,
        gc_batch: int = GC_BATCH,
        autocommit_engine: Engine | None = None,
        owns_engine: bool = False,
    ) -> None:
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ConfigError(f"the SQL dedup store runs on PostgreSQL or SQLite, not {engine.url}")
        self.engine = engine
        self.prefix = prefix
        self.table = dedup_table(table_name)
        self._owns_engine = owns_engine
        self._pg = engine.dialect.name == "postgresql"
        if not self._pg:
            prepare_sqlite(engine)
        self.statements = Statements(self.table, engine.dialect, gc_batch)
        # PostgreSQL: each statement commits by itself, saving the BEGIN and COMMIT round trips.
        # SQLite: reads begin DEFERRED, so they never queue behind a writer.
        self._auto: Engine = engine
        self._reader: Engine = engine.execution_options(**{SQLITE_BEGIN: "DEFERRED"})
        self._own_auto = autocommit_engine
        if self._pg:
            self._auto = self._reader = autocommit_engine or engine.execution_options(
                isolation_level="AUTOCOMMIT"
            )
        # Pooled connections are held across calls: a forked child starts on pools of its own.
        self.pools = ProcessPools((engine, autocommit_engine))
        # psycopg 3 and sqlite3 run the hot path without SQLAlchemy's per-call execution
        # machinery (it costs more than the statements).
        self._driver: Driver | SqliteDriver | None = None
        if self._pg and engine.dialect.driver == "psycopg":
            from intentq.dedup.sql.driver import Driver

            self._driver = Driver(self)
        elif not self._pg and engine.dialect.driver == "pysqlite":
            from intentq.dedup.sql.driver import SqliteDriver

            # Only from an engine of its own: an injected one's pool is the caller's to size.
            self._driver = SqliteDriver(self, keep=owns_engine)

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str = "intentq",
        table_name: str = DEFAULT_TABLE,
        *,
        gc_batch: int = GC_BATCH,
        **engine_options: Any,
    ) -> SqlDedupStore:
        """A store on its own engines (disposed by ``close()``); options go to ``create_engine``.

        On PostgreSQL the store's own statements get a pool of autocommit connections of
        their own, so no connection switches modes on every call; transactional
        completions use the other pool.
        """
        engine = make_engine(url, **engine_options)
        auto = None
        if engine.dialect.name == "postgresql":
            options = {**engine_options, "isolation_level": "AUTOCOMMIT"}
            options.setdefault("pool_reset_on_return", None)  # nothing to roll back
            auto = make_engine(url, **options)
        return cls(
            engine,
            prefix,
            table_name,
            gc_batch=gc_batch,
            autocommit_engine=auto,
            owns_engine=True,
        )

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _connect(self, what: str, read_only: bool = False) -> Iterator[Connection]:
        """A connection for one call: autocommit on PostgreSQL, one transaction on SQLite."""
        self.pools.for_this_process()
        with translated(what), (self._reader if read_only else self._auto).connect() as conn:
            yield conn
            conn.commit()

    @property
    def autocommit_engine(self) -> Engine:
        """The engine the store's own statements run on (autocommit on PostgreSQL)."""
        return self._auto

    @property
    def autocommit_pool(self) -> bool:
        """True if ``autocommit_engine`` has a pool of its own, already in autocommit."""
        return self._own_auto is not None

    def record_key(self, tool: str, key: str) -> str:
        """The primary key of ``(tool, key)``'s row."""
        return store_key(self.prefix, tool, key)

    def _fenced(self, what: str, tool: str, key: str, token: str, **params: Any) -> Any:
        """Run the owner-only UPDATE ``what``; ``LeaseLost`` (with the record) if none matched."""
        rows: list[Any] = []
        if token:
            params.update(sk=self.record_key(tool, key), owner=token)
            statement = "finish" if what in ("complete", "fail") else what
            if self._driver is not None:
                rows = self._driver.execute(what, getattr(self._driver, statement), params)
            else:
                with self._connect(what) as conn:
                    result = conn.execute(getattr(self.statements, statement), params)
                    rows = list(result) if result.returns_rows else [()] * result.rowcount
        if not rows:
            # Read after the transaction closed: SQLite would wait on its own write lock.
            raise LeaseLost(tool, key, token, self.get(tool, key))
        return rows[0]

    # -- the contract --------------------------------------------------------------------

    def claim(
        self,
        tool: str,
        key: str,
        fingerprint: str,
        lease: float = DEFAULT_LEASE,
        ttl: float = DEFAULT_TTL,
    ) -> Claim:
        params = self._claim_params(tool, key, fingerprint, lease, ttl)
        if self._driver is not None:
            for _ in range(CLAIM_ROUNDS):
                outcome = self._driver.claim(params)
                if outcome is not None:
                    return outcome
            return Busy(MIN_RETRY_AFTER)
        with self._connect("claim") as conn:
            return self._claim(conn, params)

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """PostgreSQL: one pipelined round trip. SQLite: one transaction for the batch."""
        if not requests:
            return []
        if self._driver is not None and self._driver.batches:
            answers = self._driver.claim_many(requests)
            # An entry that lost a race to a concurrent claim asks again, alone.
            return [
                answer
                if answer is not None
                else self.claim(r.tool, r.key, r.fingerprint, r.lease, r.ttl)
                for answer, r in zip(answers, requests, strict=True)
            ]
        with self._connect("claim") as conn:
            return [
                self._claim(conn, self._claim_params(r.tool, r.key, r.fingerprint, r.lease, r.ttl))
                for r in requests
            ]

    def _claim_params(
        self, tool: str, key: str, fingerprint: str, lease: float, ttl: float
    ) -> dict[str, Any]:
        fresh, taken = secrets.token_hex(16), secrets.token_hex(16)
        return claim_params(
            self.record_key(tool, key), tool, key, fingerprint, lease, ttl, fresh, taken
        )

    def _claim(self, conn: Connection, params: dict[str, Any]) -> Claim:
        """A claim through SQLAlchemy (SQLite, or PostgreSQL on another driver)."""
        for _ in range(CLAIM_ROUNDS):
            outcome = self._claim_pg(conn, params) if self._pg else self._claim_sqlite(conn, params)
            if outcome is not None:
                return outcome
            # Next round in a new transaction (SQLite), seeing what the other writer committed.
            conn.commit()
        return Busy(MIN_RETRY_AFTER)

    def _claim_pg(self, conn: Connection, params: dict[str, Any]) -> Claim | None:
        assert self.statements.claim_first is not None
        row = conn.execute(self.statements.claim_first, params).mappings().first()
        if row is not None and row["src"] == "ins":
            return acquired(row, params["taken"])
        outcome = settle(row, params["fp"])
        if outcome is None and row is not None:
            # Expired, or its lease ran out: take it over, unless another claim was first.
            took = conn.execute(self.statements.claim_takeover, params).mappings().first()
            return None if took is None else acquired(took, params["taken"])
        return outcome

    def _claim_sqlite(self, conn: Connection, params: dict[str, Any]) -> Claim | None:
        for stmt in (self.statements.claim_insert, self.statements.claim_takeover):
            row = conn.execute(stmt, params).mappings().first()
            if row is not None:
                return acquired(row, params["taken"])
        row = conn.execute(self.statements.current, {"sk": params["sk"]}).mappings().first()
        return settle(row, params["fp"])

    def complete(
        self, tool: str, key: str, token: str, result: Any, ttl: float = DEFAULT_TTL
    ) -> None:
        self._fenced("complete", tool, key, token, **finish_params(result, ttl))

    def complete_many(self, requests: Sequence[CompleteRequest]) -> list[LeaseLost | None]:
        """PostgreSQL: one UPDATE for the batch (one round trip; a key given twice, two).
        SQLite: one transaction. Through SQLAlchemy's execution (another driver): one by one.
        """
        if not requests:
            return []
        if self._driver is None:
            return super().complete_many(requests)
        entries = [
            {
                **finish_params(r.result, r.ttl),
                "sk": self.record_key(r.tool, r.key),
                "owner": r.token,
            }
            for r in requests
        ]
        done = self._driver.complete_many(entries)
        # Read after the statement: SQLite would wait on its own write lock.
        return [
            None if ok else LeaseLost(r.tool, r.key, r.token, self.get(r.tool, r.key))
            for ok, r in zip(done, requests, strict=True)
        ]

    def fail(
        self, tool: str, key: str, token: str, error: dict[str, Any], ttl: float = DEFAULT_TTL
    ) -> None:
        params = {
            "new_state": State.FAILED.value,
            "new_result": None,
            "new_error": codec.dump(dict(error)),
            "ttl": float(ttl),
        }
        self._fenced("fail", tool, key, token, **params)

    def release(self, tool: str, key: str, token: str) -> None:
        self._fenced("release", tool, key, token)

    def extend(self, tool: str, key: str, token: str, lease: float = DEFAULT_LEASE) -> float:
        row = self._fenced("extend", tool, key, token, lease=float(lease))
        return float(row[0])

    def get(self, tool: str, key: str) -> Record | None:
        with self._connect("get", read_only=True) as conn:
            row = (
                conn.execute(self.statements.get, {"sk": self.record_key(tool, key)})
                .mappings()
                .first()
            )
        if row is None:
            return None
        codec.record_format(row["record_format"])  # 0.1's rows (NULL) read as they are
        return Record(
            tool=row["tool"],
            key=row["key"],
            state=State(row["state"]),
            fingerprint=row["fingerprint"],
            token=row["token"],
            lease_until=row["lease_until"],
            attempts=row["attempts"],
            result=codec.load(row["result"]),
            error=None if row["error"] is None else codec.load_error(row["error"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            expires_at=row["expires_at"],
        )

    def forget(self, tool: str, key: str) -> bool:
        with self._connect("forget") as conn:
            live = (
                conn.execute(self.statements.forget, {"sk": self.record_key(tool, key)})
                .scalars()
                .all()
            )
        return any(live)

    def reset(self, tool: str, key: str) -> bool:
        with self._connect("reset") as conn:
            return (
                conn.execute(self.statements.reset, {"sk": self.record_key(tool, key)}).rowcount > 0
            )

    def gc(self) -> int:
        """Delete expired rows, a bounded batch per statement; returns how many."""
        total = 0
        while True:
            with self._connect("gc") as conn:
                deleted = conn.execute(self.statements.gc).rowcount
            total += deleted
            if deleted < self.statements.gc_batch:
                return total

    @property
    def schema_target(self) -> Target:
        """The table as ``intentq.migrations`` sees it: family, engine, name."""
        from intentq.migrations import DEDUP, Target

        return Target(DEDUP, self.engine, self.table.name)

    def create_schema(self) -> None:
        """Create the table, or upgrade it to this code's revision (Alembic, with a version
        table of its own); a table intentq 0.1 made is adopted with its rows. Safe to run
        from many processes: they take turns."""
        from intentq.migrations import upgrade

        self.pools.for_this_process()
        upgrade(self.schema_target)

    def check_schema(self) -> None:
        """``SchemaMismatch`` unless the table is at the revision this code needs, or at a
        newer one that declares this code compatible; reads the version table only."""
        from intentq.migrations import check

        self.pools.for_this_process()
        check(self.schema_target)

    def drop_schema(self) -> None:
        """Drop the table and its version table (tests and ``intentq`` tooling)."""
        self.pools.for_this_process()
        version = Table(self.schema_target.version_table, MetaData())
        with translated("drop_schema"), self.engine.begin() as conn:
            self.table.drop(conn, checkfirst=True)
            version.drop(conn, checkfirst=True)

    def transaction(
        self, tool: str, key: str, token: str, ttl: float = DEFAULT_TTL
    ) -> AbstractContextManager[SqlCompletion]:
        """The tool's writes and the fenced completion, committed together or not at all.

        Yields a ``Completion``: write through ``.session``, then call ``.complete(result)``.
        A lost lease (``LeaseLost``), an exception, or a block that never completed rolls
        back everything, the tool's own rows included.
        """
        from intentq.dedup.sql.transaction import fenced_transaction

        self.pools.for_this_process()
        return fenced_transaction(self, tool, key, token, ttl)

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()  # the connections it keeps, before the pools go
        if self._owns_engine:
            self.pools.for_this_process()  # a forked child closes only its own
            self.engine.dispose()
            if self._own_auto is not None:
                self._own_auto.dispose()


def finish_params(result: Any, ttl: float) -> dict[str, Any]:
    """Parameters of the completion UPDATE."""
    return {
        "new_state": State.COMPLETED.value,
        "new_result": codec.dump(result),
        "new_error": None,
        "ttl": float(ttl),
    }
