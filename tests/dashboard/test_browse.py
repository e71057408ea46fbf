"""Reading: the listing with its counts, filters and search, one letter's page, a key's record."""

from __future__ import annotations

from datetime import timedelta

from intentq.dlq import Reason
from intentq.intent import Intent
from tests.cli.conftest import make_letter
from tests.dashboard.conftest import Browser, Stage


def test_list_counts_filters_and_search(stage: Stage, browser: Browser) -> None:
    # Given two fresh schema letters and an exhausted one from two days ago
    fresh = [make_letter("book_slot"), make_letter("book_slot")]
    old = make_letter("charge_card", reason=Reason.EXHAUSTED, error_type="TimeoutError",
                      age=timedelta(days=2))  # fmt: skip
    ids = [stage.dlq.put(x) for x in (*fresh, old)]

    # When the operator opens the dashboard
    browser.open(stage.url)
    browser.shot("letters")
    # Then every letter is listed, with counts by reason, tool and age
    assert browser.text("#total") == "3"
    assert len(browser.rows()) == 3
    counts = " ".join(browser.text("section.counts").split())
    assert "schema 2" in counts and "exhausted 1" in counts
    assert "book_slot 2" in counts and "charge_card 1" in counts
    assert "last hour 2" in counts and "over a week 0" in counts

    # A tool filter narrows the list, and so does an age
    browser.fill("input[name=tool]", "charge_card")
    browser.click("#apply-filters")
    assert [r.text.split()[0] for r in browser.rows()] == [f"…{ids[2][-12:]}"]
    browser.shot("letters-by-tool")
    browser.fill("input[name=tool]", "")
    browser.fill("input[name=since]", "1d")
    browser.click("#apply-filters")
    assert len(browser.rows()) == 2
    assert "charge_card" not in browser.text("table.letters")

    # The reason link in the counts filters by reason
    browser.open(stage.url)
    browser.click("section.counts a[href*='reason=exhausted']")
    assert len(browser.rows()) == 1 and "TimeoutError" in browser.text("table.letters")

    # A search by key lists that key's letters (among the filtered ones: here, all); by a
    # shortened id it opens the letter
    browser.open(stage.url)
    browser.fill("input[name=q]", fresh[1].key or "")
    browser.click("#search")
    assert len(browser.rows()) == 1 and (fresh[1].key or "") in browser.text("table.letters")
    browser.fill("input[name=q]", ids[0][-12:])
    browser.click("#search")
    assert browser.text("code.letter-id") == ids[0]


def test_letter_page_shows_everything_the_letter_keeps(stage: Stage, browser: Browser) -> None:
    letter = make_letter("book_slot", args={"slot": "15:00", "who": "ada"}, queue="intentq")
    letter.attempts = 4
    letter_id = stage.dlq.put(letter)
    stage.dlq.mark_replayed(letter_id)

    browser.open(stage.url)
    browser.click(f"a[title='{letter_id}']")
    browser.shot("letter")

    assert browser.text("code.letter-id") == letter_id
    assert browser.text("#error-type") == "InvalidArgs"
    assert browser.text("#error-message") == "InvalidArgs happened"
    assert "ValueError: boom" in browser.text("#traceback")
    body = browser.text("#body")
    assert '"who": "ada"' in body and (letter.key or "") in body
    cards = " ".join(browser.text("section.grid").split())
    assert "attempts 4" in cards
    assert "sqs · intentq" in cards  # the source transport and queue
    assert browser.text("#replay-count") == "1"
    assert "no record" in cards  # the key was never claimed


def test_key_page_shows_the_store_record(stage: Stage, browser: Browser) -> None:
    letter = make_letter("book_slot")
    stage.dlq.put(letter)
    intent = Intent.parse(letter.body)
    claim = stage.store.claim(intent.tool, intent.key, intent.fingerprint)
    stage.store.fail(intent.tool, intent.key, claim.token, {"reason": "permanent"})  # type: ignore[union-attr]

    browser.open(stage.url)
    browser.click(f"a[title$='{stage.dlq.iter().__next__().id[-12:]}']")
    assert "failed" in browser.text("section.grid")
    browser.click("#key-link")
    browser.shot("key")
    assert browser.text("#record-state") == "failed"
    assert browser.text("#record-attempts") == "1"
    assert '"reason": "permanent"' in browser.text("#record-error")

    browser.fill("input[name=key]", "never-used-key")
    browser.click("#lookup")
    assert "No record of book_slot : never-used-key" in browser.text("#no-record")
