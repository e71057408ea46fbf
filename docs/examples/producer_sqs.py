"""Sending intents to SQS: one at a time, or in batches of up to 10."""

from __future__ import annotations

from intentq import Producer, key_for_tool_call
from intentq.config import Settings
from myapp.tools import registry

conversation_id, tool_call_id = "conversation-42", "call_abc"  # from the agent's tool call

settings = Settings.load(transport="sqs")  # the queue: INTENTQ_SQS_QUEUE, default "intentq"
with Producer(settings, registry) as producer:  # registry: optional checks before sending
    intent = producer.enqueue(
        "book_slot",
        {"slot": "15:00"},
        key=key_for_tool_call(conversation_id, tool_call_id),  # same call -> same key
        meta={"conversation_id": conversation_id},
    )
    producer.enqueue_many(
        [
            ("send_email", {"to": "a@b.c"}, "mail-1"),
            {"tool": "send_email", "args": {"to": "d@e.f"}, "key": "mail-2"},
        ]
    )
