"""The embedded broker, SQLite through kombu's SQLAlchemy transport, with the PostgreSQL store.

The worker is Celery's own command line on ``intentq.consumers.celery.main``, configured by
``INTENTQ_*`` variables alone.

Not run here: a SIGKILLed worker. kombu's SQLAlchemy transport marks a delivered row
invisible and keeps the unacknowledged message only in the worker's memory, handing it back
at a clean shutdown; a killed worker takes the messages it held with it (see the README).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.celery.conftest import Effects, Harness, make_harness
from tests.celery.suite import CoreSuite, FullSuite

# kombu 5.7's SQLAlchemy transport maps its tables with a loader SQLAlchemy 2.1 deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


@pytest.fixture(scope="module")
def h(
    pg_url: str, result_backend: str, effects: Effects, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("celery-sqlite")
    harness = make_harness(
        tmp,
        effects,
        broker_url=f"sqla+sqlite:///{tmp / 'broker.db'}",
        dedup_url=pg_url,
        result_backend=result_backend,
    )
    try:
        harness.new_cli_worker().start()
        yield harness
    finally:
        harness.close()


class TestSqliteBroker(CoreSuite):
    # A killed pool child is survived by the main process, which requeues the message.
    test_tool_killing_its_worker_is_dead_lettered_as_crash_loop = (
        FullSuite.test_tool_killing_its_worker_is_dead_lettered_as_crash_loop
    )
    test_unknown_tool_is_dead_lettered_with_its_envelope = (
        FullSuite.test_unknown_tool_is_dead_lettered_with_its_envelope
    )
