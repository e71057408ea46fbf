"""The three key modes on one request that the model made twice, under two call ids."""

from __future__ import annotations

from intentq.agents import intent_from_anthropic


def block(call_id: str) -> dict[str, object]:
    return {"type": "tool_use", "id": call_id, "name": "send_email", "input": {"to": "a@b.c"}}


first, again = block("toolu_01"), block("toolu_02")  # asked again: a new id

# "content" (default): the same request in the same conversation is one intent.
assert (
    intent_from_anthropic(first, scope="conv-7").key
    == intent_from_anthropic(again, scope="conv-7").key
)
# "call": one intent per call id; a redelivery of toolu_01 still finds its key.
assert (
    intent_from_anthropic(first, scope="conv-7", key="call").key
    != intent_from_anthropic(again, scope="conv-7", key="call").key
)
# An explicit key: the caller knows what makes the request unique.
assert intent_from_anthropic(first, scope="conv-7", key="invoice-1042").key == "invoice-1042"
