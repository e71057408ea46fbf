"""The transactional outbox from asyncio: an AsyncSession (or AsyncConnection) works the same."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from intentq.config import Settings
from intentq.outbox import Outbox
from myapp.db import bookings
from myapp.tools import registry


async def book(engine: AsyncEngine, settings: Settings, key: str, slot: str) -> None:
    outbox = Outbox(settings, registry)
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(insert(bookings).values(idem_key=key, slot=slot))
        await outbox.add_async(session, "book_slot", {"slot": slot}, key=key)
