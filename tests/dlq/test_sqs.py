"""The SQS DLQ on a real (local) SQS server: redriven messages, scans, attributes and limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from intentq.dlq import DeadLetter, LetterFilter, Reason
from intentq.dlq.replay import replay
from intentq.dlq.sqs.codec import ENCODING_ATTR, META_ATTR, REDRIVE_ERROR_TYPE, Encoded
from intentq.dlq.sqs.scan import Held
from intentq.dlq.sqs.store import SqsDeadLetterStore
from intentq.errors import DLQError
from intentq.intent import Intent, new_intent_id
from tests.dlq.conftest import open_sqs
from tests.support.net import wait_until
from tests.support.services import SqsServer


@pytest.fixture
def sqs(sqs_server: SqsServer, unique: str) -> Iterator[SqsDeadLetterStore]:
    store = open_sqs(sqs_server, f"dlq-{unique}")
    store.create_schema()
    try:
        yield store
    finally:
        store.client.delete_queue(QueueUrl=store.queue_url)
        store.close()


def raw_messages(store: SqsDeadLetterStore) -> list[dict[str, Any]]:
    """Every message as SQS holds it, received by plain boto3 calls and given straight back."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = store.client.receive_message(
            QueueUrl=store.queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=30,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            break
        messages.extend(dict(m) for m in batch)
    for m in messages:
        store.client.change_message_visibility(
            QueueUrl=store.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    return messages


def redrive_into(server: SqsServer, store: SqsDeadLetterStore, bodies: list[str]) -> list[str]:
    """Send ``bodies`` to a source queue whose redrive policy moves them to ``store``'s queue
    after one receive; returns their SQS MessageIds."""
    client = store.client
    arn = client.get_queue_attributes(QueueUrl=store.queue_url, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "1"}
    source = server.new_queue(RedrivePolicy=json.dumps(policy))
    ids = [client.send_message(QueueUrl=source, MessageBody=b)["MessageId"] for b in bodies]

    def moved() -> bool:
        # Receiving past maxReceiveCount is what makes SQS move a message.
        client.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return store.approximate_count() == len(bodies)

    wait_until(moved, timeout=10, what="the redrive policy to move the messages")
    client.delete_queue(QueueUrl=source)
    return ids


def test_a_redriven_message_lists_as_an_exhausted_letter(
    sqs_server: SqsServer, sqs: SqsDeadLetterStore
) -> None:
    intent = Intent.create("book_slot", {"slot": "15:00"}, key="k-1")
    plain = "a plain body, not an envelope"
    envelope_id, plain_id = redrive_into(sqs_server, sqs, [intent.to_json().decode(), plain])

    letters = {x.id: x for x in sqs.list().letters}

    assert set(letters) == {envelope_id, plain_id}
    moved = letters[envelope_id]
    assert moved.body == intent.to_json()
    assert (moved.reason, moved.error_type) == (Reason.EXHAUSTED, REDRIVE_ERROR_TYPE)
    assert (moved.tool, moved.key, moved.intent_id) == ("book_slot", "k-1", intent.intent_id)
    assert moved.dead_at is not None and moved.dead_at.utcoffset() is not None
    other = letters[plain_id]
    assert other.body == plain.encode()
    assert (other.tool, other.key) == (None, None)
    assert sqs.count(LetterFilter(reason=Reason.EXHAUSTED, tool="book_slot")) == 1


def test_a_redriven_letter_is_found_by_its_message_id_and_keeps_it_when_marked(
    sqs_server: SqsServer, sqs: SqsDeadLetterStore
) -> None:
    (message_id,) = redrive_into(sqs_server, sqs, ["raw body"])
    assert sqs.get(message_id).body == b"raw body"

    marked = sqs.mark_replayed(message_id)

    assert (marked.id, marked.replay_count) == (message_id, 1)
    assert sqs.get(message_id) == marked
    assert [m["MessageAttributes"]["intentq-id"]["StringValue"] for m in raw_messages(sqs)] == [
        message_id
    ]
    assert sqs.delete(message_id) is True
    assert sqs.count() == 0


def test_listing_consumes_nothing_and_hides_nothing(sqs: SqsDeadLetterStore) -> None:
    for _ in range(25):
        sqs.put(DeadLetter(id="", body=b"{}", reason=Reason.POISON))

    assert sqs.count() == 25
    assert len(sqs.list(limit=5).letters) == 5

    # Given back at once: a plain receive right after the scans sees every message.
    assert len(raw_messages(sqs)) == 25


def test_a_letter_is_the_raw_body_plus_at_most_five_attributes(sqs: SqsDeadLetterStore) -> None:
    body = Intent.create("book_slot", {"slot": "15:00"}).to_json()
    sqs.put(DeadLetter(id="", body=body, reason=Reason.SCHEMA, tool="book_slot", key="k"))
    sqs.put(DeadLetter(id="", body=b"\xff\xfe", reason=Reason.POISON))

    text, binary = raw_messages(sqs)

    # The body as sent: SQS's own redrive (or a console move) puts back what a worker reads.
    assert text["Body"] == body.decode()
    assert set(text["MessageAttributes"]) == {
        "intentq-id",
        "intentq-reason",
        "intentq-tool",
        META_ATTR,
    }
    assert binary["Body"] == "//4="
    assert binary["MessageAttributes"][ENCODING_ATTR]["StringValue"] == "base64"
    assert len(binary["MessageAttributes"]) <= 10


def test_a_huge_traceback_is_cut_to_fit_one_message(sqs: SqsDeadLetterStore) -> None:
    tail = "ValueError: the last line names the error\n"
    traceback = "  File 'x.py', line 1, in f\n" * 80_000 + tail  # about 2.3 MB
    body = b"x" * 300_000
    letter_id = sqs.put(DeadLetter(id="", body=body, reason=Reason.PERMANENT, traceback=traceback))

    got = sqs.get(letter_id)
    (message,) = raw_messages(sqs)

    assert got.body == body
    assert got.traceback is not None and got.traceback.endswith(tail)
    assert got.traceback.startswith("[... ")
    assert 600_000 < len(got.traceback) < len(traceback)
    size = Encoded(
        message["Body"], {k: dict(v) for k, v in message["MessageAttributes"].items()}
    ).size
    assert size <= 1024 * 1024


def test_a_body_too_big_for_sqs_is_refused_and_nothing_is_sent(sqs: SqsDeadLetterStore) -> None:
    with pytest.raises(DLQError, match="does not fit in an SQS message"):
        sqs.put(DeadLetter(id="", body=b"\xff" * 900_000, reason=Reason.POISON))
    assert sqs.count() == 0


def test_a_leftover_copy_from_an_interrupted_mark_is_listed_once(sqs: SqsDeadLetterStore) -> None:
    letter_id = sqs.put(DeadLetter(id="", body=b"{}", reason=Reason.POISON))
    # What a process killed between the new copy's send and the old copy's delete leaves.
    newer = replace(sqs.get(letter_id), replay_count=1)
    sqs._send(newer)

    assert [(x.id, x.replay_count) for x in sqs.list().letters] == [(letter_id, 1)]
    assert sqs.count() == 1
    assert sqs.get(letter_id).replay_count == 1
    assert sqs.delete_many(LetterFilter(ids=(letter_id,))) == 1
    assert raw_messages(sqs) == []


def test_a_batch_entry_sqs_refuses_is_reported(sqs: SqsDeadLetterStore) -> None:
    letter_id = sqs.put(DeadLetter(id="", body=b"{}", reason=Reason.POISON))
    held = sqs.scanner.scan()
    stale = [Held(h.letter, h.message_id, "not-a-receipt-handle") for h in held]

    with pytest.raises(DLQError, match=f"SQS kept 1 of 1 letters.*{letter_id}"):
        sqs.scanner.delete(stale)
    sqs.scanner.give_back(held)
    assert sqs.count() == 1


def test_a_missing_queue_says_to_create_it(sqs_server: SqsServer, unique: str) -> None:
    store = open_sqs(sqs_server, f"never-made-{unique}")
    try:
        with pytest.raises(DLQError, match="does not exist: run `intentq init`") as info:
            store.count()
        assert info.value.__cause__ is not None
    finally:
        store.close()


def test_a_cursor_from_another_backend_is_refused(sqs: SqsDeadLetterStore) -> None:
    with pytest.raises(DLQError, match="not a cursor"):
        sqs.list(cursor=new_intent_id())


def test_a_fifo_dlq_keeps_letters_and_their_replay_marks(
    sqs_server: SqsServer, unique: str
) -> None:
    store = open_sqs(sqs_server, f"dlq-{unique}.fifo")
    store.create_schema()
    try:
        ids = [store.put(DeadLetter(id="", body=b"{}", reason=Reason.POISON)) for _ in range(3)]
        # Two marks within SQS's five-minute dedup window: each copy must still be accepted.
        store.mark_replayed(ids[1])
        store.mark_replayed(ids[1])

        assert [(x.id, x.replay_count) for x in store.list().letters] == [
            (ids[0], 0),
            (ids[1], 2),
            (ids[2], 0),
        ]
    finally:
        store.client.delete_queue(QueueUrl=store.queue_url)
        store.close()


def test_an_sqs_url_names_the_queue_and_its_endpoint(sqs_server: SqsServer, unique: str) -> None:
    url = sqs_server.new_queue(f"dlq-{unique}")
    store = SqsDeadLetterStore.from_url(
        "sqs+" + url, region="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    try:
        assert (store.queue, store.queue_url) == (f"dlq-{unique}", url)
        letter_id = store.put(DeadLetter(id="", body=b"{}", reason=Reason.POISON))
        assert store.get(letter_id).id == letter_id
    finally:
        store.client.delete_queue(QueueUrl=url)
        store.close()


# -- iterations hold what they read ------------------------------------------------------------


class CallCounter:
    """Counts the SQS API calls a real client makes (botocore's own event hooks)."""

    def __init__(self, store: SqsDeadLetterStore) -> None:
        self.calls: dict[str, int] = {}
        store.client.meta.events.register("before-call.sqs", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1


def put_envelopes(store: SqsDeadLetterStore, n: int) -> list[str]:
    return [
        store.put(
            DeadLetter(
                id="",
                body=Intent.create("t", {"i": i}).to_json(),
                reason=Reason.PERMANENT,
                tool="t",
            )
        )
        for i in range(n)
    ]


def test_an_iteration_hides_its_letters_until_it_ends(sqs: SqsDeadLetterStore) -> None:
    put_envelopes(sqs, 12)
    sqs.put(DeadLetter(id="", body=b"{}", reason=Reason.POISON, tool="other"))

    letters = sqs.iter(LetterFilter(tool="t"))
    next(letters)

    # Held: another reader sees only the letter the filter left out.
    assert [m["Body"] for m in raw_messages(sqs)] == ["{}"]
    letters.close()
    assert len(raw_messages(sqs)) == 13


@pytest.mark.parametrize("keep", [False, True], ids=["remove", "mark"])
def test_a_replay_from_sqs_receives_each_message_once(sqs: SqsDeadLetterStore, keep: bool) -> None:
    ids = put_envelopes(sqs, 25)
    counter = CallCounter(sqs)
    sent: list[bytes] = []

    summary = replay(sqs, None, sqs.iter(), lambda letter, to: sent.append(letter.body), keep=keep)

    assert summary.replayed == 25 and len(sent) == 25
    # One scan: three full batches and the empty answer that ends it; no scan per letter.
    assert counter.calls["ReceiveMessage"] == 4
    assert counter.calls["DeleteMessageBatch"] == 25
    assert counter.calls.get("SendMessage", 0) == (25 if keep else 0)
    if keep:
        assert [(x.id, x.replay_count) for x in sqs.list().letters] == [(i, 1) for i in ids]
    else:
        assert sqs.count() == 0


def test_a_letter_whose_hold_lapsed_is_found_afresh(sqs_server: SqsServer, unique: str) -> None:
    store = open_sqs(sqs_server, f"dlq-{unique}")
    store.scanner.visibility = 1  # lapses at once, as after a long stall
    store.create_schema()
    try:
        (letter_id,) = put_envelopes(store, 1)
        letters = store.iter()
        assert next(letters).id == letter_id

        # Another reader receives the message once it is visible again: the held receipt
        # handle is no longer the current one.
        def received_elsewhere() -> bool:
            answer = store.client.receive_message(QueueUrl=store.queue_url, VisibilityTimeout=0)
            return bool(answer.get("Messages"))

        wait_until(received_elsewhere, timeout=10, what="the held message to come back")
        counter = CallCounter(store)

        assert store.delete(letter_id) is True
        assert counter.calls["ReceiveMessage"] >= 1  # scanned for it: the old handle was not used
        letters.close()
        assert raw_messages(store) == []
    finally:
        store.client.delete_queue(QueueUrl=store.queue_url)
        store.close()


def test_a_limited_replay_gives_the_rest_back_at_once(sqs: SqsDeadLetterStore) -> None:
    ids = put_envelopes(sqs, 8)
    letters = sqs.iter()  # still referenced here: only replay's own close can release it

    summary = replay(sqs, None, letters, lambda letter, to: None, limit=3)

    assert [r.letter_id for r in summary.results] == ids[:3]
    assert len(raw_messages(sqs)) == 5
