"""A Celery worker whose dead letters go to an SQS queue on the settings' endpoint.

Configured as a user would, by ``INTENTQ_DLQ_URL=sqs://NAME`` and
``INTENTQ_SQS_ENDPOINT_URL``: the worker must write its letters there, not to AWS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from intentq.dlq import Reason
from tests.celery.conftest import BROKER_DB, Effects, Harness, make_harness, redis_db
from tests.support.services import SqsServer

STORE_DB = 14


@pytest.fixture(scope="module")
def h(
    sqs_server: SqsServer,
    redis_url: str,
    result_backend: str,
    effects: Effects,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Harness]:
    harness = make_harness(
        tmp_path_factory.mktemp("celery-sqs-dlq"),
        effects,
        broker_url=redis_db(redis_url, BROKER_DB),
        dedup_url=redis_db(redis_url, STORE_DB),
        result_backend=result_backend,
        dlq_url=f"sqs://celery-dlq-{os.urandom(4).hex()}",
        sqs_endpoint_url=sqs_server.endpoint_url,
    )
    try:
        harness.new_cli_worker().start()
        yield harness
    finally:
        harness.close()


def test_poison_reaches_the_sqs_dlq_on_the_configured_endpoint(h: Harness) -> None:
    intent = h.send("no_such_tool", {"x": 1})

    letter = h.letter(intent_id=intent.intent_id)

    assert letter.reason == Reason.UNKNOWN_TOOL
    assert h.meta(intent.intent_id)["status"] == "FAILURE"
    assert "Could not connect" not in h.workers[0].log()
