"""The pages that only read: letters (with counts), one letter, one key's record."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from intentq.dashboard.query import REASONS, BadQuery, Filters
from intentq.dashboard.render import path_part
from intentq.dashboard.state import MAX_PAGE_SIZE, PAGE_SIZE, dashboard_of
from intentq.dedup import DedupStore
from intentq.dlq import DeadLetter, DeadLetterStore, LetterFilter
from intentq.errors import InvalidIntent, LetterNotFound
from intentq.intent import normalize_key
from intentq.ops import LetterStats, letter_stats
from intentq.ops.serialize import letter_detail, record_detail

# A shortened letter id, as the CLI takes it: its last characters, at least this many.
MIN_ID_SUFFIX = 8
# A search by key looks at every letter the filter selects and lists at most this many.
SEARCH_LIMIT = 200
# The age columns: letters dead within each window (a link filters by it).
AGES = (("last hour", "1h", timedelta(hours=1)), ("last day", "1d", timedelta(days=1)),
        ("last week", "7d", timedelta(days=7)))  # fmt: skip


@dataclass(frozen=True)
class Overview:
    letters: list[DeadLetter]
    cursor: str | None
    total: int
    stats: LetterStats
    ages: list[tuple[str, dict[str, str], int]]  # label, filter params, count


def _overview(
    dlq: DeadLetterStore, filters: Filters, f: LetterFilter, cursor: str | None, limit: int,
    now: datetime,
) -> Overview:  # fmt: skip
    page = dlq.list(f, limit=limit, cursor=cursor)
    stats = letter_stats(dlq, f)
    ages = []
    for label, text, window in AGES:
        since = max(f.since, now - window) if f.since is not None else now - window
        count = dlq.count(replace(f, since=since))
        ages.append((label, {**filters.params(), "since": text}, count))
    older = {**filters.params(), "until": "7d"}
    ages.append(("over a week", older, stats.total - ages[-1][2]))
    return Overview(page.letters, page.cursor, stats.total, stats, ages)


def find_letter(dlq: DeadLetterStore, given: str) -> DeadLetter | list[DeadLetter]:
    """The letter ``given`` names (its id, or its last 8+ characters if unique); else the
    letters whose id ends in it (none, or several)."""
    try:
        return dlq.get(given)
    except LetterNotFound:
        pass
    if len(given) < MIN_ID_SUFFIX:
        return []
    matches = dlq.ending_in([given])[given]
    return matches[0] if len(matches) == 1 else matches


def _search(dlq: DeadLetterStore, text: str, f: LetterFilter) -> DeadLetter | list[DeadLetter]:
    """A letter id (whole or shortened) goes to its letter; otherwise letters with that key."""
    found = find_letter(dlq, text)
    if isinstance(found, DeadLetter) or found:
        return found
    try:
        key = normalize_key(text)
    except InvalidIntent:
        key = text
    return list(islice((x for x in dlq.iter(f) if x.key == key), SEARCH_LIMIT))


def _page_size(text: str | None) -> int:
    try:
        return min(max(int(text or PAGE_SIZE), 1), MAX_PAGE_SIZE)
    except ValueError:
        return PAGE_SIZE


async def letters(request: Request) -> Response:
    """The listing: counts by reason, tool and age, filters, search, a page of letters."""
    dashboard = dashboard_of(request)
    dlq = dashboard.opened().dlq
    params = request.query_params
    filters = Filters.from_params(params)
    search = (params.get("q") or "").strip()
    limit = _page_size(params.get("limit"))
    context: dict[str, Any] = {
        "title": "Dead letters", "filters": filters.params(), "filter_form": filters,
        "reasons": REASONS, "search": search, "limit": limit, "error": "",
    }  # fmt: skip
    now = datetime.now(UTC)
    try:
        f = filters.letter_filter(now)
    except BadQuery as exc:
        context["error"] = str(exc)
        return dashboard.renderer.page(
            request, "letters.html", 400, **context, overview=None, results=None
        )
    if search:
        found = await run_in_threadpool(_search, dlq, search, f)
        if isinstance(found, DeadLetter):
            return RedirectResponse(f"{context_root(request)}/letters/{path_part(found.id)}", 303)
        return dashboard.renderer.page(
            request, "letters.html", **context, overview=None, results=found
        )
    cursor = params.get("cursor") or None
    overview = await run_in_threadpool(_overview, dlq, filters, f, cursor, limit, now)
    return dashboard.renderer.page(
        request, "letters.html", **context, overview=overview, results=None
    )


def context_root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def _letter_and_record(
    dlq: DeadLetterStore, store: DedupStore | None, given: str
) -> tuple[DeadLetter | list[DeadLetter], Any]:
    found = find_letter(dlq, given)
    record = None
    if isinstance(found, DeadLetter) and store is not None and found.tool and found.key:
        record = store.get(found.tool, found.key)
    return found, record


async def letter(request: Request) -> Response:
    """One letter: body, error, traceback, attempts, source, history, and its key's record."""
    dashboard = dashboard_of(request)
    backends = dashboard.opened()
    given = request.path_params["letter_id"]
    found, record = await run_in_threadpool(_letter_and_record, backends.dlq, backends.store, given)
    if not isinstance(found, DeadLetter):
        why = "it may have been replayed or purged meanwhile"
        if found:
            why = f"{len(found)} letter ids end in it; give more of the id"
        return dashboard.renderer.error(request, 404, "No such letter", f"{given!r}: {why}.")
    detail = letter_detail(found)
    body = {k: detail.pop(k) for k in ("body", "body_text", "body_base64") if k in detail}
    return dashboard.renderer.page(
        request, "letter.html", title=f"Letter {found.id}", letter=found, detail=detail,
        body=body, record=record_detail(record) if record is not None else None,
        has_store=backends.store is not None,
    )  # fmt: skip


async def key_record(request: Request) -> Response:
    """A key's record in the dedup store: state, attempts, lease, result or error."""
    dashboard = dashboard_of(request)
    store = dashboard.opened().store
    tool = (request.query_params.get("tool") or "").strip()
    key = (request.query_params.get("key") or "").strip()
    context: dict[str, Any] = {"title": "Key lookup", "tool": tool, "key": key,
                               "record": None, "error": "", "looked_up": False}  # fmt: skip
    if store is None:
        context["error"] = "This dashboard was started without a dedup store."
    elif tool and key:
        try:
            key = normalize_key(key)
        except InvalidIntent as exc:
            context["error"] = f"key: {exc.message}"
            return dashboard.renderer.page(request, "key.html", 400, **context)
        record = await run_in_threadpool(store.get, tool, key)
        context.update(key=key, looked_up=True,
                       record=record_detail(record) if record is not None else None)  # fmt: skip
    return dashboard.renderer.page(request, "key.html", **context)
