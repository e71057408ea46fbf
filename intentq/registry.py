"""Tools: name -> handler, argument schema, retry policy, TTL and lease."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from intentq.context import ToolContext
from intentq.errors import ConfigError, InvalidArgs, RegistryError, UnknownTool

# Tool names become store key prefixes (``intentq:{tool}:{key}``) and Celery task names
# (``intentq.{tool}``): no colons, spaces or slashes.
TOOL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")

Handler = Callable[[Any, ToolContext], Any]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool and its policy; ``None`` fields fall back to the settings."""

    name: str
    handler: Handler
    args_model: type[BaseModel] | None = None
    max_attempts: int | None = None
    retry_on: tuple[type[BaseException], ...] = ()
    ttl: float | None = None
    lease: float | None = None
    transactional: bool = False
    # For clients that show or gate tools (MCP's destructiveHint): None leaves it unsaid.
    destructive: bool | None = None

    def validate(self, args: Mapping[str, Any]) -> Any:
        """The handler's first argument: a model instance, or the dict when no model is set."""
        if self.args_model is None:
            return dict(args)
        try:
            return self.args_model.model_validate(dict(args))
        except ValidationError as exc:
            raise InvalidArgs(self.name, str(exc)) from exc


def check_tool_name(name: str) -> str:
    """Return ``name`` if it is a safe tool name, else raise ``RegistryError``."""
    if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
        raise RegistryError(
            f"bad tool name {name!r}: use 1-64 characters of [A-Za-z0-9_.-], "
            "starting with a letter or underscore"
        )
    return name


class Registry:
    """An explicit set of tools; there is no global default registry."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}

    def tool(
        self,
        name: str,
        *,
        args: type[BaseModel] | None = None,
        max_attempts: int | None = None,
        retry_on: tuple[type[BaseException], ...] = (),
        ttl: float | None = None,
        lease: float | None = None,
        transactional: bool = False,
        destructive: bool | None = None,
    ) -> Callable[[H], H]:
        """Register a plain function ``(args, ctx) -> JSON-able result`` under ``name``.

        ``destructive`` tells clients whether the tool may destroy or overwrite (``False``:
        it only adds); ``intentq mcp`` passes it on as MCP's ``destructiveHint``.
        """
        check_tool_name(name)
        if name in self._tools:
            raise RegistryError(f"tool {name!r} is already registered")
        if args is not None and not (isinstance(args, type) and issubclass(args, BaseModel)):
            raise RegistryError(f"tool {name!r}: args must be a pydantic model class")
        if max_attempts is not None and max_attempts < 1:
            raise RegistryError(f"tool {name!r}: max_attempts must be at least 1")
        for value, label in ((ttl, "ttl"), (lease, "lease")):
            if value is not None and value <= 0:
                raise RegistryError(f"tool {name!r}: {label} must be positive")
        if not all(isinstance(e, type) and issubclass(e, BaseException) for e in retry_on):
            raise RegistryError(f"tool {name!r}: retry_on must hold exception classes")

        def register(handler: H) -> H:
            if name in self._tools:
                raise RegistryError(f"tool {name!r} is already registered")
            self._tools[name] = ToolSpec(
                name=name,
                handler=handler,
                args_model=args,
                max_attempts=max_attempts,
                retry_on=tuple(retry_on),
                ttl=ttl,
                lease=lease,
                transactional=transactional,
                destructive=destructive,
            )
            return handler

        return register

    def get(self, name: str) -> ToolSpec:
        """The tool called ``name``; ``UnknownTool`` if there is none."""
        try:
            return self._tools[name]
        except (KeyError, TypeError):
            raise UnknownTool(str(name)) from None

    def validate(self, name: str, args: Mapping[str, Any]) -> Any:
        """Check ``args`` against the tool's schema (``UnknownTool`` / ``InvalidArgs``)."""
        return self.get(name).validate(args)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        """Registered tool names, in registration order."""
        return list(self._tools)


def load_registry(spec: str) -> Registry:
    """Import ``package.module:name`` and return the ``Registry`` it names (``INTENTQ_APP``)."""
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
