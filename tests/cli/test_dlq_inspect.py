"""``dlq list``, ``dlq show``, ``dlq stats``: filters, tables, and JSON that parses."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from intentq.cli.exits import ExitCode
from intentq.dlq import DeadLetterStore, Reason
from tests.cli.conftest import Env, make_letter


@pytest.fixture
def seeded(dlq: DeadLetterStore) -> dict[str, str]:
    """Five letters: two tools, three reasons, two error types, ages from minutes to days."""
    letters = {
        "old_schema": make_letter("book_slot", reason=Reason.SCHEMA, age=timedelta(days=3)),
        "schema": make_letter("book_slot", reason=Reason.SCHEMA, age=timedelta(hours=2)),
        "exhausted": make_letter(
            "charge_card", reason=Reason.EXHAUSTED, error_type="TimeoutError",
            age=timedelta(minutes=30),
        ),
        "permanent": make_letter(
            "charge_card", reason=Reason.PERMANENT, error_type="ValueError",
            age=timedelta(minutes=5),
        ),
        "poison": make_letter(
            "book_slot", reason=Reason.POISON, error_type="InvalidIntent.malformed_json",
            body=b"\xff{not json", age=timedelta(minutes=1),
        ),
    }  # fmt: skip
    return {name: dlq.put(letter) for name, letter in letters.items()}


def listed(env: Env, *args: str) -> list[str]:
    ran = env.run("dlq", "list", "--json", *args)
    assert ran.code == 0, ran
    document = json.loads(ran.stdout)
    assert document["shown"] == len(document["letters"])
    return [letter["id"] for letter in document["letters"]]


def test_list_everything_oldest_first(env: Env, seeded: dict[str, str]) -> None:
    assert listed(env) == list(seeded.values())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--tool", "charge_card"], ["exhausted", "permanent"]),
        (["--reason", "schema"], ["old_schema", "schema"]),
        (["--error-type", "TimeoutError"], ["exhausted"]),
        (["--since", "1h"], ["exhausted", "permanent", "poison"]),
        (["--until", "1d"], ["old_schema"]),
        (["--since", "3h", "--until", "10m"], ["schema", "exhausted"]),
        (["--tool", "book_slot", "--since", "1d"], ["schema", "poison"]),
        (["--tool", "nobody"], []),
    ],
)
def test_list_filters(
    env: Env, seeded: dict[str, str], args: list[str], expected: list[str]
) -> None:
    assert listed(env, *args) == [seeded[name] for name in expected]


def test_list_since_an_iso_time(env: Env, seeded: dict[str, str], dlq: DeadLetterStore) -> None:
    cutoff = dlq.get(seeded["permanent"]).dead_at
    assert cutoff is not None
    assert listed(env, "--since", cutoff.isoformat()) == [seeded["permanent"], seeded["poison"]]


def test_list_limit_says_how_many_match(env: Env, seeded: dict[str, str]) -> None:
    ran = env.run("dlq", "list", "--json", "--limit", "2")
    document = json.loads(ran.stdout)
    assert [x["id"] for x in document["letters"]] == list(seeded.values())[:2]
    assert document["total"] == 5
    table = env.run("dlq", "list", "--limit", "2")
    assert "2 letter(s) (--limit 2; 5 match)" in table.stdout


def test_list_table_for_people(env: Env, seeded: dict[str, str]) -> None:
    ran = env.run("dlq", "list", "--reason", "exhausted")
    assert ran.code == 0
    assert seeded["exhausted"] in ran.stdout
    assert "charge_card" in ran.stdout and "TimeoutError" in ran.stdout
    assert seeded["schema"] not in ran.stdout


def test_show_json_has_everything(env: Env, seeded: dict[str, str]) -> None:
    ran = env.run("dlq", "show", seeded["schema"], "--json")
    assert ran.code == 0
    letter = json.loads(ran.stdout)
    assert letter["id"] == seeded["schema"]
    assert letter["reason"] == "schema"
    assert letter["body"]["tool"] == "book_slot"  # the envelope, decoded
    assert letter["body"]["key"] == letter["key"]
    assert "ValueError: boom" in letter["traceback"]


def test_show_undecodable_body_as_base64(env: Env, seeded: dict[str, str]) -> None:
    letter = json.loads(env.run("dlq", "show", seeded["poison"], "--json").stdout)
    assert "body" not in letter
    assert letter["body_base64"] == "/3tub3QganNvbg=="


def test_show_for_people(env: Env, seeded: dict[str, str]) -> None:
    ran = env.run("dlq", "show", seeded["exhausted"])
    assert ran.code == 0
    assert "charge_card" in ran.stdout
    assert "traceback" in ran.stdout and "ValueError: boom" in ran.stdout


def test_stats_counts_by_tool_and_reason(env: Env, seeded: dict[str, str]) -> None:
    ran = env.run("dlq", "stats", "--json")
    assert ran.code == 0
    stats = json.loads(ran.stdout)
    assert stats["total"] == 5
    assert stats["by_tool"] == {"book_slot": 3, "charge_card": 2}
    assert stats["by_reason"] == {"schema": 2, "exhausted": 1, "permanent": 1, "poison": 1}
    pairs = {(x["tool"], x["reason"]): x["count"] for x in stats["by_tool_reason"]}
    assert pairs[("book_slot", "schema")] == 2
    assert sum(pairs.values()) == 5


def test_stats_table_and_filter(env: Env, seeded: dict[str, str]) -> None:
    ran = env.run("dlq", "stats", "--tool", "charge_card")
    assert ran.code == 0
    assert "total 2" in ran.stdout
    assert "book_slot" not in ran.stdout


def test_empty_dlq(env: Env) -> None:
    assert listed(env) == []
    assert json.loads(env.run("dlq", "stats", "--json").stdout)["total"] == 0
    assert env.run("dlq", "show", "01a00000-0000-7000-8000-000000000000").code == (
        ExitCode.NOT_FOUND
    )
