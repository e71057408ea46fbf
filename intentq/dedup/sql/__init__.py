"""The SQL store on SQLAlchemy 2: PostgreSQL in production, SQLite embedded.

``store`` is the store, ``schema`` its table, ``statements`` the SQL of each call, ``driver``
the path that runs them on a kept connection, ``engine`` the pools and error translation shared
with the SQL dead-letter store, ``transaction`` the transactional completion.
"""

from __future__ import annotations

from intentq.dedup.sql.store import SqlDedupStore
from intentq.dedup.sql.transaction import SqlCompletion

__all__ = ["SqlCompletion", "SqlDedupStore"]
