"""What the pages read and the forms change: the DLQ, the dedup store and a way to send."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from intentq.config.settings import Settings
from intentq.dedup import DedupStore
from intentq.dlq import DeadLetter, DeadLetterStore
from intentq.ops import opened_dlq, opened_store

# What replay calls for each letter: ``send(letter, to)``, to ``None`` meaning its own queue.
Send = Callable[[DeadLetter, str | None], None]


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


@contextmanager
def producer_send(settings: Settings) -> Iterator[Send]:
    """``send(letter, to)`` as ``intentq dlq replay`` sends: the original bytes, to ``to``,
    else back to the letter's own queue when it came from this transport."""
    from intentq.producer import Producer

    with Producer(settings) as producer:

        def send(letter: DeadLetter, to: str | None) -> None:
            queue = to
            if queue is None and letter.source_transport == settings.transport:
                queue = letter.source_queue
            producer.send_raw(letter.body, queue)

        yield send
