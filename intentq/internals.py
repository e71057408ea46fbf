"""The private names of dependencies intentq uses, each allowed only on the versions it was
tested with; on any other version the public path runs instead.

- redis-py ``Connection._sock`` and ``redis._parsers``: the Redis store speaks ``EVALSHA`` on
  its connections' sockets (``dedup/redis/connections.py``); public path: ``Redis.evalsha``.
- SQLAlchemy's pool internals (``_pool``, ``_connection_record``, ``_recycle``,
  ``_pre_ping``, ``_max_overflow``): the SQL store keeps connections checked out between
  calls (``dedup/sql/engine.py``); public path: a pool checkout and checkin per call.

``bench/private_paths.py`` measures what each gains; the docs' development page lists them.
``pyproject.toml`` bounds both libraries above by the same versions.
"""

from __future__ import annotations

import os
from functools import cache
from importlib.metadata import PackageNotFoundError, version

# [lowest, first untested) release of each library, as (major, minor).
TESTED = {
    "redis": ((5, 0), (9, 0)),
    "sqlalchemy": ((2, 0), (2, 2)),
}
# Set to 1 to run the public path everywhere (for comparisons and for debugging).
PUBLIC_ONLY_ENV = "INTENTQ_PUBLIC_APIS_ONLY"


def _release(package: str) -> tuple[int, int] | None:
    try:
        parts = version(package).split(".")
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (PackageNotFoundError, IndexError, ValueError):
        return None


@cache
def private_path(package: str) -> bool:
    """Whether the private fast path for ``package`` may run on the installed version."""
    if os.environ.get(PUBLIC_ONLY_ENV, "") not in ("", "0"):
        return False
    release = _release(package)
    low, high = TESTED[package]
    return release is not None and low <= release < high
