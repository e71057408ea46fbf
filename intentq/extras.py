"""Optional dependencies: each transport, store and operator feature is an extra of its own.

``require(module, extra)`` imports a driver where it is first needed; a missing one is a
``MissingExtra`` (a ``ConfigError``) that names the extra to install, in one line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from intentq.errors import ConfigError


class MissingExtra(ConfigError):
    """An optional dependency is not installed: ``extra`` names what to install."""

    def __init__(self, module: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the {module!r} package: pip install 'intentq[{extra}]'"
        )
        self.module, self.extra = module, extra


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """``module``, imported; ``MissingExtra`` naming ``intentq[extra]`` when it is absent."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(module, extra, feature or f"intentq[{extra}]") from exc
