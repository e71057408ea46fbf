"""Writing: replay (a dry run, then the confirmation) and purge (a count, then the
confirmation), in the browser, through ``intentq.dlq.replay`` and ``intentq.dlq.purge``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from intentq.config.settings import Settings
from intentq.dashboard import Backends, create_app
from intentq.dedup import Acquired, DedupStore, State
from intentq.dlq import DeadLetterStore, Reason
from intentq.dlq.replay import producer_send
from intentq.intent import Intent
from intentq.registry import Registry
from tests.cli.conftest import make_letter
from tests.dashboard.conftest import Browser, LiveServer, Stage
from tests.support.net import wait_until

# kombu 5.7's SQLAlchemy transport maps its tables with a loader SQLAlchemy 2.1 deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


@pytest.fixture
def worker(settings: Settings, stores: tuple[DeadLetterStore, DedupStore]) -> Iterator[None]:
    """A Celery worker (in this process) on the test's SQLite broker, running ``book_slot``."""
    from intentq.consumers.celery import create_app as celery_app
    from intentq.demo.embedded import EmbeddedWorker

    dlq, store = stores
    registry = Registry()

    @registry.tool("book_slot")
    def book_slot(args: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {"booked": args["slot"]}

    # A worker's shutdown grace ends in a SIGQUIT to its own process if the worker has not
    # terminated by then; in this process that would stop pytest. Runs here have seen one
    # about 30 s (the default grace) after this worker stopped: an hour keeps it out of reach.
    patient = settings.model_copy(update={"shutdown_grace": 3600.0})
    app = celery_app(patient, registry, dedup=store, dlq=dlq)
    with EmbeddedWorker(app, concurrency=2, hostname="dashboard-test@localhost"):
        yield
    app.close()


def test_replay_one_letter_runs_its_intent_to_completion(
    settings: Settings,
    stores: tuple[DeadLetterStore, DedupStore],
    worker: None,
    serve_app: Callable[..., LiveServer],
    browser: Browser,
) -> None:
    # Given a dashboard that replays through a real producer to a real worker
    dlq, store = stores
    letter = make_letter("book_slot", args={"slot": "15:00"})
    letter_id = dlq.put(letter)
    with producer_send(settings) as send:
        server = serve_app(create_app(settings, backends=Backends(dlq, store, send)))

        # When the operator replays the letter from its page: a dry run first
        browser.open(f"{server.url}/letters/{letter_id}")
        browser.click("#replay-letter")
        browser.shot("replay-plan")
        assert browser.text("#plan-replayed") == "1"
        assert "would replay" in browser.text("table.results")
        assert "key not in the dedup store" in browser.text("table.results")
        assert dlq.count() == 1  # the dry run changed nothing

        # then the confirmation
        browser.click("#confirm-replay")
        browser.shot("replay-done")
        assert browser.text("#done-replayed") == "1"
        assert browser.text("#done-failed") == "0"

    # Then the letter is gone and the worker ran the intent
    assert dlq.count() == 0
    intent = Intent.parse(letter.body)
    record = wait_until(
        lambda: (r := store.get(intent.tool, intent.key)) and r.state is State.COMPLETED and r,
        timeout=30, what="the replayed intent to complete",
    )  # fmt: skip
    assert record.result == {"booked": "15:00"}
    # and the key's page says so
    browser.click("table.results td.key a")
    browser.shot("key-completed")
    assert browser.text("#record-state") == "completed"
    assert '"booked": "15:00"' in browser.text("#record-result")


def test_replay_selected_letters(stage: Stage, browser: Browser) -> None:
    letters = [make_letter(), make_letter(), make_letter()]
    ids = [stage.dlq.put(x) for x in letters]

    browser.open(stage.url)
    for letter_id in (ids[0], ids[2]):
        browser.find(f"input[name=id][value='{letter_id}']").click()
    browser.click("#replay-selected")
    assert browser.text("#plan-replayed") == "2"
    assert stage.sent.calls == []

    browser.click("#confirm-replay")
    assert browser.text("#done-replayed") == "2"
    # The original bytes, as `intentq dlq replay` sends them
    assert [(i, body) for i, body, _ in stage.sent.calls] == [
        (ids[0], letters[0].body), (ids[2], letters[2].body),
    ]  # fmt: skip
    assert [x.id for x in stage.dlq.iter()] == [ids[1]]


def test_replay_everything_a_filter_matches_with_options(stage: Stage, browser: Browser) -> None:
    schema = [make_letter(), make_letter()]
    other = make_letter("charge_card", reason=Reason.EXHAUSTED, error_type="TimeoutError")
    ids = [stage.dlq.put(x) for x in (*schema, other)]
    # One schema letter's key completed meanwhile: replay skips it (and removes the letter)
    done = Intent.parse(schema[1].body)
    claim = stage.store.claim(done.tool, done.key, done.fingerprint)
    assert isinstance(claim, Acquired)
    stage.store.complete(done.tool, done.key, claim.token, {"booked": "earlier"})

    browser.open(f"{stage.url}/?reason=schema")
    browser.click("#replay-filter")
    results = browser.text("table.results")
    assert "would replay" in results and "would skip" in results
    assert ids[2][-12:] not in results
    # Keep the letters (marked) and send them elsewhere
    browser.find("input[name=keep]").click()
    browser.fill("input[name=to]", "elsewhere")
    browser.click("#replan")
    assert browser.find("input[name=keep]").is_selected()
    browser.click("#confirm-replay")
    assert "replayed" in browser.text("table.results")

    assert [(i, to) for i, _, to in stage.sent.calls] == [(ids[0], "elsewhere")]
    assert stage.dlq.get(ids[0]).replay_count == 1  # kept, marked
    assert stage.dlq.get(ids[1]).replay_count == 0  # skipped, kept (keep is on)
    assert stage.dlq.get(ids[2]).replay_count == 0  # not matched


def test_purge_selected_after_confirmation(stage: Stage, browser: Browser) -> None:
    ids = [stage.dlq.put(make_letter()) for _ in range(3)]

    browser.open(stage.url)
    browser.find(f"input[name=id][value='{ids[1]}']").click()
    browser.click("#purge-selected")
    browser.shot("purge-confirm")
    assert browser.text("#purge-count") == "1"
    assert stage.dlq.count() == 3  # nothing deleted before the confirmation

    browser.click("#confirm-purge")
    browser.shot("purge-done")
    assert browser.text("#purged") == "1"
    assert [x.id for x in stage.dlq.iter()] == [ids[0], ids[2]]


def test_purge_a_filter_spares_letters_dead_after_the_confirmation_page(
    stage: Stage, browser: Browser
) -> None:
    keep = stage.dlq.put(make_letter("charge_card", reason=Reason.EXHAUSTED))
    stage.dlq.put(make_letter())
    stage.dlq.put(make_letter())

    browser.open(f"{stage.url}/?reason=schema")
    browser.click("#purge-filter")
    assert browser.text("#purge-count") == "2"
    late = stage.dlq.put(make_letter())  # dead while the operator reads the count
    browser.click("#confirm-purge")

    assert browser.text("#purged") == "2"
    assert sorted(x.id for x in stage.dlq.iter()) == sorted([keep, late])


def test_nothing_selected_is_an_error_page(stage: Stage, browser: Browser) -> None:
    stage.dlq.put(make_letter())
    browser.open(stage.url)
    browser.click("#purge-selected")
    assert "no letters selected" in browser.text("#error")
    assert stage.dlq.count() == 1
