"""An app for Celery's own command line, built when Celery first asks for it::

    INTENTQ_APP=myapp.tools:registry celery -A intentq.consumers.celery.main worker -Q intentq

Settings come from ``INTENTQ_*`` and ``intentq.toml`` (``Settings.load()``), the tools from
the registry ``INTENTQ_APP`` names. Importing this module builds nothing.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_built: dict[str, Any] = {}


def build() -> Any:
    """The app from the environment; the same one on every call in this process."""
    with _lock:
        if "app" not in _built:
            from intentq.config.settings import Settings
            from intentq.consumers.celery.app import create_app
            from intentq.errors import ConfigError
            from intentq.registry import load_registry

            settings = Settings.load()
            if not settings.app:
                raise ConfigError("set INTENTQ_APP to the registry of your tools (module:name)")
            _built["app"] = create_app(settings, load_registry(settings.app))
        return _built["app"]


def __getattr__(name: str) -> Any:
    # ``celery -A intentq.consumers.celery.main`` looks up ``.app``, then ``.celery``.
    if name in ("app", "celery"):
        return build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
