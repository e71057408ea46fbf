"""The transactional outbox: intents written in the application's own transaction, sent by
a relay once committed.

``Outbox`` adds rows through the caller's SQLAlchemy session or connection (sync or asyncio);
``run_relay`` (``intentq relay``) sends committed rows to SQS or Celery and marks them sent;
``intentq.outbox.ops`` holds what operators do (stats, list, retry, purge).
"""

from __future__ import annotations

from intentq.outbox.ops import OutboxStats
from intentq.outbox.relay import Relay, Totals, run_relay
from intentq.outbox.table import OutboxRow, RowState, outbox_table
from intentq.outbox.writing import Outbox

__all__ = [
    # writing
    "Outbox",
    # relaying
    "Relay",
    "Totals",
    "run_relay",
    # operating
    "OutboxStats",
    # the table
    "OutboxRow",
    "RowState",
    "outbox_table",
]
