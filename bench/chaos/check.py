"""What a chaos run must end with, checked against the effects table and the DLQ."""

from __future__ import annotations

import hashlib
import itertools
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos.fleet import Kill
from bench.chaos.plan import Expected, Message, Plan
from bench.chaos.tools import Effects, Row
from intentq.consumers.celery.publish import RAW_NAMESPACE
from intentq.dlq.base import DeadLetter, DeadLetterStore
from intentq.dlq.replay import Action, ReplaySummary

_SHOW = 5  # keys named in a failed check's detail
# The executor's line when a tool ran but its completion could not be recorded in time.
_UNRECORDED = re.compile(rb"\S+?:(\S+) ran but could not be recorded")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Tally:
    """The tables after a phase: effect rows, transient failures, attempts, letters."""

    effects: Counter[str]
    transient: Counter[str]
    attempts: dict[str, int]
    letters: list[DeadLetter] = field(default_factory=list)
    runs: dict[str, list[Row]] = field(default_factory=dict)  # effect rows per key

    @classmethod
    def read(cls, fx: Effects, dlq: DeadLetterStore) -> Tally:
        effects: Counter[str] = Counter()
        transient: Counter[str] = Counter()
        attempts: dict[str, int] = {}
        runs: dict[str, list[Row]] = {}
        for row in fx.rows():
            if row.kind == "effect":
                effects[row.key] += 1
                attempts[row.key] = max(attempts.get(row.key, 0), row.attempt)
                runs.setdefault(row.key, []).append(row)
            elif row.kind == "transient":
                transient[row.key] += 1
        return cls(effects, transient, attempts, list(dlq.iter()), runs)

    def letters_by_match(self) -> dict[str | bytes, list[DeadLetter]]:
        out: dict[str | bytes, list[DeadLetter]] = {}
        for letter in self.letters:
            out.setdefault(letter.key if letter.key else letter.body, []).append(letter)
        return out


def _keys(keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def crash_window(runs: list[Row], kills: list[Kill], lease: float) -> bool:
    """Every run but the last was cut off by a SIGKILL after its side effect, before its
    completion record, and the next run took over with a higher attempt.

    No store can close that window for a side effect outside its own transaction: the
    killed worker cannot say whether it got as far as the effect. Transactional tools can.
    """
    for run, rerun in itertools.pairwise(runs):
        if rerun.attempt <= run.attempt:
            return False
        # The row's time is the database's: an INSERT sent just before the kill is still
        # executed, and stamped, a moment after it.
        if not any(run.pid in k.pids and -1 <= k.at - run.at <= lease + 2 for k in kills):
            return False
    return True


def unrecorded(workdir: Path) -> set[str]:
    """Keys whose worker ran the tool but gave up recording it (the store was out too long):
    a re-run of those is the outage's doing, never excused as a kill's."""
    keys: set[str] = set()
    for log in workdir.glob("worker-*.log"):
        keys.update(m.decode() for m in _UNRECORDED.findall(log.read_bytes()))
    return keys


def exactly_once(
    keys: list[str],
    t: Tally,
    what: str,
    kills: list[Kill] | None = None,
    lease: float = 0.0,
    undelivered: set[str | bytes] = frozenset(),  # type: ignore[assignment]
    gave_up: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[Check], int]:
    """Checks that each key ran once; with ``kills``, re-runs in the crash window are
    counted apart (returned) instead of failing. Keys the broker never delivered are
    left to ``delivery_check``."""
    doubles = [k for k in keys if t.effects[k] > 1]
    lost = [k for k in keys if t.effects[k] == 0 and k not in undelivered]
    windowed = [
        k
        for k in doubles
        if kills is not None and k not in gave_up and crash_window(t.runs[k], kills, lease)
    ]
    others = [k for k in doubles if k not in set(windowed)]
    name = f"every {what} ran exactly once"
    if kills is not None:
        name = f"no {what} ran twice, but for a SIGKILL between its effect and its record"
    checks = [
        Check(name, not others, f"{len(others)} ran more than once: {_keys(others)}"),
        Check(
            f"no {what} lost once a worker received it",
            not lost,
            f"{len(lost)} never ran: {_keys(lost)}",
        ),
    ]
    return checks, len(windowed)


def task_id(message: Message) -> str:
    """The id a worker logs a message under: the intent id, or the raw task's id."""
    if message.intent is not None:
        return message.intent.intent_id
    return str(uuid.uuid5(RAW_NAMESPACE, hashlib.sha256(message.raw).hexdigest()))


def undelivered(plan: Plan, received: set[str] | None) -> set[str | bytes]:
    """Keys (or bodies) none of whose messages any worker ever logged as received."""
    if received is None:
        return set()
    ids: dict[str | bytes, set[str]] = {}
    for message in plan.messages:
        match = message.intent.key if message.intent is not None else message.raw
        ids.setdefault(match, set()).add(task_id(message))
    return {match for match, mine in ids.items() if not mine & received}


def delivery_check(plan: Plan, t: Tally, missed: set[str | bytes]) -> Check:
    """The broker's own promise: every message reaches some worker at least once."""
    gone = [k for k in plan.valid_keys if not t.effects[k] and k in missed]
    gone += [
        e.kind for e in plan.poison if e.match in missed and e.match not in t.letters_by_match()
    ]
    return Check(
        "the broker delivered every message at least once",
        not gone,
        f"{len(gone)} lost in the broker: a message sent (or a retry) that no worker ever got, "
        f"or one a SIGKILLed worker held that was never delivered again (kombu's Redis "
        f"transport pops a message before recording it as unacknowledged): {_keys(gone)}",
    )


def letters_match(
    expected: list[Expected],
    t: Tally,
    what: str,
    undelivered: set[str | bytes] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[Check], dict[str, int]]:
    """Each expected letter present with its reason, and nothing else in the DLQ."""
    wanted = {e.match: e for e in expected}
    found = t.letters_by_match()
    missing = [e for e in expected if e.match not in found and e.match not in undelivered]
    unexpected = [m for m in found if m not in wanted]
    wrong = [
        f"{letter.reason} for {wanted[m].kind} (want {wanted[m].reason})"
        for m, letters in found.items()
        if m in wanted
        for letter in letters
        if letter.reason != wanted[m].reason
    ]
    extra = sum(len(letters) - 1 for m, letters in found.items() if m in wanted)
    checks = [
        Check(
            f"dead letters are exactly {what}",
            not missing and not unexpected,
            "; ".join(
                part
                for part in (
                    f"{len(missing)} missing ({', '.join(e.kind for e in missing[:_SHOW])})"
                    if missing
                    else "",
                    f"{len(unexpected)} unexpected: {_show(unexpected)}" if unexpected else "",
                )
                if part
            ),
        ),
        Check("every dead letter has the right reason", not wrong, "; ".join(wrong[:_SHOW])),
    ]
    return checks, {"letters": len(t.letters), "duplicate_letters": extra}


def _show(matches: list[str | bytes]) -> str:
    return ", ".join(m if isinstance(m, str) else repr(m[:40]) for m in matches[:_SHOW])


def check_run(
    plan: Plan,
    t: Tally,
    kills: list[Kill] | None,
    lease: float,
    received: set[str] | None,
    gave_up: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[Check], dict[str, Any]]:
    """After the chaos: valid intents once each, nothing lost, poison in the DLQ, never run.

    ``kills`` is given for a tool whose effect is outside the store's transaction;
    ``received``, the task ids workers logged, for a broker that may lose messages.
    """
    missed = undelivered(plan, received)
    checks, windowed = exactly_once(
        plan.valid_keys, t, "valid intent", kills, lease, missed, gave_up
    )
    checks.append(delivery_check(plan, t, missed))
    poisoned = [e.key for e in plan.poison if e.key is not None and t.effects[e.key]]
    checks.append(
        Check("no poison ran", not poisoned, f"effects for poison keys: {_keys(poisoned)}")
    )
    valid = set(plan.valid_keys)
    stray = [k for k in t.effects if k not in valid and k not in set(plan.fixable_keys)]
    checks.append(Check("no effect outside the plan", not stray, _keys(stray)))
    letter_checks, letter_stats = letters_match(plan.poison, t, "the poison set", missed)
    checks += letter_checks
    sent_valid = sum(
        1
        for m in plan.messages
        if m.intent is not None and m.kind in ("valid", "transient") and m.intent.key in valid
    )
    executions = sum(t.effects[k] for k in plan.valid_keys)
    stats = {
        "valid_intents": len(plan.valid_keys),
        "executions": executions,
        "lost": sum(1 for k in plan.valid_keys if t.effects[k] == 0 and k not in missed),
        "lost_by_broker": sum(1 for k in plan.valid_keys if t.effects[k] == 0 and k in missed),
        "doubles": sum(1 for k in plan.valid_keys if t.effects[k] > 1),
        "crash_window_reruns": windowed,
        "completions_given_up": len(gave_up & valid),
        "duplicates_sent": plan.duplicates,
        "duplicates_suppressed": sent_valid - executions,
        "retries": sum(t.transient[k] for k in plan.valid_keys),
        "takeovers": sum(
            max(0, t.attempts.get(k, 1) - 1 - t.transient[k])
            for k in plan.valid_keys
            if t.effects[k] == 1
        ),
        "poison": len(plan.poison),
        **letter_stats,
    }
    return checks, stats


def check_replay(
    plan: Plan,
    t: Tally,
    summary: ReplaySummary,
    malformed_letters: int,
    kills: list[Kill] | None,
    lease: float,
    gave_up: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[Check], dict[str, Any]]:
    """After the fix and the replay: the fixed poison ran once, the rest is still dead."""
    checks, _ = exactly_once(plan.fixable_keys, t, "fixed intent (replayed)")
    again, _ = exactly_once(
        plan.valid_keys, t, "valid intent, after the replay,", kills, lease, gave_up=gave_up
    )
    checks.append(again[0])
    letter_checks, stats = letters_match(plan.unfixable, t, "the unfixable poison")
    checks += letter_checks
    refused = [r for r in summary.results if r.action is Action.REFUSED]
    checks.append(
        Check(
            "replay refused the malformed letters and kept them",
            len(refused) == malformed_letters and summary.failed == 0,
            f"refused {len(refused)} of {malformed_letters}, failed {summary.failed}",
        )
    )
    return checks, {
        "replayed": summary.replayed,
        "refused": summary.refused,
        "skipped": summary.skipped,
        "failed": summary.failed,
        "fixed_executions": sum(t.effects[k] for k in plan.fixable_keys),
        **{f"after_{k}": v for k, v in stats.items()},
    }
