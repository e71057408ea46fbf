"""The dead-letter commands on an SQS dead-letter queue (``INTENTQ_DLQ_URL=sqs://NAME``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from intentq.dlq import DeadLetterStore, Reason, open_dlq
from tests.cli.conftest import Env, Queue, make_letter
from tests.support.services import SqsServer


@pytest.fixture
def sqs_env(env: Env) -> Env:
    return env.with_(INTENTQ_DLQ_URL=f"sqs://{env.vars['INTENTQ_SQS_DLQ']}")


@pytest.fixture
def sqs_dlq(sqs_env: Env, sqs_server: SqsServer) -> Iterator[DeadLetterStore]:
    store = open_dlq(
        sqs_env.vars["INTENTQ_DLQ_URL"], endpoint_url=sqs_server.endpoint_url,
        region="us-east-1", aws_access_key_id="t", aws_secret_access_key="t",
        scan_wait_seconds=0,
    )  # fmt: skip
    try:
        yield store
    finally:
        store.close()


def test_list_show_replay_on_an_sqs_dlq(
    sqs_env: Env, sqs_dlq: DeadLetterStore, queue: Queue
) -> None:
    schema = make_letter(reason=Reason.SCHEMA)
    other = make_letter("charge_card", reason=Reason.EXHAUSTED, error_type="TimeoutError")
    ids = [sqs_dlq.put(schema), sqs_dlq.put(other)]

    listed = json.loads(sqs_env.run("dlq", "list", "--json").stdout)
    assert sorted(x["id"] for x in listed["letters"]) == sorted(ids)
    shown = json.loads(sqs_env.run("dlq", "show", ids[1], "--json").stdout)
    assert (shown["tool"], shown["reason"]) == ("charge_card", "exhausted")
    by_end = json.loads(sqs_env.run("dlq", "show", ids[1][-12:], "--json").stdout)
    assert by_end["id"] == ids[1]  # a shortened id costs one more scan, but works

    ran = sqs_env.run("dlq", "replay", "--reason", "schema", "--json")
    assert ran.code == 0, ran
    assert json.loads(ran.stdout)["replayed"] == 1
    assert {m["Body"] for m in queue.receive(1)} == {schema.body.decode()}
    remaining = json.loads(sqs_env.run("dlq", "list", "--json").stdout)["letters"]
    assert [x["id"] for x in remaining] == [ids[1]]
