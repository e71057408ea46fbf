"""``serve``: the dashboard under uvicorn, on loopback unless a token guards it."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import uvicorn

from intentq.config.redact import redacted
from intentq.config.settings import Settings
from intentq.dashboard.app import create_app
from intentq.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"  # only this machine, unless told otherwise (and given a token)
DEFAULT_PORT = 8425
# A token guarding a dashboard others can reach must not be guessable.
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    """Refuse (``ConfigError``) to listen beyond loopback without a long enough token."""
    if is_loopback(host):
        return
    if not token:
        raise ConfigError(
            f"the dashboard listens on {host} only with a token: set INTENTQ_DASHBOARD_TOKEN "
            f"(at least {MIN_TOKEN_LENGTH} characters), or bind {DEFAULT_HOST}"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"INTENTQ_DASHBOARD_TOKEN is too short to guard {host}: "
            f"use at least {MIN_TOKEN_LENGTH} characters"
        )


class RedactQuery(logging.Filter):
    """uvicorn's access log prints the path with its query: mask a ``?token=`` login."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redacted(a) if isinstance(a, str) else a for a in record.args)
        return True


def server_config(settings: Settings, host: str, port: int, **extra: Any) -> uvicorn.Config:
    """A ``uvicorn.Config`` for the dashboard the settings describe (after ``check_bind``)."""
    token = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    check_bind(host, token)
    app = create_app(settings)
    return uvicorn.Config(app, host=host, port=port, server_header=False, **extra)


def serve(settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve until interrupted."""
    config = server_config(settings, host, port)
    # After the Config: making it applies uvicorn's logging setup.
    logging.getLogger("uvicorn.access").addFilter(RedactQuery())
    uvicorn.Server(config).run()
