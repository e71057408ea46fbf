"""Send an intent and wait for its result: the ``run`` each agent loop here is given."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from intentq.intent import Intent
from intentq.ops import Awaited, await_result

if TYPE_CHECKING:
    from intentq import Producer
    from intentq.dedup import DedupStore


def make_run(
    producer: Producer, store: DedupStore, timeout: float = 30.0
) -> Callable[[Intent], Awaited]:
    """``run(intent)``: send it, then wait for the worker's result, a dead letter or timeout."""

    def run(intent: Intent) -> Awaited:
        # A duplicate is sent as well: the worker answers it from the store, the tool
        # does not run again.
        producer.send_intent(intent)
        return await_result(store, intent.tool, intent.key, timeout=timeout)

    return run
