"""The workload of a chaos run: valid intents, duplicates, poison, in the order they are sent.

Valid intents run the ``effect`` tool (some fail transiently first). Poison comes in four
kinds: a malformed body, an unknown tool, arguments failing the schema, and the ``fixable``
tool, which fails permanently until the operator's fix. Duplicates are sent later in the
stream than their original: half are the same message again (a broker redelivery, a
producer retry), half a new envelope under the same key (an agent that restarted).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from intentq.dlq.base import Reason
from intentq.intent import Intent

KINDS = ("malformed", "unknown_tool", "bad_args", "fixable")
REASONS = {
    "malformed": Reason.POISON,
    "unknown_tool": Reason.UNKNOWN_TOOL,
    "bad_args": Reason.SCHEMA,
    "fixable": Reason.PERMANENT,
}
UNKNOWN_TOOL = "no_such_tool"


@dataclass(frozen=True)
class Message:
    """One message to send: an intent, or a raw body (malformed poison)."""

    kind: str  # "valid", "transient", or one of KINDS
    intent: Intent | None
    raw: bytes = b""
    duplicate: bool = False

    @property
    def body(self) -> bytes:
        return self.intent.to_json() if self.intent is not None else self.raw


@dataclass(frozen=True)
class Expected:
    """A dead letter the run must end with: matched by key, or by body when there is none."""

    kind: str
    reason: Reason
    key: str | None
    body: bytes

    @property
    def match(self) -> str | bytes:
        return self.key if self.key is not None else self.body


@dataclass
class Plan:
    messages: list[Message]
    valid_keys: list[str]  # the effect tool's keys: each must run exactly once
    transient: dict[str, int]  # key -> transient failures it starts with
    poison: list[Expected]  # one per poison message (duplicates of fixable ones excluded)
    duplicates: int
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def fixable_keys(self) -> list[str]:
        return [p.key for p in self.poison if p.kind == "fixable" and p.key is not None]

    @property
    def unfixable(self) -> list[Expected]:
        return [p for p in self.poison if p.kind != "fixable"]


def make_plan(
    intents: int,
    dup_ratio: float,
    poison_ratio: float,
    transient_ratio: float,
    rng: random.Random,
) -> Plan:
    """``intents`` originals (poison at least one of each kind when the ratio is not 0)."""
    n_poison = 0 if poison_ratio <= 0 else max(len(KINDS), round(intents * poison_ratio))
    n_poison = min(n_poison, intents)
    poison_at = set(rng.sample(range(intents), n_poison))
    originals: list[Message] = []
    valid_keys: list[str] = []
    transient: dict[str, int] = {}
    poison: list[Expected] = []
    kinds: Counter[str] = Counter()
    for i in range(intents):
        if i in poison_at:
            kind = KINDS[len(poison) % len(KINDS)]
            message = _poison(kind, i)
            poison.append(
                Expected(
                    kind,
                    REASONS[kind],
                    message.intent.key if message.intent is not None else None,
                    message.body,
                )
            )
        elif rng.random() < transient_ratio:
            kind, fails = "transient", rng.choice((1, 2))
            message = Message(kind, Intent.create("effect", {"n": i, "fail_times": fails}))
            transient[_key(message)] = fails
            valid_keys.append(_key(message))
        else:
            kind = "valid"
            message = Message(kind, Intent.create("effect", {"n": i}))
            valid_keys.append(_key(message))
        kinds[kind] += 1
        originals.append(message)

    # Only keyed intents that run a tool get duplicates: a copy of a malformed body, say,
    # would be a second poison message of its own, not a duplicate.
    dupable = [i for i, m in enumerate(originals) if m.kind in ("valid", "transient", "fixable")]
    n_dups = min(len(dupable), round(len(dupable) * dup_ratio))
    placed: list[tuple[float, Message]] = [(float(i), m) for i, m in enumerate(originals)]
    for i in rng.sample(dupable, n_dups):
        original = originals[i]
        assert original.intent is not None
        if rng.random() < 0.5:
            copy = Message(original.kind, original.intent, duplicate=True)
        else:
            again = Intent.create(original.intent.tool, original.intent.args, original.intent.key)
            copy = Message(original.kind, again, duplicate=True)
        placed.append((rng.uniform(i, len(originals)), copy))
    placed.sort(key=lambda item: item[0])
    return Plan([m for _, m in placed], valid_keys, transient, poison, n_dups, kinds)


def _key(message: Message) -> str:
    assert message.intent is not None
    return message.intent.key


def _poison(kind: str, i: int) -> Message:
    if kind == "malformed":
        return Message(kind, None, raw=f'{{"v": 1, "intent_id": "broken-{i}", '.encode())
    if kind == "unknown_tool":
        return Message(kind, Intent.create(UNKNOWN_TOOL, {"n": i}))
    if kind == "bad_args":
        return Message(kind, Intent.create("effect", {"n": f"not a number {i}"}))
    return Message(kind, Intent.create("fixable", {"n": i}))
