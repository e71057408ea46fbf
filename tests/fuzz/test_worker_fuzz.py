"""Arbitrary bodies through a real SQS worker process: each one ends as a dead letter with a
named reason (or runs once, if it happens to be a valid intent); the worker never dies; and
valid intents sent in between all run exactly once.

SQS bodies are text (XML characters only: no NUL, no lone surrogates, no U+FFFE), so
"random bytes" here are random bytes read as Latin-1 and kept to what SQS accepts; bytes
that are not UTF-8 cannot be sent at all, and the producer refuses them before SQS does.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.chaos.tools import Effects, build_registry
from bench.chaos.world import WorkerProc
from intentq import InvalidIntent, Producer
from intentq.config import Settings
from intentq.dedup.memory import MemoryDedupStore
from intentq.errors import TransportError
from intentq.executor import Executor
from intentq.intent import Intent
from intentq.outcome import Delivery, SendToDLQ
from tests.chaos.harness import Rig
from tests.support.net import wait_until

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
EXPECTED: dict[str, dict[str, str]] = json.loads((CORPUS / "expected.json").read_text())
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

pytestmark = pytest.mark.timeout(240)


def sqs_char(c: str) -> bool:
    """What SQS takes in a message body (the XML 1.0 character set)."""
    o = ord(c)
    return o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or o >= 0x10000


def sendable(text: str) -> str:
    return "".join(c for c in text if sqs_char(c))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
noise = st.binary(min_size=1, max_size=200).map(lambda b: sendable(b.decode("latin-1")))
texts = st.text(st.characters(codec="utf-8").filter(sqs_char), min_size=1, max_size=200)
random_json = json_values.map(json.dumps)


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> str:
    """A valid ``book_slot`` envelope with one to three things broken (or, rarely, none)."""
    key = str(draw(st.uuids()))
    envelope: dict[str, Any] = Intent.create("book_slot", {"slot": "15:00"}, key=key).as_dict()
    for op in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        if op == "drop" and envelope:
            del envelope[draw(st.sampled_from(sorted(envelope)))]
        elif op == "retype":
            envelope[draw(st.sampled_from(sorted(envelope) or ["v"]))] = draw(json_values)
        elif op == "tool":
            envelope["tool"] = draw(st.sampled_from(["book_slot", "", "nope", "a:b"]) | texts)
        elif op == "args":
            envelope["args"] = draw(json_values | st.just({"slot": 7}) | st.just({}))
        elif op == "key":
            envelope["key"] = draw(st.text(max_size=210) | st.integers())
        elif op == "version":
            envelope["v"] = draw(st.sampled_from([0, 2, "1", True, None, 1.0]))
        elif op == "extra":
            envelope[draw(st.text(max_size=8))] = draw(json_values)
    text = json.dumps(envelope)
    if draw(st.integers(0, 4)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text or "{"


MUTATIONS = ["drop", "retype", "tool", "args", "key", "version", "extra", "none"]


@dataclass
class Oracle:
    """What the worker must do with each body, predicted by an executor on a memory store."""

    executor: Executor = field(
        default_factory=lambda: Executor(
            build_registry(Effects("postgresql://unused", "unused")), MemoryDedupStore()
        )
    )
    fingerprints: dict[str, str] = field(default_factory=dict)  # key -> first fingerprint
    letters: Counter[bytes] = field(default_factory=Counter)  # body -> letters expected
    reasons: dict[bytes, tuple[str, str]] = field(default_factory=dict)
    runs: Counter[str] = field(default_factory=Counter)  # key -> runs expected

    def expect(self, body: bytes) -> None:
        job = self.executor.prepare(body, Delivery("sqs", "fuzz", "m"))
        if isinstance(job, SendToDLQ):
            self._letter(body, str(job.letter.reason), str(job.letter.error_type))
            return
        first = self.fingerprints.setdefault(job.key, job.fingerprint)
        if first != job.fingerprint:
            self._letter(body, "key_reuse_mismatch", "KeyReuseMismatch")
        elif not self.runs[job.key]:
            self.runs[job.key] = 1  # a valid intent: it runs once, later copies are cached

    def _letter(self, body: bytes, reason: str, error_type: str) -> None:
        self.letters[body] += 1
        self.reasons[body] = (reason, error_type)


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return Oracle()


def send_and_check(fuzz: tuple[Rig, WorkerProc, str], oracle: Oracle, bodies: list[str]) -> None:
    """Send ``bodies`` and one valid intent; wait for every outcome; check them all."""
    world, worker, queue = fuzz
    key = f"valid-{uuid.uuid4()}"
    valid = Intent.create("book_slot", {"slot": "09:00"}, key=key).to_json().decode()
    settings_ = Settings(
        transport="sqs", sqs_endpoint_url=world.settings["sqs_endpoint_url"], sqs_queue=queue
    )
    with Producer(settings_) as producer:
        for body in [*bodies, valid]:
            oracle.expect(body.encode("utf-8"))
            producer.send_raw(body.encode("utf-8"))

    def letters() -> dict[bytes, list[tuple[str, str]]]:
        out: dict[bytes, list[tuple[str, str]]] = {}
        for letter in world.dlq.iter():
            out.setdefault(letter.body, []).append((str(letter.reason), str(letter.error_type)))
        return out

    def settled() -> bool:
        found, runs = letters(), world.fx.counts("effect")
        return all(len(found.get(b, [])) >= n for b, n in oracle.letters.items()) and all(
            runs[k] >= n for k, n in oracle.runs.items()
        )

    wait_until(settled, timeout=60, interval=0.1, what=f"the outcomes of {bodies!r:.200}")
    found = letters()
    assert worker.poll() is None, worker.log_tail()
    for body, n in oracle.letters.items():
        assert [oracle.reasons[body]] * n == found[body], body
    assert set(found) <= set(oracle.letters), "a letter for a body that should have run"
    assert world.fx.counts("effect") == oracle.runs  # valid ones exactly once, nothing else


@FUZZ
@given(bodies=st.lists(noise.filter(bool) | texts, min_size=1, max_size=3))
def test_random_text_is_dead_lettered_with_a_reason(
    fuzz_rig: tuple[Rig, WorkerProc, str], oracle: Oracle, bodies: list[str]
) -> None:
    send_and_check(fuzz_rig, oracle, bodies)


@FUZZ
@given(bodies=st.lists(random_json, min_size=1, max_size=3))
def test_random_json_is_dead_lettered_with_a_reason(
    fuzz_rig: tuple[Rig, WorkerProc, str], oracle: Oracle, bodies: list[str]
) -> None:
    send_and_check(fuzz_rig, oracle, bodies)


@FUZZ
@given(bodies=st.lists(mutated_envelopes(), min_size=1, max_size=3))
def test_mutated_envelopes_run_once_or_are_dead_lettered(
    fuzz_rig: tuple[Rig, WorkerProc, str], oracle: Oracle, bodies: list[str]
) -> None:
    send_and_check(fuzz_rig, oracle, bodies)


def test_corpus_through_the_worker(fuzz_rig: tuple[Rig, WorkerProc, str], oracle: Oracle) -> None:
    """Every corpus file SQS can carry ends with the reason expected.json names; the rest
    cannot be sent at all."""
    sent, refused = [], []
    for name in sorted(EXPECTED):
        raw = (CORPUS / name).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            refused.append(name)
            continue
        if not text or not all(sqs_char(c) for c in text):
            refused.append(name)
            continue
        sent.append((name, text))
    send_and_check(fuzz_rig, oracle, [text for _, text in sent])
    for name, text in sent:
        assert oracle.reasons[text.encode()] == (
            EXPECTED[name]["reason"],
            EXPECTED[name]["error_type"],
        ), name
    world, _, queue = fuzz_rig
    settings_ = Settings(
        transport="sqs", sqs_endpoint_url=world.settings["sqs_endpoint_url"], sqs_queue=queue
    )
    with Producer(settings_) as producer:
        for name in refused:
            raw = (CORPUS / name).read_bytes()
            # Not UTF-8: the producer refuses; empty, or characters outside XML: SQS does.
            with pytest.raises((InvalidIntent, TransportError)):
                producer.send_raw(raw)
    assert sorted(refused) == ["empty.bin", "latin1.bin", "pickle.bin", "utf16.bin"]
