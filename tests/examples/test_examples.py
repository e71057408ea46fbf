"""Each example in examples/ runs as a user would run it, against a real worker."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from examples import anthropic_agent, mcp_client, openai_agent
from examples.recorded import Recorded
from intentq import Producer
from intentq.config import Settings
from intentq.waiting import AsyncProducer
from tests.cli.conftest import Env
from tests.examples.conftest import ExamplesWorker


def tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["role"] == "tool"]


def test_the_agent_loops_on_recorded_responses(settings_env: Env, worker: ExamplesWorker) -> None:
    conversation = f"conv-{uuid.uuid4().hex[:8]}"

    # OpenAI: a booking, a broken call, then the model asks for the same booking again
    model = Recorded("openai_chat.json")
    with Producer(Settings.load(), openai_agent.registry) as producer:
        messages = openai_agent.run_turn(model, producer, conversation, "Book 15:00.")

    booked, broken, again = tool_messages(messages)
    assert json.loads(booked["content"])["booked"] == "15:00", worker.log()
    assert json.loads(broken["content"])["error"]["reason"] == "invalid_json"
    assert (again["tool_call_id"], again["content"]) == ("call_b1", booked["content"])  # once
    assert messages[-1]["content"] == "You are booked at 15:00."
    assert len(model.asked) == 3

    # Anthropic, in asyncio: the same story with tool_use blocks
    async def anthropic() -> list[dict[str, Any]]:
        async with AsyncProducer(Settings.load(), anthropic_agent.registry) as producer:
            return await anthropic_agent.run_turn(
                Recorded("anthropic_messages.json"), producer, conversation, "Book 09:30."
            )

    turns = asyncio.run(anthropic())

    first, second = (m["content"] for m in turns if m["role"] == "user" and m is not turns[0])
    ok, bad = first
    assert (ok["tool_use_id"], ok["is_error"]) == ("toolu_01", False)
    assert json.loads(ok["content"])["booked"] == "09:30"
    assert bad["is_error"] and json.loads(bad["content"])["error"]["reason"] == "invalid_args"
    assert second[0]["content"] == ok["content"]  # asked again: the first booking
    assert turns[-1]["content"][0]["text"] == "Booked for 09:30."


def test_the_mcp_client_session(settings_env: Env, worker: ExamplesWorker) -> None:
    seen = asyncio.run(mcp_client.book_twice(f"order-{uuid.uuid4().hex[:8]}"))

    assert seen["tools"]["book_slot"]["properties"]["slot"]["type"] == "string"
    assert seen["first"]["booked"] == "11:00", worker.log()
    assert seen["again"] == seen["first"]
