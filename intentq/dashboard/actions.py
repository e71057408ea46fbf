"""The forms that change something: replay and purge, each a plan first, then a confirmation.

A plan is what ``--dry-run`` prints (replay) or the count ``purge`` asks about; the
confirmation form carries the same selection, with a filter's times pinned to the moment of
the plan, so letters dead after the operator looked are not touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from intentq.dashboard.backends import Backends
from intentq.dashboard.pages import find_letter
from intentq.dashboard.query import BadQuery, Filters
from intentq.dashboard.state import dashboard_of
from intentq.dlq import DeadLetter, LetterFilter, ReplaySummary, purge, replay

SCOPES = ("ids", "filter")
# A plan or a confirmation lists at most this many letters; the counts cover them all.
SHOWN = 200


@dataclass(frozen=True)
class Selection:
    """The letters a form names: checked ids, or everything a filter matches."""

    scope: str
    ids: tuple[str, ...]
    filters: Filters

    @classmethod
    def from_form(cls, form: FormData) -> Selection:
        scope = _text(form, "scope") or "ids"
        if scope not in SCOPES:
            raise BadQuery(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        ids = tuple(dict.fromkeys(v.strip() for v in form.getlist("id") if isinstance(v, str)))
        ids = tuple(i for i in ids if i)
        if scope == "ids" and not ids:
            raise BadQuery("no letters selected: tick some first, or act on the whole filter")
        params = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        return cls(scope, ids if scope == "ids" else (), Filters.from_params(params))

    def pinned(self, now: datetime) -> Selection:
        if self.scope == "ids":
            return self
        return Selection(self.scope, (), self.filters.pinned(now))

    def letter_filter(self, now: datetime) -> LetterFilter:
        if self.scope == "ids":
            return LetterFilter(ids=self.ids)
        return self.filters.letter_filter(now)

    def fields(self) -> list[tuple[str, str]]:
        """Hidden fields that name the same letters in the next form."""
        out = [("scope", self.scope)]
        out += [("id", i) for i in self.ids]
        out += list(self.filters.params().items()) if self.scope == "filter" else []
        return out


@dataclass(frozen=True)
class ReplayOptions:
    """``--keep``, ``--limit``, ``--to`` and ``--rate``, as the replay form gives them."""

    keep: bool = False
    limit: int | None = None
    to: str | None = None
    rate: float | None = None

    @classmethod
    def from_form(cls, form: FormData) -> ReplayOptions:
        limit, rate = _text(form, "limit"), _text(form, "rate")
        try:
            options = cls(
                keep=_text(form, "keep") == "1",
                limit=int(limit) if limit else None,
                to=_text(form, "to") or None,
                rate=float(rate) if rate else None,
            )
        except ValueError:
            raise BadQuery("limit must be a whole number and rate a number") from None
        if options.limit is not None and options.limit < 1:
            raise BadQuery("limit must be at least 1")
        if options.rate is not None and not options.rate > 0:
            raise BadQuery("rate must be more than 0 sends per second")
        return options

    def fields(self) -> list[tuple[str, str]]:
        values = {"keep": "1" if self.keep else "", "limit": self.limit, "to": self.to,
                  "rate": self.rate}  # fmt: skip
        return [(k, str(v)) for k, v in values.items() if v not in (None, "")]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


class Missing(Exception):
    """Some chosen letters are gone: nothing is done, as with the CLI."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = ids


def _chosen(backends: Backends, selection: Selection, now: datetime) -> Iterable[DeadLetter]:
    if selection.scope == "filter":
        return backends.dlq.iter(selection.letter_filter(now))
    found = {i: find_letter(backends.dlq, i) for i in selection.ids}
    missing = [i for i, letter in found.items() if not isinstance(letter, DeadLetter)]
    if missing:
        raise Missing(missing)
    return [letter for letter in found.values() if isinstance(letter, DeadLetter)]


def _replay(
    backends: Backends, selection: Selection, options: ReplayOptions, dry_run: bool,
    now: datetime,
) -> tuple[ReplaySummary, int]:  # fmt: skip
    letters = _chosen(backends, selection, now)
    total = (
        len(letters) if isinstance(letters, list)
        else backends.dlq.count(selection.letter_filter(now))
    )  # fmt: skip
    summary = replay(
        backends.dlq, backends.store, letters, backends.send,
        to=options.to, dry_run=dry_run, rate=options.rate, limit=options.limit, keep=options.keep,
    )  # fmt: skip
    return summary, total


async def _replay_page(request: Request, form: FormData, dry_run: bool) -> Response:
    dashboard = dashboard_of(request)
    backends = dashboard.opened()
    now = datetime.now(UTC)
    try:
        selection = Selection.from_form(form).pinned(now)
        options = ReplayOptions.from_form(form)
    except BadQuery as exc:
        return dashboard.renderer.error(request, 400, "Cannot replay", str(exc))

    def run() -> tuple[ReplaySummary, int]:
        if dry_run:
            return _replay(backends, selection, options, True, now)
        with dashboard.write_lock:
            return _replay(backends, selection, options, False, now)

    try:
        summary, total = await run_in_threadpool(run)
    except Missing as exc:
        return dashboard.renderer.error(
            request, 404, "Nothing replayed",
            f"no dead letter {', '.join(map(repr, exc.ids))} (replayed or purged meanwhile?)",
        )  # fmt: skip
    context: dict[str, Any] = {
        "summary": summary, "results": summary.results[:SHOWN], "total": total,
        "selection": selection, "options": options,
        "fields": selection.fields(), "option_fields": options.fields(),
    }  # fmt: skip
    if dry_run:
        return dashboard.renderer.page(request, "replay_plan.html", title="Replay plan", **context)
    return dashboard.renderer.page(request, "replay_done.html", title="Replayed", **context)


async def replay_plan(request: Request, form: FormData) -> Response:
    """A dry run: what replay would do with each chosen letter; nothing is sent."""
    return await _replay_page(request, form, dry_run=True)


async def replay_run(request: Request, form: FormData) -> Response:
    """The confirmed replay of the planned selection."""
    return await _replay_page(request, form, dry_run=False)


def _purge_preview(
    backends: Backends, selection: Selection, now: datetime
) -> tuple[int, list[DeadLetter]]:
    f = selection.letter_filter(now)
    if selection.scope == "ids":
        letters = list(_chosen(backends, selection, now))
        return len(letters), letters
    return backends.dlq.count(f), backends.dlq.list(f, limit=SHOWN).letters


async def purge_plan(request: Request, form: FormData) -> Response:
    """How many letters the purge would delete, and which: the confirmation step."""
    dashboard = dashboard_of(request)
    now = datetime.now(UTC)
    try:
        selection = Selection.from_form(form).pinned(now)
    except BadQuery as exc:
        return dashboard.renderer.error(request, 400, "Cannot purge", str(exc))
    try:
        count, letters = await run_in_threadpool(_purge_preview, dashboard.opened(), selection, now)
    except Missing as exc:
        return dashboard.renderer.error(
            request, 404, "Nothing to purge", f"no dead letter {', '.join(map(repr, exc.ids))}"
        )
    if selection.scope == "ids":
        selection = Selection("ids", tuple(x.id for x in letters), selection.filters)
    return dashboard.renderer.page(
        request, "purge_confirm.html", title="Confirm purge", count=count, letters=letters,
        selection=selection, fields=selection.fields(),
    )  # fmt: skip


async def purge_run(request: Request, form: FormData) -> Response:
    """The confirmed purge: ``intentq.dlq.purge`` by ids, or everything the pinned filter
    matches."""
    dashboard = dashboard_of(request)
    now = datetime.now(UTC)
    try:
        selection = Selection.from_form(form).pinned(now)
        f = selection.letter_filter(now)
    except BadQuery as exc:
        return dashboard.renderer.error(request, 400, "Cannot purge", str(exc))
    dlq = dashboard.opened().dlq

    def run() -> int:
        with dashboard.write_lock:
            if selection.scope == "ids":
                return purge(dlq, ids=selection.ids)
            return purge(dlq, all_letters=True, filter=f)

    deleted = await run_in_threadpool(run)
    return dashboard.renderer.page(
        request, "purge_done.html", title="Purged", deleted=deleted, selection=selection
    )
