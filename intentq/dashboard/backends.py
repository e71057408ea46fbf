"""What the pages read and the forms change: the DLQ, the dedup store and a way to send."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from intentq.config.settings import Settings
from intentq.dedup import DedupStore
from intentq.dlq import DeadLetterStore
from intentq.dlq.replay import Send, producer_send
from intentq.ops import opened_dlq, opened_store


@dataclass(frozen=True)
class Backends:
    """Opened from the settings by ``opened_backends``, or made by a test and given."""

    dlq: DeadLetterStore
    store: DedupStore | None
    send: Send


@contextmanager
def opened_backends(settings: Settings) -> Iterator[Backends]:
    """The DLQ, the store and a producer the settings name, all closed on exit."""
    with (
        opened_dlq(settings) as dlq,
        opened_store(settings) as store,
        producer_send(settings) as send,
    ):
        yield Backends(dlq, store, send)


