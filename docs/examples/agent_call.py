"""A model's tool call in, its result out: enqueue under a key, wait for the result."""

from __future__ import annotations

import json
from typing import Any

from intentq import Producer, key_for_tool_call
from intentq.config import Settings
from intentq.ops import Status, await_result, opened_store
from myapp.tools import registry


def call_tool(conversation_id: str, call_id: str, name: str, arguments: str) -> Any:
    """Run the model's tool call ``call_id`` once, however often the agent asks."""
    settings = Settings.load()  # INTENTQ_* variables, intentq.toml
    key = key_for_tool_call(conversation_id, call_id)  # same call -> same key
    with Producer(settings, registry) as producer:
        producer.enqueue(
            name,
            json.loads(arguments),
            key=key,
            meta={"conversation_id": conversation_id, "tool_call_id": call_id},
        )
    with opened_store(settings) as store:
        done = await_result(store, name, key, timeout=30)  # polls the store
    if done.status is not Status.COMPLETED:
        raise RuntimeError(f"{name} {key}: {done.status} {done.error}")
    return done.result  # a duplicate call gets the first result; the tool ran once
