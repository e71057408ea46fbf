"""Pages from Jinja2 templates, autoescaped: a dead letter's body is attacker-controlled."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from intentq.config.redact import redacted
from intentq.config.settings import Settings
from intentq.dashboard.security import CSRF_FIELD, Csrf

TEMPLATES = Path(__file__).parent / "templates"


def make_environment() -> Environment:
    # autoescape=True for every template, whatever its name: no page may opt out.
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined
    )
    env.filters.update(ago=ago, iso=iso, pretty=pretty, path=path_part, query=query)
    return env


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``5m ago``, ``3h ago``, ``2d ago``: how long a letter has been dead."""
    if value is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - value).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def pretty(value: Any) -> str:
    """JSON indented for a ``<pre>``; the template escapes it."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def path_part(value: str) -> str:
    """One URL path segment: a letter id may hold a slash or a ``?``."""
    return quote(value, safe="")


def query(params: dict[str, Any]) -> str:
    """``?a=1&b=2`` of the non-empty values, or nothing."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"?{urlencode(kept)}" if kept else ""


def sources(settings: Settings | None) -> list[tuple[str, str]]:
    """Where the pages read from, for the footer: URLs with their secrets masked."""
    if settings is None:
        return []
    shown = [("DLQ", redacted(settings.dlq_url)), ("dedup store", redacted(settings.dedup_url))]
    if settings.transport == "celery":
        shown.append(("replays to", f"celery {redacted(settings.broker_url)}"))
    else:
        shown.append(("replays to", f"sqs {settings.sqs_queue}"))
    return shown


class Renderer:
    """Renders a template with what every page needs: the root path, the CSRF field and
    the footer's sources."""

    def __init__(self, settings: Settings | None, csrf: Csrf) -> None:
        self.env = make_environment()
        self.csrf = csrf
        self.sources = sources(settings)

    def html(self, request: Request, template: str, **context: Any) -> str:
        nonce = request.scope.get("state", {}).get("csrf_nonce", "")
        base = {
            "root": request.scope.get("root_path", ""),
            "csrf_name": CSRF_FIELD,
            "csrf": self.csrf.field_for(nonce) if nonce else "",
            "sources": self.sources,
            "now": datetime.now(UTC),
            "reasons": [],
            "filters": {},
        }
        return self.env.get_template(template).render({**base, **context})

    def page(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        return HTMLResponse(self.html(request, template, **context), status_code=status_code)

    def error(self, request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
        return self.page(request, "error.html", status_code, title=title, message=message)
