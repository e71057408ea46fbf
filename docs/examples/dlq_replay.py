"""Replay dead letters once the fix is deployed, and purge what cannot be saved."""

from __future__ import annotations

from intentq import Producer
from intentq.config import Settings
from intentq.dedup import open_store
from intentq.dlq import DeadLetter, LetterFilter, ReplaySummary, open_dlq, parse_age, purge, replay


def replay_book_slot(settings: Settings) -> ReplaySummary:
    dlq = open_dlq(settings.dlq_url)
    store = open_store(settings.dedup_url, settings.key_prefix)
    with Producer(settings) as producer:

        def send(letter: DeadLetter, to: str | None) -> None:  # re-enqueue the body as it was
            producer.send_raw(letter.body, to)

        summary = replay(
            dlq,
            store,
            dlq.iter(LetterFilter(tool="book_slot")),  # or LetterFilter(ids=(...))
            send,  # send(letter, to): to its source queue, or `to`
            to=None,
            dry_run=False,
            rate=10.0,
            limit=None,
            keep=False,
            on_result=lambda result: print(result.action, result.letter_id, result.detail),
        )
    print(summary.replayed, summary.skipped, summary.refused, summary.failed)
    store.close()
    dlq.close()
    return summary


def tidy(settings: Settings, letter_ids: list[str]) -> int:
    dlq = open_dlq(settings.dlq_url)
    deleted = purge(dlq, ids=letter_ids)  # returns how many were deleted
    deleted += purge(dlq, older_than=parse_age("7d"))  # dead_at before now - 7 days
    deleted += purge(dlq, all_letters=True, filter=LetterFilter(tool="book_slot"))
    dlq.close()
    return deleted
