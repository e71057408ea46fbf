"""The envelope: round trip, every InvalidIntent reason, fingerprints, keys, ids."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intentq.errors import InvalidIntent
from intentq.intent import (
    DEFAULT_MAX_BYTES,
    Intent,
    fingerprint,
    key_for_tool_call,
    new_intent_id,
    normalize_key,
)


def envelope(**changes: object) -> bytes:
    base: dict[str, object] = {
        "v": 1,
        "intent_id": str(uuid.uuid4()),
        "key": "k-1",
        "tool": "book_slot",
        "args": {"slot": "15:00"},
        "created_at": "2026-11-29T06:00:00Z",
        "meta": {},
    }
    base.update(changes)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def test_round_trip_keeps_every_field() -> None:
    intent = Intent.create("book_slot", {"slot": "15:00", "n": [1, 2.5, None]}, key="K:1",
                           meta={"conversation_id": "c1"})  # fmt: skip
    again = Intent.parse(intent.to_json())
    assert again == intent
    assert again.to_json() == intent.to_json()
    assert again.fingerprint == intent.fingerprint


def test_key_defaults_to_intent_id() -> None:
    intent = Intent.create("t", {})
    assert intent.key == intent.intent_id


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00", "malformed_json"),
        (b'{"v": NaN}', "malformed_json"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed_json"),
        (b"1" * 5000, "malformed_json"),
        (envelope(args={"x": 1}).replace(b'{"x": 1}', b'{"x": 1e999}'), "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (envelope(v=2), "unsupported_version"),
        (envelope(v=True), "unsupported_version"),
        (envelope(key=...), "missing_field"),
        (envelope(args=...), "missing_field"),
        (envelope(key="has space"), "bad_key"),
        (envelope(key=""), "bad_key"),
        (envelope(key="x" * 201), "bad_key"),
        (envelope(key=7), "bad_key"),
        (envelope(args=[1]), "bad_field_type"),
        (envelope(tool=""), "bad_field_type"),
        (envelope(tool=3), "bad_field_type"),
        (envelope(intent_id="nope"), "bad_field_type"),
        (envelope(meta="m"), "bad_field_type"),
        (envelope(created_at=5), "bad_field_type"),
    ],
)
def test_every_invalid_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidIntent) as info:
        Intent.parse(body)
    assert info.value.reason == reason
    assert info.value.message


def test_too_large_uses_the_configured_limit() -> None:
    body = envelope(args={"blob": "x" * 2000})
    assert Intent.parse(body, max_bytes=len(body)).args["blob"] == "x" * 2000
    with pytest.raises(InvalidIntent) as info:
        Intent.parse(body, max_bytes=len(body) - 1)
    assert info.value.reason == "too_large"
    big = envelope(args={"blob": "x" * DEFAULT_MAX_BYTES})
    with pytest.raises(InvalidIntent, match="too_large"):
        Intent.parse(big)


def test_uuid_keys_are_lower_cased() -> None:
    upper = str(uuid.uuid4()).upper()
    assert Intent.parse(envelope(key=upper)).key == upper.lower()
    assert normalize_key("Mixed-Case_key.1:2") == "Mixed-Case_key.1:2"


@pytest.mark.parametrize("key", ["a b", "ä", "a/b", "x" * 201, "", "a\n"])
def test_bad_keys_refused(key: str) -> None:
    with pytest.raises(InvalidIntent, match="bad_key"):
        normalize_key(key)


def test_fingerprint_ignores_key_order_and_whitespace() -> None:
    a = Intent.parse(b'{"v":1,"intent_id":"%s","key":"k","tool":"t","args":{"a":1,"b":[1,2]}}'
                     % str(uuid.uuid4()).encode())  # fmt: skip
    b = Intent.parse(b'{ "args" : { "b" : [ 1 , 2 ] , "a" : 1 } , "tool":"t", "key":"k",'
                     b' "intent_id":"%s", "v":1 }' % str(uuid.uuid4()).encode())  # fmt: skip
    assert a.fingerprint == b.fingerprint


def test_fingerprint_is_sensitive_to_values_and_tool() -> None:
    base = fingerprint("t", {"a": 1})
    assert fingerprint("t", {"a": 2}) != base
    assert fingerprint("t", {"a": "1"}) != base
    assert fingerprint("u", {"a": 1}) != base
    assert fingerprint("t", {"a": 1, "b": None}) != base


def test_fingerprint_is_unicode_safe() -> None:
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    assert fingerprint("t", {"s": nfc}) != fingerprint("t", {"s": nfd})
    lone = Intent.parse(envelope(args={"s": "\ud800"}))  # a lone surrogate from JSON escapes
    assert len(lone.fingerprint) == 64
    assert fingerprint("t", {"s": "😀"}) == fingerprint("t", {"s": "\U0001f600"})


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
            max_leaves=20,
        ),
    )
)
def test_fingerprint_stable_under_reordering(args: dict[str, object]) -> None:  # fmt: skip
    reordered = dict(reversed(list(args.items())))
    assert fingerprint("t", args) == fingerprint("t", reordered)


def test_uuid7_ids_are_ordered_and_versioned() -> None:
    ids = [new_intent_id() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_uuid5_key_is_stable_across_processes() -> None:
    here = key_for_tool_call("conv-1", "call_9")
    code = "from intentq.intent import key_for_tool_call as k; print(k('conv-1', 'call_9'))"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here
    assert uuid.UUID(here).version == 5
    assert key_for_tool_call("conv-1", "call_8") != here
    assert key_for_tool_call("conv-1c", "all_9") != key_for_tool_call("conv-1", "call_9")


def test_create_refuses_unserialisable_args() -> None:
    with pytest.raises(InvalidIntent, match="bad_field_type"):
        Intent.create("t", {"when": object()})
    with pytest.raises(InvalidIntent, match="bad_field_type"):
        Intent.create("t", {"x": float("nan")})
