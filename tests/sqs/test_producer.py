"""The producer against a real SQS server: checks before sending, batches, FIFO ids, raw bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from intentq import Intent, InvalidArgs, InvalidIntent, Producer, UnknownTool
from intentq.config import Settings
from intentq.errors import TransportError
from intentq.registry import Registry
from intentq.sqs.send import SendFailed, fifo_id, group_id
from tests.support.services import SqsServer


def _settings(server: SqsServer, queue: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "transport": "sqs",
        "sqs_queue": queue,
        "sqs_endpoint_url": server.endpoint_url,
    }
    return Settings(**(values | overrides))


def _receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=60,
        MessageSystemAttributeNames=["All"],
    ).get("Messages", []):
        got += batch
    return got


def test_enqueue_sends_the_canonical_envelope(
    sqs_server: SqsServer, sqs: Any, registry: Registry
) -> None:
    url = sqs_server.new_queue()
    # Tracing off: the envelope exactly as enqueue returns it (traceparent: tests/observe)
    settings = _settings(sqs_server, url, tracing=False)
    with Producer(settings, registry, sqs_client=sqs) as producer:
        intent = producer.enqueue("book", {"slot": "10:00"}, key="K-1", meta={"who": "agent"})
    [message] = _receive_all(sqs, url)
    assert message["Body"].encode() == intent.to_json()
    assert Intent.parse(message["Body"]) == intent
    assert intent.key == "K-1" and intent.meta == {"who": "agent"}


def test_queue_is_found_by_name_as_well_as_by_url(sqs_server: SqsServer, sqs: Any) -> None:
    url = sqs_server.new_queue()
    name = url.rsplit("/", 1)[1]
    with Producer(_settings(sqs_server, name)) as producer:  # its own client, closed after
        producer.enqueue("anything", {})
    assert len(_receive_all(sqs, url)) == 1


def test_missing_queue_is_a_transport_error(sqs_server: SqsServer, sqs: Any) -> None:
    with (
        Producer(_settings(sqs_server, "no-such-queue"), sqs_client=sqs) as producer,
        pytest.raises(TransportError, match="does not exist"),
    ):
        producer.enqueue("anything", {})


def test_unknown_tools_bad_args_and_oversized_intents_are_refused_before_sending(
    sqs_server: SqsServer, sqs: Any, registry: Registry
) -> None:
    url = sqs_server.new_queue()
    settings = _settings(sqs_server, url, max_message_bytes=2048)
    with Producer(settings, registry, sqs_client=sqs) as producer:
        with pytest.raises(UnknownTool):
            producer.enqueue("no_such_tool", {})
        with pytest.raises(InvalidArgs):
            producer.enqueue("book", {"slot": ["not", "a", "string"]})
        with pytest.raises(InvalidIntent) as too_large:
            producer.enqueue("book", {"slot": "x" * 4096})
        assert too_large.value.reason == "too_large"
        with pytest.raises(InvalidIntent):
            producer.enqueue("book", {"slot": "ok"}, key="spaces are not allowed")
        with pytest.raises(UnknownTool):  # a batch is checked whole before anything is sent
            producer.enqueue_many([("book", {"slot": "1"}), ("no_such_tool", {})])
    assert _receive_all(sqs, url) == []


def test_enqueue_many_sends_everything_in_batches(
    sqs_server: SqsServer, sqs: Any, registry: Registry
) -> None:
    url = sqs_server.new_queue()
    items: list[Any] = [("book", {"slot": str(i)}, f"many-{i}") for i in range(23)]
    items.append({"tool": "book", "args": {"slot": "dict"}, "key": "many-dict"})
    items.append(Intent.create("book", {"slot": "made"}, key="many-made"))
    with Producer(_settings(sqs_server, url), registry, sqs_client=sqs) as producer:
        intents = producer.enqueue_many(items)
    bodies = sorted(m["Body"] for m in _receive_all(sqs, url))
    assert bodies == sorted(i.to_json().decode() for i in intents)
    assert len(bodies) == 25


def test_entries_refused_twice_are_named_in_the_error(sqs_server: SqsServer, sqs: Any) -> None:
    # The queue takes at most 1 KiB per message; the producer's own limit is larger.
    url = sqs_server.new_queue(MaximumMessageSize="1024")
    items = [("note", {"text": "short"}, f"ok-{i}") for i in range(12)]
    items.insert(5, ("note", {"text": "y" * 2000}, "too-big-for-the-queue"))
    with (
        Producer(_settings(sqs_server, url), sqs_client=sqs) as producer,
        pytest.raises(SendFailed) as failed,
    ):
        producer.enqueue_many(items)
    sent = [json.loads(m["Body"])["key"] for m in _receive_all(sqs, url)]
    assert sorted(sent) == sorted(f"ok-{i}" for i in range(12))
    [refused] = failed.value.failed
    assert refused in str(failed.value)
    assert "InvalidParameterValue" in failed.value.failed[refused]


def test_fifo_ids_come_from_the_key_and_the_meta(
    sqs_server: SqsServer, sqs: Any, registry: Registry
) -> None:
    url = sqs_server.new_queue(fifo=True)
    long_key = "k" * 200
    with Producer(_settings(sqs_server, url), registry, sqs_client=sqs) as producer:
        producer.enqueue("book", {"slot": "1"}, key="plain", meta={"conversation_id": "conv-7"})
        producer.enqueue("book", {"slot": "2"}, key=long_key, meta={"group": "g 1"})
        producer.enqueue("book", {"slot": "3"}, key="no-meta")
    got = {
        json.loads(m["Body"])["key"]: (
            m["Attributes"]["MessageDeduplicationId"],
            m["Attributes"]["MessageGroupId"],
        )
        for m in _receive_all(sqs, url)
    }
    assert got["plain"] == ("plain", "conv-7")
    assert got[long_key] == (fifo_id(long_key), fifo_id("g 1"))  # a space: hashed
    assert len(got[long_key][0]) == 64
    assert got["no-meta"] == ("no-meta", "book")


def test_fifo_id_and_group_rules() -> None:
    assert fifo_id("abc-1:2.3") == "abc-1:2.3"
    assert fifo_id("x" * 128) == "x" * 128
    assert len(fifo_id("x" * 129)) == 64
    assert len(fifo_id("naïve")) == 64  # outside ASCII punctuation and letters
    intent = Intent.create("t", {}, meta={"group": "", "conversation_id": 42})
    assert group_id(intent) == "42"


def test_send_raw_resends_a_body_exactly(sqs_server: SqsServer, sqs: Any) -> None:
    url = sqs_server.new_queue()
    fifo_url = sqs_server.new_queue(fifo=True)
    body = b'{"not": "an intent",  "spacing":   "kept"}'
    envelope = Intent.create("book", {"slot": "5"}, key="replayed").to_json()
    with Producer(_settings(sqs_server, url), sqs_client=sqs) as producer:
        producer.send_raw(body)
        # A replay to a FIFO queue is not swallowed by the key's 5-minute window.
        producer.send_raw(envelope, queue=fifo_url)
        producer.send_raw(envelope, queue=fifo_url)
        with pytest.raises(InvalidIntent):
            producer.send_raw(b"\xff\xfe not text")
    assert [m["Body"].encode() for m in _receive_all(sqs, url)] == [body]
    replays = _receive_all(sqs, fifo_url)
    assert [m["Body"].encode() for m in replays] == [envelope, envelope]
    assert {m["Attributes"]["MessageGroupId"] for m in replays} == {"book"}
