"""Reading and tidying dead letters from Python."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from intentq.dlq import DeadLetterStore, LetterFilter, Reason, open_dlq


def look_around(url: str) -> DeadLetterStore:
    dlq = open_dlq(url)  # postgresql+psycopg://…, sqlite:///…, sqs://intentq-dlq, memory://
    dlq.create_schema()  # idempotent: what `intentq init` runs
    page = dlq.list(LetterFilter(tool="book_slot", reason=Reason.PERMANENT), limit=50)
    for letter in page.letters:
        print(letter.id, letter.error_type, letter.error_message)
    more = dlq.list(LetterFilter(tool="book_slot"), limit=50, cursor=page.cursor)
    print(len(more.letters), "more")
    letter = dlq.get(page.letters[0].id)  # LetterNotFound if there is none
    yesterday = datetime.now(UTC) - timedelta(days=1)
    print(dlq.count(LetterFilter(since=yesterday)), "since yesterday")
    dlq.mark_replayed(letter.id)  # replay_count + 1, last_replayed_at = now
    dlq.delete(letter.id)  # True if it existed
    dlq.delete_many(LetterFilter(reason=Reason.SCHEMA))
    print(dlq.ending_in([letter.id[-12:]]))  # {suffix: letters whose id ends in it}; SQL: a query
    return dlq  # close it when done: dlq.close()
