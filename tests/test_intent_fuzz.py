"""Intent.parse raises only InvalidIntent, for any bytes at all, and never hangs."""

from __future__ import annotations

import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intentq.errors import InvalidIntent
from intentq.intent import Intent

FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=10), c, max_size=5),
    max_leaves=30,
)


def parse_or_invalid(body: bytes) -> None:
    try:
        intent = Intent.parse(body)
    except InvalidIntent as exc:
        assert exc.reason in {
            "malformed_json", "not_an_object", "unsupported_version", "missing_field",
            "bad_key", "too_large", "bad_field_type",
        }  # fmt: skip
        assert exc.message
    else:
        assert Intent.parse(intent.to_json()) == intent


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes(body: bytes) -> None:
    parse_or_invalid(body)


@FUZZ
@given(json_values)
def test_random_json(value: object) -> None:
    parse_or_invalid(json.dumps(value).encode())


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "v": st.one_of(st.just(1), json_values),
            "intent_id": st.one_of(st.just(str(uuid.uuid4())), json_values),
            "key": st.one_of(st.text(max_size=250), json_values),
            "tool": st.one_of(st.just("book"), json_values),
            "args": st.one_of(st.dictionaries(st.text(max_size=5), json_values), json_values),
            "meta": json_values,
            "created_at": json_values,
        },
    )
)
def test_random_envelopes(obj: dict[str, object]) -> None:
    parse_or_invalid(json.dumps(obj).encode())


@FUZZ
@given(st.data())
def test_truncated_envelopes(data: st.DataObject) -> None:
    body = Intent.create("book", {"slot": "15:00", "note": "é😀"}).to_json()
    cut = data.draw(st.integers(0, len(body) - 1))
    parse_or_invalid(body[:cut])


@FUZZ
@given(st.integers(1, 200_000), st.sampled_from(["[", '{"a":', "-", "9"]))
def test_deep_nesting_and_huge_numbers(depth: int, unit: str) -> None:
    parse_or_invalid((unit * depth).encode())


def test_non_utf8_and_huge_literals() -> None:
    for body in (b"\x80abc", b'{"v": 1' + b"0" * 100_000 + b"}", b"1e999999", b"-" + b"9" * 10_000):
        parse_or_invalid(body)
