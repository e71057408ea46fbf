"""A letter id on the command line: whole, or its last 8 or more characters if no other
letter's id ends in them (replay progress prints the last 12)."""

from __future__ import annotations

import json

import pytest

from intentq.cli.exits import ExitCode
from intentq.dlq import DeadLetterStore
from tests.cli.conftest import Env, Queue, make_letter

SHARED = "feedfacecafe"  # the last 12 characters of every twin's id


@pytest.fixture
def twins(dlq: DeadLetterStore) -> list[str]:
    """Seven letters whose ids end in the same 12 characters."""
    ids = []
    for i in range(7):
        letter = make_letter(key=f"twin-{i}")
        letter.id = f"{i:08x}-0000-7000-8000-{SHARED}"
        ids.append(dlq.put(letter))
    return ids


@pytest.fixture
def single(dlq: DeadLetterStore) -> str:
    """One letter with an id of the usual kind."""
    return dlq.put(make_letter(key="single"))


@pytest.mark.parametrize("length", [12, 8])
def test_show_by_the_end_of_an_id(env: Env, single: str, twins: list[str], length: int) -> None:
    ran = env.run("dlq", "show", single[-length:], "--json")
    assert ran.code == 0, ran
    assert json.loads(ran.stdout)["id"] == single


def test_whole_ids_still_work(env: Env, twins: list[str]) -> None:
    ran = env.run("dlq", "show", twins[3], "--json")
    assert ran.code == 0, ran
    assert json.loads(ran.stdout)["key"] == "twin-3"


def test_purge_by_the_end_of_an_id(
    env: Env, dlq: DeadLetterStore, single: str, twins: list[str]
) -> None:
    ran = env.run("dlq", "purge", single[-12:], "--yes", "--json")
    assert ran.code == 0, ran
    assert json.loads(ran.stdout)["purged"] == 1
    assert sorted(letter.id for letter in dlq.iter()) == sorted(twins)


def test_replay_by_the_end_of_an_id(
    env: Env, dlq: DeadLetterStore, queue: Queue, single: str, twins: list[str]
) -> None:
    body = dlq.get(single).body.decode()
    ran = env.run("dlq", "replay", single[-12:], twins[0], "--json")
    assert ran.code == 0, ran
    assert json.loads(ran.stdout)["replayed"] == 2
    assert body in {m["Body"] for m in queue.receive(2)}
    assert sorted(letter.id for letter in dlq.iter()) == sorted(twins[1:])


@pytest.mark.parametrize("command", [["dlq", "show"], ["dlq", "purge", "--yes"], ["dlq", "replay"]])
def test_an_ambiguous_end_is_a_usage_error_naming_five_matches(
    env: Env, dlq: DeadLetterStore, queue: Queue, twins: list[str], command: list[str]
) -> None:
    ran = env.run(*command, SHARED)
    assert ran.code == ExitCode.USAGE
    line = ran.one_error_line()
    assert f"7 letter ids end in '{SHARED}': {', '.join(twins[:5])} and 2 more" in line
    assert twins[5] not in line
    assert dlq.count() == 7  # nothing purged
    assert queue.depth() == 0  # nothing replayed


@pytest.mark.parametrize("command", [["dlq", "show"], ["dlq", "purge", "--yes"], ["dlq", "replay"]])
def test_an_end_no_id_has_is_not_found(
    env: Env, dlq: DeadLetterStore, single: str, command: list[str]
) -> None:
    also = [] if command[1] == "show" else [single]  # show takes one id
    ran = env.run(*command, *also, "0123456789ab")
    assert ran.code == ExitCode.NOT_FOUND
    assert "no dead letter with id '0123456789ab', nor one whose id ends in it" in (
        ran.one_error_line()
    )
    assert dlq.count() == 1


def test_fewer_than_eight_characters_are_not_an_id(env: Env, single: str) -> None:
    ran = env.run("dlq", "show", single[-7:])
    assert ran.code == ExitCode.NOT_FOUND
    assert "a shortened id needs its last 8 characters or more" in ran.one_error_line()
