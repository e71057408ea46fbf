"""Open the store and the dead-letter store that the settings name, and close them after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from intentq.dedup.base import DedupStore
from intentq.dedup.factory import open_store
from intentq.dlq.base import DeadLetterStore
from intentq.dlq.factory import open_dlq

if TYPE_CHECKING:
    from intentq.config.settings import Settings


def is_sqs_dlq(url: str) -> bool:
    """Whether ``url`` names an SQS dead-letter queue rather than a table."""
    return url.partition("://")[0].lower() in ("sqs", "sqs+http", "sqs+https")


@contextmanager
def opened_store(settings: Settings) -> Iterator[DedupStore]:
    """The idempotency store the settings name, closed on exit."""
    store = open_store(settings.dedup_url, settings.key_prefix)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def opened_dlq(settings: Settings) -> Iterator[DeadLetterStore]:
    """The dead-letter store the settings name, closed on exit.

    An SQS DLQ gets a client made from the settings (endpoint, region, credentials), closed
    here too, because the DLQ does not own a client it is given.
    """
    with ExitStack() as stack:
        if is_sqs_dlq(settings.dlq_url):
            from intentq.sqs_queues import make_client

            client = make_client(settings)
            stack.callback(client.close)
            dlq = open_dlq(settings.dlq_url, client=client)
        else:
            dlq = open_dlq(settings.dlq_url)
        stack.callback(dlq.close)
        yield dlq
