"""Options and parsing shared by several commands."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from intentq.cli.exits import CliError, ExitCode
from intentq.config.settings import Settings
from intentq.registry import Registry

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (for scripts) instead of tables.")
]
TransportOpt = Annotated[
    str | None,
    typer.Option(
        "--transport",
        help="celery or sqs (default: INTENTQ_TRANSPORT, else celery).",
        show_default=False,
    ),
]
AppOpt = Annotated[
    str | None,
    typer.Option(
        "--app", help="Your tool registry as package.module:registry (default: INTENTQ_APP)."
    ),
]


def load_settings(**overrides: Any) -> Settings:
    """Read the settings now; options given on the command line win."""
    given = {name: value for name, value in overrides.items() if value is not None}
    transport = given.get("transport")
    if transport is not None and transport not in ("celery", "sqs"):
        raise CliError(f"--transport must be celery or sqs, not {transport!r}", ExitCode.USAGE)
    return Settings.load(**given)


def parse_args_json(text: str) -> dict[str, Any]:
    """``--args``: a JSON object, ``@file`` to read one from a file, ``@-`` from stdin."""
    source = "--args"
    if text.startswith("@"):
        path = text[1:]
        source = f"--args file {path!r}" if path != "-" else "--args from stdin"
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {source}: {exc.strerror or exc}", ExitCode.USAGE) from None
        except UnicodeDecodeError:
            raise CliError(f"{source} is not UTF-8 text", ExitCode.USAGE) from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{source} is not valid JSON: {exc}", ExitCode.USAGE) from None
    if not isinstance(value, dict):
        raise CliError(
            f'{source} must be a JSON object like \'{{"slot": "15:00"}}\', '
            f"not a JSON {type(value).__name__}",
            ExitCode.USAGE,
        )
    return value


def parse_meta(pairs: list[str] | None) -> dict[str, str]:
    """``--meta k=v`` (repeatable) -> a dict."""
    meta: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--meta wants name=value, got {pair!r}", ExitCode.USAGE)
        meta[name] = value
    return meta


def usage(message: str) -> CliError:
    """A refusal or bad-usage error (exit 2)."""
    return CliError(message, ExitCode.USAGE)


def load_app_registry(spec: str) -> Registry:
    """The registry ``spec`` names; like Celery, the working directory is importable."""
    from intentq.loader import load_registry

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return load_registry(spec)
