"""PostgreSQL's hot path: the store's statements compiled once and run on psycopg directly.

SQLAlchemy builds and compiles each statement once and still owns the pool, transactions
and error classes; a call then costs one execute on the driver's connection instead of a
pass through SQLAlchemy's execution machinery (which costs more than the statement itself).

On a pool of the store's own, a few connections stay checked out between calls, each with
its cursor, and are handed from call to call (see ``Driver.take``): a pool checkout and
checkin cost a busy worker about as much as the statement's own client side.

Batch claims use psycopg's pipeline mode: every entry's claim statement goes out before any
answer is read, one round trip for the batch. The server runs them in order in one implicit
transaction that ends at the batch's Sync. Entries run in key order, so workers claiming
overlapping batches lock rows in the same order and cannot deadlock; a later entry sees what
an earlier one wrote (the same key twice: Busy).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import ClauseElement

from intentq.dedup.base import Acquired, Claim, ClaimRequest
from intentq.dedup.sql_engine import translate
from intentq.dedup.sql_statements import claim_params, settle

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.pool import Pool, PoolProxiedConnection

    from intentq.dedup.sql import SqlDedupStore


class Compiled:
    """One statement's SQL text and the parameters bound at compile time, if any."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        # Bytes: psycopg would encode a str on every call, and hash the copy to find its
        # cached parse and prepared statement.
        self.sql = compiled.string.encode()
        # SQLAlchemy lists every parameter, None where the call supplies it.
        self.defaults = {k: v for k, v in compiled.params.items() if v is not None}

    def bind(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**self.defaults, **params} if self.defaults else params


class Held:
    """A pooled connection checked out for the driver, with the cursor its calls reuse."""

    __slots__ = ("connection", "cursor", "dispatch", "fairy", "record", "renew_at")

    def __init__(self, fairy: PoolProxiedConnection, renew_at: float) -> None:
        assert fairy.dbapi_connection is not None
        self.fairy = fairy
        self.connection: Any = fairy.dbapi_connection
        self.cursor: Any = self.connection.cursor()
        self.renew_at = renew_at  # monotonic time to hand it back for recycling
        # The events of the pool it came from, and its entry there, as listeners receive it.
        self.dispatch: Any = getattr(fairy, "_pool").dispatch  # noqa: B009
        self.record: Any = getattr(fairy, "_connection_record")  # noqa: B009


class Driver:
    """The PostgreSQL store's calls, each one statement on a pooled psycopg connection."""

    def __init__(self, store: SqlDedupStore) -> None:
        import psycopg

        statements, dialect = store.statements, store.engine.dialect
        assert statements.claim_first is not None
        self.claim_sql = Compiled(statements.claim_first, dialect)
        # Known once here: reading column names from every cursor costs more than the rows.
        self.claim_columns = tuple(c.name for c in statements.claim_first.selected_columns)
        self._token_at = self.claim_columns.index("token")
        self._attempts_at = self.claim_columns.index("attempts")
        self.takeover = Compiled(statements.claim_takeover, dialect)
        self.finish = Compiled(statements.finish, dialect)
        self.release = Compiled(statements.release, dialect)
        self.extend = Compiled(statements.extend, dialect)
        self.pipelines = psycopg.Pipeline.is_supported()
        self._error = psycopg.Error
        self._store = store
        # Calls on a pool shared with transactions switch autocommit on and off again.
        self._switch = not store.autocommit_pool
        pool = store.autocommit_engine.pool
        self._keep = _keepable(pool) if store.autocommit_pool else 0
        self._capacity = _capacity(pool)
        # pool_recycle: a kept connection goes back to the pool that often, to be recycled.
        recycle = float(getattr(pool, "_recycle", -1))
        self._lifetime = recycle if recycle >= 0 else None
        self._kept: list[Held] = []
        self._closed = False

    # -- connections -----------------------------------------------------------------------

    def take(self, what: str) -> Held:
        """A connection for one call: a kept one if any is free, else one from the pool.

        Reusing a kept connection fires the pool's checkout event (and keeping it, checkin),
        so pool listeners still see every call: the ping of a connection that sat idle (see
        ``ping_when_idle``), tracing.
        """
        kept = self._kept
        while True:
            try:
                held = kept.pop()
            except IndexError:
                return self._checkout(what)
            if self._lifetime is not None and time.monotonic() >= held.renew_at:
                held.fairy.close()  # back to the pool, which recycles it
                continue
            if held.dispatch.checkout:
                try:
                    held.dispatch.checkout(held.connection, held.record, held.fairy)
                except sa_exc.DisconnectionError as exc:
                    held.fairy.invalidate(exc)  # stale: try the next one, as the pool does
                    continue
            return held

    def _checkout(self, what: str) -> Held:
        try:
            fairy = self._store.autocommit_engine.raw_connection()
        except (self._error, sa_exc.SQLAlchemyError) as exc:
            self._raise(what, exc)
        renew_at = time.monotonic() + self._lifetime if self._lifetime is not None else 0.0
        held = Held(fairy, renew_at)
        if self._switch:
            held.connection.autocommit = True
        return held

    def give(self, held: Held) -> None:
        """Keep the connection for the next call, or return it to the pool.

        Not kept if the pool has nothing left to hand out: a caller may be waiting there
        for a connection, and only a returned one wakes it.
        """
        if len(self._kept) < self._keep and not self._closed and self._spare():
            if held.dispatch.checkin:
                held.dispatch.checkin(held.connection, held.record)
            self._kept.append(held)
            return
        if self._switch and not held.connection.closed:
            held.connection.autocommit = False
        held.fairy.close()

    def _spare(self) -> bool:
        """Whether the pool could still hand out a connection, this one kept."""
        if self._capacity is None:
            return True
        pool = self._store.autocommit_engine.pool
        return isinstance(pool, QueuePool) and pool.checkedout() < self._capacity

    def lost(self, held: Held, what: str, exc: BaseException) -> NoReturn:
        """A call failed on ``held``: drop the connection if it broke, then raise."""
        if not isinstance(exc, self._error):
            # Interrupted mid-protocol (KeyboardInterrupt, a bug): its state is unknown.
            held.fairy.invalidate(exc)
            raise exc
        connection = held.connection
        broken = bool(getattr(connection, "broken", False) or connection.closed)
        if broken:
            held.fairy.invalidate(exc)  # the pool must not hand this connection out again
            # A server restart broke the kept ones too, as a pool invalidates all its own.
            while self._kept:
                try:
                    self._kept.pop().fairy.invalidate(exc)
                except IndexError:
                    break
        else:
            self.give(held)  # autocommit: the failed statement left no transaction open
        self._raise(what, exc, invalidated=broken)

    def _raise(self, what: str, exc: BaseException, invalidated: bool = False) -> NoReturn:
        """The store's error for ``exc``, judged like any other SQLAlchemy error."""
        if isinstance(exc, self._error):
            wrapped = sa_exc.DBAPIError.instance(
                None, None, exc, self._error, connection_invalidated=invalidated
            )
            wrapped.__cause__ = exc
            exc = wrapped
        error = translate(what, exc)
        if error is None:
            raise exc
        raise error from exc

    def close(self) -> None:
        """Return the kept connections to the pool; later calls return theirs at once."""
        self._closed = True
        while self._kept:
            try:
                self._kept.pop().fairy.close()
            except IndexError:
                break

    # -- calls -----------------------------------------------------------------------------

    def execute(self, what: str, statement: Compiled, params: Mapping[str, Any]) -> list[Any]:
        """Run an owner-only UPDATE; the rows it returned, or one empty row per row changed."""
        held = self.take(what)
        try:
            cursor = held.cursor
            cursor.execute(statement.sql, statement.bind(params))
            if cursor.description is not None:
                rows = list(cursor.fetchall())
            else:
                rows = [()] * max(cursor.rowcount, 0)
        except BaseException as exc:
            self.lost(held, what, exc)
        self.give(held)
        return rows

    def claim(self, params: dict[str, Any]) -> Claim | None:
        """Insert or read, then take over if the record allows; ``None``: ask again.

        A new key, or one that another claim holds or finished, is one statement.
        """
        held = self.take("claim")
        try:
            cursor = held.cursor
            cursor.execute(self.claim_sql.sql, params)
            outcome = self._answer(cursor.fetchone(), params)
            if outcome is TAKEOVER:
                cursor.execute(self.takeover.sql, params)
                took = cursor.fetchone()  # (token, attempts), or None: another claim was first
                if took is None:
                    outcome = None
                else:
                    outcome = Acquired(took[0], int(took[1]), takeover=took[0] == params["taken"])
        except BaseException as exc:
            self.lost(held, "claim", exc)
        self.give(held)
        assert not isinstance(outcome, _Takeover)
        return outcome

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim | None]:
        """Claims in request order, pipelined; ``None`` where a claim must ask again alone
        (a concurrent claim won a race, or the record can be taken over)."""
        store = self._store
        params = [
            claim_params(
                store.record_key(r.tool, r.key),
                r.tool,
                r.key,
                r.fingerprint,
                r.lease,
                r.ttl,
                secrets.token_hex(16),
                secrets.token_hex(16),
            )
            for r in requests
        ]
        # sorted() is stable: the same key twice keeps its order in the batch.
        order = sorted(range(len(params)), key=lambda i: params[i]["sk"])
        answers: list[Claim | None] = [None] * len(params)
        held = self.take("claim_many")
        try:
            connection, sql = held.connection, self.claim_sql.sql
            with connection.pipeline():
                cursors = [(i, connection.execute(sql, params[i])) for i in order]
            for i, cursor in cursors:
                answer = self._answer(cursor.fetchone(), params[i])
                answers[i] = None if isinstance(answer, _Takeover) else answer
        except BaseException as exc:
            self.lost(held, "claim_many", exc)
        self.give(held)
        return answers

    def _answer(self, row: Any, params: Mapping[str, Any]) -> Claim | _Takeover | None:
        """What the claim statement's row means."""
        if row is None:
            return None  # a concurrent claim inserted the key after this one's snapshot
        if row[0] == "ins":  # a new record: its first attempt, with the fresh token
            return Acquired(row[self._token_at], int(row[self._attempts_at]))
        outcome = settle(dict(zip(self.claim_columns, row, strict=True)), params["fp"])
        return TAKEOVER if outcome is None else outcome


class _Takeover:
    """The record read may be taken over: the claim's second statement."""


TAKEOVER = _Takeover()


def _keepable(pool: Pool) -> int:
    """How many connections the driver keeps between calls: up to the pool's size, leaving
    the pool at least one for calls that go through SQLAlchemy (reads, gc).

    None unless the pool queues; none either if it pings before every checkout
    (``pool_pre_ping``): it asked for a ping per call, so every call checks out.
    """
    if not isinstance(pool, QueuePool) or getattr(pool, "_pre_ping", False):
        return 0
    capacity = _capacity(pool)
    keep = pool.size()
    return max(keep if capacity is None else min(keep, capacity - 1), 0)


def _capacity(pool: Pool) -> int | None:
    """How many connections a queue pool hands out at most (``None``: no bound)."""
    if not isinstance(pool, QueuePool):
        return None
    overflow = int(getattr(pool, "_max_overflow", -1))
    return None if overflow < 0 else pool.size() + overflow
