"""The transactional outbox: the booking row and its intent commit together, or neither."""

from __future__ import annotations

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from intentq.config import Settings
from intentq.outbox import Outbox
from myapp.db import bookings
from myapp.tools import registry


def book(engine: Engine, settings: Settings, key: str, slot: str) -> None:
    """``engine``: your application's database, where `intentq init` made the outbox table."""
    outbox = Outbox(settings, registry)  # one per process: it holds no connection
    with Session(engine) as session, session.begin():
        session.execute(insert(bookings).values(idem_key=key, slot=slot))
        outbox.add(session, "book_slot", {"slot": slot}, key=key)
    # Committed: a relay (`intentq relay`) sends the intent. A crash before the commit
    # leaves neither the booking nor the intent.
