"""Results in every format: completed, dead-lettered, timed out; errors never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from intentq.agents import (
    anthropic_result,
    error_reply,
    mcp_result,
    openai_chat_result,
    openai_responses_result,
    to_reply,
)
from intentq.ops import Awaited, Status

DEAD = Awaited(
    Status.DEAD, "book_slot", "k1", error={
        "reason": "permanent", "type": "ValueError", "message": "the calendar refused",
        "attempts": 1, "intent_id": "0190...", "letter_id": "0190...",
        "traceback": 'Traceback (most recent call last):\n  File "tools.py"',
    }, attempts=1,
)  # fmt: skip
TIMEOUT = Awaited(Status.TIMEOUT, "book_slot", "k1", waited=30.0)
DONE = Awaited(Status.COMPLETED, "book_slot", "k1", result={"booked": "15:00"}, attempts=1)


def text_of(fmt: str, result: Any) -> tuple[str, bool | None]:
    """The model-facing text of ``result`` in format ``fmt``, and its error flag if any."""
    if fmt == "chat":
        return openai_chat_result("call_1", result)["content"], None
    if fmt == "responses":
        return openai_responses_result("call_1", result)["output"], None
    if fmt == "anthropic":
        block = anthropic_result("toolu_1", result)
        return block["content"], block["is_error"]
    out = mcp_result(result)
    return out["content"][0]["text"], out["isError"]


FORMATS = ["chat", "responses", "anthropic", "mcp"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_completed_is_its_result(fmt: str) -> None:
    text, is_error = text_of(fmt, DONE)

    assert json.loads(text) == {"booked": "15:00"}
    assert is_error in (None, False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_dead_letter_is_an_error_the_model_reads(fmt: str) -> None:
    text, is_error = text_of(fmt, DEAD)

    assert json.loads(text) == {
        "error": {
            "status": "dead", "reason": "permanent", "tool": "book_slot",
            "type": "ValueError", "message": "the calendar refused",
        }
    }  # fmt: skip
    assert is_error in (None, True)
    assert "Traceback" not in text
    assert "letter_id" not in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_timeout_is_an_error_the_model_reads(fmt: str) -> None:
    text, is_error = text_of(fmt, TIMEOUT)

    error = json.loads(text)["error"]
    assert (error["status"], error["reason"]) == ("timeout", "timeout")
    assert "30.0s" in error["message"]
    assert is_error in (None, True)


def test_dead_letter_without_details_still_reads() -> None:
    reply = to_reply(Awaited(Status.DEAD, "t", "k"))

    assert reply.is_error
    assert reply.value["error"]["reason"] == "failed"


def test_dead_mcp_result_has_no_structured_content() -> None:
    assert "structuredContent" not in mcp_result(DEAD)


class Booking(BaseModel):
    slot: str


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain text", "plain text"),
        (0, "0"),
        ({}, "{}"),
        (None, "null"),
        (Booking(slot="15:00"), '{"slot": "15:00"}'),
        ({"name": "Zoë"}, '{"name": "Zoë"}'),
    ],
)
def test_plain_values_including_falsy_ones(value: Any, text: str) -> None:
    reply = to_reply(value)

    assert reply.text == text
    assert not reply.is_error


def test_exception_is_its_type_and_message_only() -> None:
    def boom() -> None:
        raise KeyError("slot")

    try:
        boom()
    except KeyError as exc:
        reply = error_reply(exc)

    assert reply.value == {"error": {"status": "error", "reason": "KeyError", "message": "'slot'"}}


def test_long_messages_are_cut() -> None:
    reply = error_reply(RuntimeError("x" * 10_000))

    assert len(reply.value["error"]["message"]) == 2000


@pytest.mark.parametrize("result", [DEAD, TIMEOUT, RuntimeError("x")])
@pytest.mark.parametrize(
    "render",
    [
        lambda r: openai_chat_result("c", r),
        lambda r: anthropic_result("t", r),
        mcp_result,
    ],
)
def test_failures_never_raise(result: Any, render: Callable[[Any], Any]) -> None:
    render(result)
