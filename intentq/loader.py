"""Find the user's tool registry from a ``module:attribute`` string."""

from __future__ import annotations

import importlib

from intentq.errors import ConfigError
from intentq.registry import Registry


def load_registry(spec: str) -> Registry:
    """Import ``package.module:name`` and return the ``Registry`` it names."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"app {spec!r} must look like 'package.module:registry'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} for app {spec!r}: {exc}") from exc
    registry = getattr(module, attr, None)
    if not isinstance(registry, Registry):
        raise ConfigError(f"{spec!r} is not an intentq Registry (found {type(registry).__name__})")
    return registry
