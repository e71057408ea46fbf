"""The one place intentq opens what its settings name: the store, the DLQ and SQS clients.

Every worker, the command line, the producer and the demo go through these functions, so a
setting such as ``INTENTQ_SQS_ENDPOINT_URL`` reaches every client the same way. Backends and
drivers are imported only when a URL asks for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from intentq.config.redact import redacted
from intentq.errors import ConfigError
from intentq.extras import require

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from intentq.config.settings import Settings
    from intentq.dedup.base import DedupStore
    from intentq.dlq.base import DeadLetterStore
    from intentq.outbox.database import OutboxDatabase

__all__ = [
    "is_sqs_dlq",
    "open_dlq",
    "open_dlq_for",
    "open_outbox_for",
    "open_store",
    "open_store_for",
    "opened_dlq",
    "opened_store",
    "sqlite_file",
    "sqs_client_for",
]

_SQS_DLQ_SCHEMES = ("sqs", "sqs+http", "sqs+https")


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


# -- by URL ----------------------------------------------------------------------------------


def open_store(url: str, prefix: str = "intentq") -> DedupStore:
    """``memory://``, ``redis://``/``rediss://``, ``redis+cluster://`` (Redis Cluster),
    ``postgresql+psycopg://``, ``sqlite:///``."""
    scheme = _scheme(url)
    if scheme == "memory":
        from intentq.dedup.memory import MemoryDedupStore

        return MemoryDedupStore(prefix=prefix)
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        require("redis", "redis", "the Redis store")
        from intentq.dedup.redis import RedisDedupStore

        return RedisDedupStore.from_url(url, prefix=prefix)
    if scheme.startswith(("postgresql", "sqlite")):
        _require_sql_driver(scheme, "the PostgreSQL store")
        from intentq.dedup.sql import SqlDedupStore

        return SqlDedupStore.from_url(url, prefix=prefix)
    raise ConfigError(
        f"unsupported dedup store URL {redacted(url)!r}: use memory://, redis://, "
        "postgresql+psycopg://... or sqlite:///..."
    )


def open_dlq(url: str, **options: object) -> DeadLetterStore:
    """``memory://``, ``postgresql+psycopg://...``, ``sqlite:///...``, ``sqs://queue-name``.

    ``sqs://NAME`` (or an ``http(s)://`` queue URL after ``sqs+``) takes ``endpoint_url``,
    ``region``, ``client`` and the other keywords of ``SqsDeadLetterStore.from_url``; SQL URLs
    take ``table_name``.
    """
    scheme = _scheme(url)
    if scheme == "memory":
        from intentq.dlq.memory import MemoryDeadLetterStore

        return MemoryDeadLetterStore()
    if scheme.startswith(("postgresql", "sqlite")):
        _require_sql_driver(scheme, "the PostgreSQL dead-letter store")
        from intentq.dlq.sql import SqlDeadLetterStore

        return SqlDeadLetterStore.from_url(url, **options)  # type: ignore[arg-type]
    if scheme in _SQS_DLQ_SCHEMES:
        require("boto3", "sqs", "the SQS dead-letter queue")
        from intentq.dlq.sqs import SqsDeadLetterStore

        return SqsDeadLetterStore.from_url(url, **options)  # type: ignore[arg-type]
    raise ConfigError(
        f"unsupported DLQ URL {redacted(url)!r}: use memory://, postgresql+psycopg://..., "
        "sqlite:///... or sqs://queue-name"
    )


def _require_sql_driver(scheme: str, feature: str) -> None:
    # SQLite is in the standard library; PostgreSQL URLs name psycopg (3) by default.
    if scheme in ("postgresql", "postgresql+psycopg"):
        require("psycopg", "postgres", feature)


def is_sqs_dlq(url: str) -> bool:
    """Whether ``url`` names an SQS dead-letter queue rather than a table."""
    return _scheme(url) in _SQS_DLQ_SCHEMES


def sqlite_file(url: str) -> Path | None:
    """The database file a ``sqlite:///path`` URL names; None for any other URL, and for
    SQLite in memory or given as a ``file:`` URI."""
    if not url.lower().startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if not database or database == ":memory:" or parsed.query.get("uri"):
        return None
    return Path(database)


# -- from settings ---------------------------------------------------------------------------


def sqs_client_for(settings: Settings, max_connections: int = 10) -> SQSClient:
    """A boto3 SQS client for the settings' region and endpoint."""
    from intentq.sqs.client import new_client

    return new_client(
        region=settings.aws_region,
        endpoint_url=settings.sqs_endpoint_url or None,
        max_connections=max_connections,
    )


def open_store_for(settings: Settings, *, must_exist: bool = False) -> DedupStore:
    """The idempotency store ``INTENTQ_DEDUP_URL`` names.

    With ``must_exist``, a SQLite file that is not there is a ``ConfigError``: connecting
    would create an empty one, left behind by a command that only reads.
    """
    if must_exist:
        _must_exist(settings.dedup_url, "dedup store")
    return open_store(settings.dedup_url, settings.key_prefix)


def open_dlq_for(settings: Settings, *, must_exist: bool = False) -> DeadLetterStore:
    """The dead-letter store ``INTENTQ_DLQ_URL`` names; an SQS one gets a client of its own
    for the settings' endpoint and region, closed with it. ``must_exist`` as for
    ``open_store_for``."""
    if must_exist:
        _must_exist(settings.dlq_url, "dead-letter store")
    if is_sqs_dlq(settings.dlq_url):
        return open_dlq(
            settings.dlq_url,
            endpoint_url=settings.sqs_endpoint_url or None,
            region=settings.aws_region,
        )
    return open_dlq(settings.dlq_url)


def open_outbox_for(settings: Settings, *, must_exist: bool = False) -> OutboxDatabase:
    """The outbox table in the application's database ``INTENTQ_OUTBOX_URL`` names (for the
    relay and the operators' commands; applications write through their own session).
    ``ConfigError`` when it is not set; ``must_exist`` as for ``open_store_for``."""
    if not settings.outbox_url:
        raise ConfigError(
            "INTENTQ_OUTBOX_URL is not set: name the application's database that holds the "
            "outbox table (postgresql+psycopg://... or sqlite:///...)"
        )
    if must_exist:
        _must_exist(settings.outbox_url, "outbox database")
    scheme = _scheme(settings.outbox_url)
    if not scheme.startswith(("postgresql", "sqlite")):
        raise ConfigError(
            f"unsupported outbox URL {redacted(settings.outbox_url)!r}: use "
            "postgresql+psycopg://... or sqlite:///..."
        )
    _require_sql_driver(scheme, "the PostgreSQL outbox")
    from intentq.outbox.database import OutboxDatabase

    return OutboxDatabase.from_url(settings.outbox_url, settings.outbox_table)


@contextmanager
def opened_store(settings: Settings, *, create: bool = False) -> Iterator[DedupStore]:
    """``open_store_for``, closed on exit; a missing SQLite file is an error unless ``create``
    (``intentq init``)."""
    store = open_store_for(settings, must_exist=not create)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def opened_dlq(settings: Settings, *, create: bool = False) -> Iterator[DeadLetterStore]:
    """``open_dlq_for``, closed on exit; ``create`` as for ``opened_store``."""
    dlq = open_dlq_for(settings, must_exist=not create)
    try:
        yield dlq
    finally:
        dlq.close()


def _must_exist(url: str, what: str) -> None:
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise ConfigError(
            f"the {what} {redacted(url)!r} does not exist yet: run `intentq init` first"
        )
