"""What every view reaches through ``request.app.state``: one object, made by ``create_app``."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from intentq.config.settings import Settings
from intentq.dashboard.backends import Backends
from intentq.dashboard.render import Renderer
from intentq.dashboard.security import CSRF_FIELD, Csrf

# Letters a listing shows per page unless ``?limit=`` says otherwise, and at most.
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

Endpoint = Callable[[Request], Awaitable[Response]]
FormEndpoint = Callable[[Request, FormData], Awaitable[Response]]


@dataclass
class Dashboard:
    """The app's state: settings (for the footer), backends once open, guards, renderer."""

    settings: Settings | None
    csrf: Csrf
    renderer: Renderer
    backends: Backends | None = None
    # Replays and purges one at a time: two tabs confirming the same plan would otherwise
    # send every letter twice (harmless to the tools, but the counts would mislead).
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    def opened(self) -> Backends:
        if self.backends is None:
            raise RuntimeError("the dashboard's stores are not open: is the lifespan running?")
        return self.backends


def dashboard_of(request: Request) -> Dashboard:
    return cast(Dashboard, request.app.state.dashboard)


def csrf_protected(handler: FormEndpoint) -> Endpoint:
    """A POST endpoint that runs ``handler`` only with a valid CSRF pair, else 403."""

    async def endpoint(request: Request) -> Response:
        dashboard = dashboard_of(request)
        form = await request.form()
        given = form.get(CSRF_FIELD)
        if not dashboard.csrf.valid(
            Csrf.nonce_of(request), given if isinstance(given, str) else None
        ):
            return dashboard.renderer.error(
                request, 403, "Refused: no valid CSRF token",
                "This form was not sent by a dashboard page of this server (or the server "
                "restarted since it was loaded). Nothing was changed: reload the page and "
                "try again.",
            )  # fmt: skip
        return await handler(request, form)

    return endpoint
