"""Options and parsing shared by several commands."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from intentq.cli.exits import CliError, ExitCode
from intentq.config.redact import redacted
from intentq.config.settings import Settings
from intentq.errors import ConfigError, InvalidIntent
from intentq.intent import normalize_key
from intentq.registry import Registry


class BadValue(typer.BadParameter):
    """A value an option or argument cannot take (exit 2): the message is shown as it is,
    without Click's "Invalid value for" prefix; Click attaches the command to it."""

    def format_message(self) -> str:
        return self.message


def either(values: tuple[str, ...]) -> str:
    """``a, b or c``."""
    return " or ".join(filter(None, (", ".join(values[:-1]), values[-1])))


def choice(option: str, values: tuple[str, ...]) -> Callable[[str], str]:
    """A parser for an option that takes one of ``values`` (any case): a bad value is a
    usage error, reported before the command does anything."""
    by_fold = {value.casefold(): value for value in values}

    def parse(text: str) -> str:
        value = by_fold.get(text.casefold())
        if value is None:
            raise BadValue(f"{option} must be {either(values)}, not {text!r}")
        return value

    return parse


def choice_option(option: str, values: tuple[str, ...], help: str, **extra: Any) -> Any:
    """A ``typer.Option`` that takes one of ``values`` (any case), shown as ``[a|b|c]``."""
    return typer.Option(
        option, parser=choice(option, values), metavar=f"[{'|'.join(values)}]", help=help, **extra
    )


def idempotency_key(text: str) -> str:
    """A KEY argument as the store keeps it (a UUID lower-cased); a key no intent could carry
    is a usage error."""
    try:
        return normalize_key(text)
    except InvalidIntent as exc:
        raise BadValue(f"KEY: {exc.message}") from None


KeyArg = Annotated[
    str, typer.Argument(parser=idempotency_key, help="The idempotency key (a UUID in any case).")
]
ToolArg = Annotated[str, typer.Argument(help="The tool's name.")]

TRANSPORTS = ("celery", "sqs")

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (for scripts) instead of tables.")
]
TransportOpt = Annotated[
    str | None,
    choice_option(
        "--transport",
        TRANSPORTS,
        "celery or sqs (default: INTENTQ_TRANSPORT, else celery).",
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
    return Settings.load(**given)


def check_broker(settings: Settings) -> Settings:
    """``settings``, once a Celery transport's broker URL is known to name a kombu transport."""
    if settings.transport == "celery":
        check_broker_url(settings.broker_url)
    return settings


def check_broker_url(url: str) -> None:
    """Refuse a Celery broker URL whose scheme names no kombu transport (``ConfigError``).

    kombu would only say so when connecting, as a bare ``KeyError``. The transport is the
    scheme, or what comes before ``+`` in it (``sqla+sqlite://``); each ``;``-separated
    failover URL is checked.
    """
    from kombu.transport import TRANSPORT_ALIASES

    for part in url.split(";"):
        scheme, sep, _ = part.strip().partition("://")
        transport = scheme.partition("+")[0]
        if sep and (transport in TRANSPORT_ALIASES or transport.lower() in TRANSPORT_ALIASES):
            continue
        if sep:
            shown, what = redacted(url), f"kombu has no transport {transport!r}"
        else:  # no scheme for ``redacted`` to find user:password@ after: mask it all
            shown, what = f"***@{url.rpartition('@')[2]}" if "@" in url else url, "no scheme"
        raise ConfigError(
            f"unsupported broker URL {shown!r} ({what}): use amqp://, redis://, "
            "sqs:// or sqla+sqlite:///... (any kombu transport)"
        )


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
    from intentq.registry import load_registry

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return load_registry(spec)
