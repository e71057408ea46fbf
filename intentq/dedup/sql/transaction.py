"""Transactional completion: a tool's own rows and its completion record commit together."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session

from intentq.dedup.sql.engine import translated
from intentq.errors import DedupError, LeaseLost, StoreUnavailable

if TYPE_CHECKING:
    from sqlalchemy import CursorResult

    from intentq.dedup.sql.store import SqlDedupStore


class SqlCompletion:
    """The open transaction handed to a tool: ``session`` to write, ``complete`` to finish."""

    def __init__(
        self, store: SqlDedupStore, session: Session, tool: str, key: str, token: str, ttl: float
    ) -> None:
        self._store = store
        self._session = session
        self.tool, self.key, self.token, self.ttl = tool, key, token, ttl
        self.completed = False

    @property
    def session(self) -> Session:
        """The SQLAlchemy session on the store's engine; commit is the store's job."""
        return self._session

    def complete(self, result: Any) -> None:
        """The fenced completion UPDATE, in this transaction; ``LeaseLost`` if not the owner."""
        from intentq.dedup.sql.store import finish_params

        if self.completed:
            raise DedupError(f"{self.tool}:{self.key} is already completed in this transaction")
        if not self.token:
            raise LeaseLost(self.tool, self.key, self.token)
        params = {
            "sk": self._store.record_key(self.tool, self.key),
            "owner": self.token,
            **finish_params(result, self.ttl),
        }
        with translated("complete"):
            # Autoflush first sends the tool's pending rows, so they share the transaction.
            result = self._session.execute(self._store.statements.finish, params)
        matched = cast("CursorResult[Any]", result).rowcount
        if matched == 0:
            raise LeaseLost(self.tool, self.key, self.token)
        self.completed = True


def _connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    )


@contextmanager
def fenced_transaction(
    store: SqlDedupStore, tool: str, key: str, token: str, ttl: float
) -> Iterator[SqlCompletion]:
    """Commit on a clean exit after ``complete``; roll everything back otherwise."""
    session = Session(store.engine)
    try:
        completion = SqlCompletion(store, session, tool, key, token, ttl)
        yield completion
        if not completion.completed:
            raise DedupError(f"transaction for {tool}:{key} ended without complete(); rolled back")
        with translated("commit"):
            session.commit()
    except BaseException as exc:
        # The original error matters more than a failed rollback on a dead connection.
        with suppress(SQLAlchemyError):
            session.rollback()
        if _connection_lost(exc):
            # The tool wrote through the store's session: its connection is the store's, and
            # losing it is an outage to retry, not the tool's permanent failure.
            raise StoreUnavailable(f"{tool}:{key}: SQL store unavailable: {exc}") from exc
        raise
    finally:
        session.close()
