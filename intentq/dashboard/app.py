"""``create_app``: the dashboard as a Starlette app, from settings or from given backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

# Starlette parses forms with python-multipart, imported only when a form arrives: import
# it here so that a missing extra is reported at start, not at the first replay.
import python_multipart  # noqa: F401
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from intentq.config.redact import redacted
from intentq.config.settings import Settings
from intentq.dashboard import actions, pages
from intentq.dashboard.backends import Backends, opened_backends
from intentq.dashboard.render import Renderer
from intentq.dashboard.security import Csrf, Guard, TokenGate
from intentq.dashboard.state import Dashboard, csrf_protected, dashboard_of
from intentq.errors import DLQUnavailable, IntentqError, StoreUnavailable, TransportUnavailable

STATIC = Path(__file__).parent / "static"
_UNAVAILABLE = (DLQUnavailable, StoreUnavailable, TransportUnavailable)


def create_app(
    settings: Settings | None = None,
    *,
    backends: Backends | None = None,
    token: str | None = None,
    csrf_secret: bytes | None = None,
) -> Starlette:
    """The dashboard app.

    Without ``backends`` the DLQ, the dedup store and a producer are opened from
    ``settings`` when the server starts and closed when it stops; given ``backends`` (tests,
    an embedding app) are used as they are and left open. ``token`` defaults to
    ``settings.dashboard_token``; with one set, every request must carry it.
    """
    if backends is None and settings is None:
        raise ValueError("create_app needs settings, backends, or both")
    if token is None and settings is not None and settings.dashboard_token is not None:
        token = settings.dashboard_token.get_secret_value()
    csrf = Csrf(csrf_secret)
    renderer = Renderer(settings, csrf)
    dashboard = Dashboard(settings, csrf, renderer, backends)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if backends is not None or settings is None:
            yield
            return
        with opened_backends(settings) as opened:
            dashboard.backends = opened
            try:
                yield
            finally:
                dashboard.backends = None

    def login_page(request: Request, message: str) -> str:
        # No footer: where the stores live is for those who have the token.
        return renderer.html(request, "login.html", title="Sign in", message=message, sources=[])

    routes = [
        Route("/", pages.letters, methods=["GET"], name="letters"),
        Route("/letters/{letter_id:path}", pages.letter, methods=["GET"], name="letter"),
        Route("/keys", pages.key_record, methods=["GET"], name="keys"),
        # Every write is a POST, and every POST goes through the CSRF check.
        Route("/replay/plan", csrf_protected(actions.replay_plan), methods=["POST"]),
        Route("/replay", csrf_protected(actions.replay_run), methods=["POST"]),
        Route("/purge/plan", csrf_protected(actions.purge_plan), methods=["POST"]),
        Route("/purge", csrf_protected(actions.purge_run), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [
        Middleware(Guard),  # outermost: the login page gets the headers too
        Middleware(TokenGate, token=token, login_page=login_page),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={IntentqError: _intentq_error},
    )
    app.state.dashboard = dashboard
    return app


async def _intentq_error(request: Request, exc: Exception) -> Response:
    """A store or broker that fails shows as a page with one line, its secrets masked."""
    status = 503 if isinstance(exc, _UNAVAILABLE) else 500
    title = "Unavailable" if status == 503 else "Failed"
    return dashboard_of(request).renderer.error(request, status, title, redacted(str(exc)))
