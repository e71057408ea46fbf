"""A dead letter is learnt in one store read: the executor leaves the letter's id and reason
in the failed record, also for intents it refused before any claim."""

from __future__ import annotations

from pydantic import BaseModel

from intentq import Registry, ToolContext
from intentq.dedup.memory import MemoryDedupStore
from intentq.dlq.base import Reason
from intentq.executor import Executor
from intentq.intent import Intent
from intentq.ops.awaiting import Status
from intentq.outcome import Delivery, SendToDLQ
from intentq.waiting import Waiter


class Slot(BaseModel):
    slot: str


def registry() -> Registry:
    tools = Registry()

    @tools.tool("book_slot", args=Slot)
    def book_slot(args: Slot, ctx: ToolContext) -> str:
        raise ValueError(f"slot {args.slot} is closed")

    return tools


def deliver(executor: Executor, intent: Intent) -> SendToDLQ:
    outcome = executor.process(intent.to_json(), Delivery("memory", "q", intent.intent_id))
    assert isinstance(outcome, SendToDLQ), outcome
    return outcome


def test_refusals_and_failures_leave_their_letter_in_the_record() -> None:
    store = MemoryDedupStore()
    executor = Executor(registry(), store)
    cases = [
        (Intent.create("cancel_slot", {}, key="unknown"), Reason.UNKNOWN_TOOL),
        (Intent.create("book_slot", {"slot": 15}, key="schema"), Reason.SCHEMA),
        (Intent.create("book_slot", {"slot": "15:00"}, key="fails"), Reason.PERMANENT),
    ]
    with Waiter(store) as waiter:
        for intent, reason in cases:
            letter = deliver(executor, intent).letter

            done = waiter.result(intent, timeout=0)

            assert done.status is Status.DEAD
            assert done.error["reason"] == str(reason)
            assert done.error["letter_id"] == letter.id and letter.id
            assert done.error["intent_id"] == intent.intent_id


def test_a_refused_message_delivered_again_keeps_its_letter_id() -> None:
    store = MemoryDedupStore()
    executor = Executor(registry(), store)
    intent = Intent.create("cancel_slot", {}, key="again")

    first, second = deliver(executor, intent).letter, deliver(executor, intent).letter

    assert first.id == second.id


def test_a_refusal_leaves_another_calls_record_alone() -> None:
    store = MemoryDedupStore()
    executor = Executor(registry(), store)
    deliver(executor, Intent.create("book_slot", {"slot": "15:00"}, key="k"))
    before = store.get("book_slot", "k")

    deliver(executor, Intent.create("book_slot", {"slot": 16}, key="k"))  # bad args, same key

    assert store.get("book_slot", "k") == before
