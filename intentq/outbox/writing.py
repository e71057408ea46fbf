"""Writing intents to the outbox inside the application's own transaction.

```python
outbox = Outbox(Settings.load(), registry)
with Session(engine) as session, session.begin():
    session.add(Booking(slot="15:00"))
    outbox.add(session, "book_slot", {"slot": "15:00"}, key=key)
```

The row commits or rolls back with the application's rows: an intent is never sent for a
decision that was not recorded, nor lost for one that was. A relay (``intentq relay``) sends
committed rows. Checks (the registry's, the size limit) raise before anything is written,
inside the caller's transaction, which the caller's ``with`` then rolls back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from intentq.errors import InvalidIntent
from intentq.intent import Intent
from intentq.observe.workers import tracing_for
from intentq.outbox.table import RowState, outbox_table
from intentq.sqs.queues import is_fifo, queue_name
from intentq.sqs.send import group_id

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
    from sqlalchemy.orm import Session

    from intentq.config.settings import Settings
    from intentq.producer import IntentItem
    from intentq.registry import Registry

__all__ = ["Outbox"]

# The meta field of the W3C trace context, as the producer sets it (intentq.producer).
TRACEPARENT = "traceparent"


class Outbox:
    """Adds intents to the outbox table (``settings.outbox_table``) through the caller's
    SQLAlchemy ``Session``/``Connection``, or ``AsyncSession``/``AsyncConnection``.

    The destination is the settings' transport and queue unless ``queue`` is given. With a
    ``registry``, arguments are validated as ``Producer.enqueue`` does. Holds no connection:
    one ``Outbox`` serves every thread and task.
    """

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.table = outbox_table(settings.outbox_table)
        self._tracing = tracing_for(settings)

    # -- sync --------------------------------------------------------------------------

    def add(
        self,
        conn: Session | Connection,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
    ) -> Intent:
        """Add one intent in ``conn``'s transaction; ``key`` defaults to the new intent id."""
        return self.add_many(conn, [(tool, args, key, meta)], queue=queue)[0]

    def add_many(
        self, conn: Session | Connection, items: Iterable[IntentItem], *, queue: str | None = None
    ) -> list[Intent]:
        """Check every item, then add them all with one INSERT in ``conn``'s transaction."""
        intents, rows = self.rows(items, queue)
        if rows:
            conn.execute(sa.insert(self.table), rows)
        return intents

    # -- asyncio -----------------------------------------------------------------------

    async def add_async(
        self,
        conn: AsyncSession | AsyncConnection,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
    ) -> Intent:
        """``add`` for an ``AsyncSession`` or ``AsyncConnection``."""
        return (await self.add_many_async(conn, [(tool, args, key, meta)], queue=queue))[0]

    async def add_many_async(
        self,
        conn: AsyncSession | AsyncConnection,
        items: Iterable[IntentItem],
        *,
        queue: str | None = None,
    ) -> list[Intent]:
        """``add_many`` for an ``AsyncSession`` or ``AsyncConnection``."""
        intents, rows = self.rows(items, queue)
        if rows:
            await conn.execute(sa.insert(self.table), rows)
        return intents

    # -- building rows -----------------------------------------------------------------

    def destination(self, queue: str | None = None) -> tuple[str, str]:
        """``(transport, queue)`` a row is sent to: ``queue`` or the settings' default."""
        transport = self.settings.transport
        default = self.settings.celery_queue if transport == "celery" else self.settings.sqs_queue
        return transport, queue or default

    def rows(
        self, items: Iterable[IntentItem], queue: str | None = None
    ) -> tuple[list[Intent], list[dict[str, Any]]]:
        """The checked intents and the rows to insert; raises before anything is written."""
        intents = [self._intent(item) for item in items]
        if not intents:
            return [], []
        transport, queue = self.destination(queue)
        fifo = transport == "sqs" and is_fifo(queue)
        with self._created(transport, queue, intents) as traceparent:
            rows = []
            for i, intent in enumerate(intents):
                if traceparent and TRACEPARENT not in intent.meta:
                    intent = replace(intent, meta={**intent.meta, TRACEPARENT: traceparent})
                    intents[i] = intent
                body = intent.to_json()
                self._check_size(intent, body)
                rows.append(
                    {
                        "intent_id": intent.intent_id,
                        "key": intent.key,
                        "tool": intent.tool,
                        "body": body.decode("ascii"),  # canonical JSON is ASCII
                        "traceparent": intent.meta.get(TRACEPARENT),
                        "transport": transport,
                        "queue": queue,
                        "group_id": group_id(intent) if fifo else None,
                        "state": RowState.PENDING.value,
                        "attempts": 0,
                    }
                )
        return intents, rows

    def _intent(self, item: IntentItem) -> Intent:
        if isinstance(item, Intent):
            if self.registry is not None:
                self.registry.validate(item.tool, item.args)
            return item
        if isinstance(item, Mapping):
            unknown = set(item) - {"tool", "args", "key", "meta"}
            if unknown or "tool" not in item or "args" not in item:
                raise InvalidIntent(
                    "bad_field_type", f"an item needs tool and args, got {sorted(item)}"
                )
            return self._create(item["tool"], item["args"], item.get("key"), item.get("meta"))
        if isinstance(item, Sequence) and not isinstance(item, str | bytes) and 2 <= len(item) <= 4:
            return self._create(*item)
        raise InvalidIntent("bad_field_type", "an item is (tool, args[, key[, meta]])")

    def _create(
        self,
        tool: str,
        args: Mapping[str, Any],
        key: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Intent:
        if self.registry is not None:
            self.registry.validate(tool, args)
        return Intent.create(tool, args, key=key, meta=meta)

    def _check_size(self, intent: Intent, body: bytes) -> None:
        limit = self.settings.max_message_bytes
        if len(body) > limit:
            raise InvalidIntent(
                "too_large",
                f"the envelope of {intent.tool!r} (key {intent.key!r}) is {len(body)} bytes, "
                f"over the limit of {limit} (INTENTQ_MAX_MESSAGE_BYTES): nothing was added to "
                "the outbox",
            )

    @contextmanager
    def _created(self, transport: str, queue: str, intents: list[Intent]) -> Iterator[str | None]:
        """A PRODUCER span ``create {queue}`` around the write, and its ``traceparent``, which
        the row carries to the worker; nothing when tracing is off."""
        if self._tracing is None:
            yield None
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        from intentq.observe.tracing import SYSTEMS

        name = queue_name(queue)
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEMS.get(transport, transport),
            "messaging.destination.name": name,
            "messaging.operation.type": "create",
            "messaging.operation.name": "create",
        }
        if len(intents) == 1:
            attributes["intentq.tool"] = intents[0].tool
            attributes["intentq.intent_id"] = intents[0].intent_id
        else:
            attributes["messaging.batch.message_count"] = len(intents)
        with self._tracing.tracer.start_as_current_span(
            f"create {name}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            yield carrier.get(TRACEPARENT)
