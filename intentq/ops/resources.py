"""Open the store and the dead-letter store that the settings name, and close them after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from intentq.config.redact import redacted
from intentq.dedup.base import DedupStore
from intentq.dedup.factory import open_store
from intentq.dlq.base import DeadLetterStore
from intentq.dlq.factory import open_dlq
from intentq.errors import ConfigError

if TYPE_CHECKING:
    from intentq.config.settings import Settings


def is_sqs_dlq(url: str) -> bool:
    """Whether ``url`` names an SQS dead-letter queue rather than a table."""
    return url.partition("://")[0].lower() in ("sqs", "sqs+http", "sqs+https")


def sqlite_file(url: str) -> Path | None:
    """The database file a ``sqlite:///path`` URL names; None for any other URL, and for
    SQLite in memory or given as a ``file:`` URI."""
    if not url.lower().startswith("sqlite"):
        return None
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if not database or database == ":memory:" or parsed.query.get("uri"):
        return None
    return Path(database)


def _must_exist(url: str, what: str) -> None:
    # Connecting would create an empty file, left behind by a command that only reads.
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise ConfigError(
            f"the {what} {redacted(url)!r} does not exist yet: run `intentq init` first"
        )


@contextmanager
def opened_store(settings: Settings, *, create: bool = False) -> Iterator[DedupStore]:
    """The idempotency store the settings name, closed on exit.

    A SQLite file that does not exist is a ``ConfigError`` unless ``create`` (``intentq
    init``): SQLite would otherwise create an empty one on connect.
    """
    if not create:
        _must_exist(settings.dedup_url, "dedup store")
    store = open_store(settings.dedup_url, settings.key_prefix)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def opened_dlq(settings: Settings, *, create: bool = False) -> Iterator[DeadLetterStore]:
    """The dead-letter store the settings name, closed on exit.

    An SQS DLQ gets a client made from the settings (endpoint, region, credentials), closed
    here too, because the DLQ does not own a client it is given. A SQLite file that does not
    exist is a ``ConfigError`` unless ``create``, as for ``opened_store``.
    """
    if not create:
        _must_exist(settings.dlq_url, "dead-letter store")
    with ExitStack() as stack:
        if is_sqs_dlq(settings.dlq_url):
            from intentq.sqs.queues import make_client

            client = make_client(settings)
            stack.callback(client.close)
            dlq = open_dlq(settings.dlq_url, client=client)
        else:
            dlq = open_dlq(settings.dlq_url)
        stack.callback(dlq.close)
        yield dlq
