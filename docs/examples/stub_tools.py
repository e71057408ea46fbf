"""Testing your tools without services: the stub broker, the real executor, memory stores."""

from __future__ import annotations

from intentq import Intent, Registry, ToolContext
from intentq.consumers.stub import StubBroker, StubWorker
from intentq.dedup.memory import MemoryDedupStore
from intentq.dlq.memory import MemoryDeadLetterStore

registry = Registry()
booked: list[str] = []  # stands in for the calendar the tool writes to


@registry.tool("book_slot")
def book_slot(args: dict[str, str], ctx: ToolContext) -> dict[str, str]:
    if args["slot"] == "03:00":
        raise ValueError("the clinic is closed at night")  # a permanent error
    booked.append(args["slot"])
    return {"booked": args["slot"]}


def test_a_call_asked_twice_books_once() -> None:
    broker, store, dlq = StubBroker(), MemoryDedupStore(), MemoryDeadLetterStore()
    call = Intent.create("book_slot", {"slot": "15:00"}, key="conv42-call7")
    broker.send(call)
    broker.send(call)  # the agent lost the answer and asked again
    broker.send(Intent.create("book_slot", {"slot": "03:00"}))

    StubWorker(broker, registry, store, dlq).drain(timeout=10)  # until the queue is empty

    assert booked == ["15:00"]
    assert store.get("book_slot", "conv42-call7").result == {"booked": "15:00"}
    (letter,) = dlq.iter()
    assert (letter.reason, letter.error_type) == ("permanent", "ValueError")
    assert broker.depth() == (0, 0)  # nothing waiting, nothing in flight
