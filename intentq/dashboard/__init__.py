"""The dead-letter dashboard: the DLQ and the dedup store in a browser, for operators.

Server-rendered pages (Starlette, Jinja2, uvicorn) over the library calls ``intentq dlq``
makes: ``DeadLetterStore.list``/``get``/``count``, ``letter_stats``, ``replay``, ``purge``
and the dedup store's ``get``. It needs the ``dashboard`` extra.
"""

from __future__ import annotations

from intentq.extras import MissingExtra

# The extra's top-level modules: only their absence is translated, any other is a bug.
_EXTRA = frozenset({"starlette", "uvicorn", "jinja2", "python_multipart", "anyio"})

try:
    from intentq.dashboard.app import create_app
    from intentq.dashboard.backends import Backends, opened_backends
    from intentq.dashboard.server import check_bind, serve
except ModuleNotFoundError as exc:
    missing = (exc.name or "").partition(".")[0]
    if missing not in _EXTRA:
        raise
    raise MissingExtra(missing, "dashboard", "the dashboard") from exc

__all__ = [
    # the app
    "create_app",
    "Backends",
    "opened_backends",
    # serving
    "check_bind",
    "serve",
]
