"""``intentq worker``: run the SQS or the Celery worker for your tools."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from intentq.cli.common import AppOpt, TransportOpt, load_app_registry, load_settings
from intentq.cli.exits import CliError, ExitCode
from intentq.errors import ConfigError

EPILOG = "Example:  intentq worker --transport sqs --app myapp.tools:registry --concurrency 16"


def worker(
    transport: TransportOpt = None,
    app: AppOpt = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Threads (SQS) or processes (Celery)."),
    ] = None,
    pool: Annotated[
        str, typer.Option("--pool", help="Celery pool: prefork, threads or solo.")
    ] = "prefork",
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING.")] = "INFO",
) -> None:
    """Consume intents until SIGTERM/SIGINT: each tool runs at most once per key.

    SIGTERM stops receiving, lets running tools finish (INTENTQ_SHUTDOWN_GRACE) and gives
    back what has not started.
    """
    settings = load_settings(transport=transport, app=app, concurrency=concurrency)
    if not settings.app:
        raise ConfigError("no tools to run: pass --app package.module:registry or set INTENTQ_APP")
    if pool not in ("prefork", "threads", "solo"):
        raise CliError(f"--pool must be prefork, threads or solo, not {pool!r}", ExitCode.USAGE)
    registry = load_app_registry(settings.app)
    if settings.transport == "sqs":
        from intentq.consumers.sqs import run_worker as run_sqs

        logging.basicConfig(
            level=log_level.upper(),
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        code = run_sqs(settings, registry)
    else:
        from intentq.consumers.celery import run_worker as run_celery

        code = run_celery(settings, registry, concurrency, pool, loglevel=log_level.upper())
    if code:
        raise CliError(f"the worker stopped with status {code} (see its log above)")
