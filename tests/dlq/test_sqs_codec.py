"""Letters to SQS messages and back, without a server: bodies, attributes, sizes, order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intentq.dlq import DeadLetter, Reason
from intentq.dlq.sqs.codec import (
    META_ATTR,
    TOOL_ATTR,
    decode,
    decode_body,
    encode,
    encode_body,
    order_key,
    sqs_safe,
)
from intentq.errors import DLQError
from intentq.intent import new_intent_id


def as_received(letter: DeadLetter, max_bytes: int = 1024 * 1024) -> dict[str, object]:
    encoded = encode(letter, max_bytes)
    return {"MessageId": "m-1", "Body": encoded.body, "MessageAttributes": encoded.attributes}


@given(st.binary(max_size=300))
def test_any_body_round_trips_through_text_sqs_accepts(body: bytes) -> None:
    text, encoding = encode_body(body)
    assert text and sqs_safe(text)
    assert decode_body(text, encoding) == body


@given(st.text(max_size=200))
def test_text_sqs_accepts_is_kept_as_is(text: str) -> None:
    body = text.encode("utf-8")
    if body and sqs_safe(text):
        assert encode_body(body) == (text, None)


@given(st.text(max_size=100), st.text(max_size=100))
def test_any_error_text_round_trips(message: str, tool: str) -> None:
    letter = DeadLetter(
        id=new_intent_id(), body=b"{}", reason=Reason.POISON, tool=tool or None,
        error_message=message, dead_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    encoded = encode(letter)
    assert all(sqs_safe(a["StringValue"]) for a in encoded.attributes.values())
    assert decode(as_received(letter)) == letter


def test_a_tool_name_sqs_cannot_hold_moves_into_the_json() -> None:
    letter = DeadLetter(id=new_intent_id(), body=b"{}", reason=Reason.UNKNOWN_TOOL, tool="t\x00")
    attributes = encode(letter).attributes
    assert TOOL_ATTR not in attributes
    assert json.loads(attributes[META_ATTR]["StringValue"])["tool"] == "t\x00"
    assert decode(as_received(letter)).tool == "t\x00"


def test_the_error_message_is_cut_when_there_is_no_traceback_left() -> None:
    letter = DeadLetter(
        id=new_intent_id(), body=b"b" * 1000, reason=Reason.PERMANENT,
        error_message="m" * 5000 + "END", traceback="t" * 5000,
    )  # fmt: skip
    encoded = encode(letter, max_bytes=4000)
    got = decode(as_received(letter, max_bytes=4000))

    assert encoded.size <= 4000
    assert got.traceback is None
    assert got.error_message is not None and got.error_message.endswith("END")
    assert got.body == letter.body


def test_non_ascii_tracebacks_are_cut_by_their_escaped_size() -> None:
    letter = DeadLetter(
        id=new_intent_id(), body=b"{}", reason=Reason.PERMANENT, traceback="\U0001f600" * 50_000
    )
    assert encode(letter, max_bytes=20_000).size <= 20_000


def test_a_body_that_cannot_fit_is_an_error_not_a_loss() -> None:
    letter = DeadLetter(id=new_intent_id(), body=b"x" * 5000, reason=Reason.POISON)
    with pytest.raises(DLQError, match="does not fit"):
        encode(letter, max_bytes=4000)


def test_damaged_metadata_still_lists_the_message() -> None:
    letter_id = new_intent_id()
    message = {
        "MessageId": "m-9",
        "Body": "raw",
        "MessageAttributes": {
            "intentq-id": {"DataType": "String", "StringValue": letter_id},
            META_ATTR: {"DataType": "String", "StringValue": "{not json"},
        },
    }
    got = decode(message)
    assert (got.id, got.body, got.reason) == (letter_id, b"raw", Reason.EXHAUSTED)


def test_order_is_id_order_for_uuid7_and_dead_at_for_other_ids() -> None:
    ids = [new_intent_id() for _ in range(50)]
    letters = [DeadLetter(id=i, body=b"", reason=Reason.POISON) for i in reversed(ids)]
    assert [x.id for x in sorted(letters, key=order_key)] == ids

    t = datetime(2026, 1, 1, tzinfo=UTC)
    older = DeadLetter(id="ffff-redriven", body=b"", reason=Reason.EXHAUSTED, dead_at=t)
    newer = DeadLetter(
        id="0000-redriven", body=b"", reason=Reason.EXHAUSTED, dead_at=t + timedelta(days=1)
    )
    assert sorted([newer, older], key=order_key) == [older, newer]
