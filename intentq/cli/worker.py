"""``intentq worker``: run the SQS or the Celery worker for your tools."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from intentq.cli.common import (
    AppOpt,
    TransportOpt,
    check_broker,
    choice_option,
    load_app_registry,
    load_settings,
)
from intentq.cli.exits import CliError, code_for
from intentq.defaults import DEFAULT_CELERY_CONCURRENCY, DEFAULT_SQS_CONCURRENCY
from intentq.errors import ConfigError, IntentqError

if TYPE_CHECKING:
    from intentq.config.settings import Settings
    from intentq.registry import Registry

EPILOG = "Example:  intentq worker --transport sqs --app myapp.tools:registry --concurrency 16"

POOLS = ("prefork", "threads", "solo")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


def worker(
    transport: TransportOpt = None,
    app: AppOpt = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            help=(
                "Tools running at once: threads with SQS, processes with Celery (default: "
                f"INTENTQ_CONCURRENCY, else {DEFAULT_SQS_CONCURRENCY} threads with SQS, "
                f"{DEFAULT_CELERY_CONCURRENCY} processes with Celery)."
            ),
        ),
    ] = None,
    pool: Annotated[
        str | None,
        choice_option(
            "--pool",
            POOLS,
            "Celery only: the worker pool (default: threads on the embedded SQLite broker, "
            "prefork on the others; the SQS worker always runs threads).",
        ),
    ] = None,
    log_level: Annotated[
        str, choice_option("--log-level", LOG_LEVELS, "Log level, in any case.")
    ] = "INFO",
    require_store: Annotated[
        bool,
        typer.Option(
            "--require-store",
            help="Exit (code 9) if the store cannot be reached at start, instead of starting "
            "and deferring claims until it answers (INTENTQ_REQUIRE_STORE).",
        ),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve Prometheus metrics on this port at /metrics (INTENTQ_METRICS_PORT).",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        choice_option(
            "--log-format",
            LOG_FORMATS,
            "text, or json: one JSON object per line, and one line per decision "
            "(INTENTQ_LOG_FORMAT).",
        ),
    ] = None,
    hostname: Annotated[
        str | None,
        typer.Option(
            "--hostname",
            help=(
                "Celery only: the node name, as Celery's -n (default: intentq-<pid>-<random>"
                "@<host>, unique on the host)."
            ),
        ),
    ] = None,
) -> None:
    """Consume intents until SIGTERM/SIGINT: each tool runs at most once per key.

    SIGTERM stops receiving, lets running tools finish (INTENTQ_SHUTDOWN_GRACE) and gives
    back what has not started; after the grace, running tools are stopped and their messages
    go back to the broker. At start it checks the store, the DLQ and the broker or queue and
    logs one line each. Exits 3 on bad settings, 10 on a schema this intentq cannot use, 4 if
    the SQS queue cannot be reached at start, 9 if the store cannot and --require-store is set.
    """
    given = load_settings(
        transport=transport,
        app=app,
        concurrency=concurrency,
        metrics_port=metrics_port,
        log_format=log_format,
        require_store=require_store or None,  # not given: INTENTQ_REQUIRE_STORE decides
    )
    settings = check_broker(given)
    if not settings.app:
        raise ConfigError("no tools to run: pass --app package.module:registry or set INTENTQ_APP")
    registry = load_app_registry(settings.app)
    if settings.transport == "sqs":
        logging.basicConfig(
            level=log_level,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if settings.log_format == "json":
            from intentq.observe.logs import use_json

            use_json()
        code = _run_sqs(settings, registry)
    else:
        from intentq.consumers.celery import run_worker as run_celery

        code = run_celery(
            settings, registry, concurrency, pool, loglevel=log_level, hostname=hostname
        )
    if code:
        raise CliError(f"the worker stopped with status {code} (see its log above)")


def _run_sqs(settings: Settings, registry: Registry) -> int:
    """``intentq.consumers.sqs.run_worker``, except that a start error is raised, not logged:
    its kind picks the exit code (unreachable 4, bad settings 3, anything else 1)."""
    from intentq.consumers.sqs.service import serve, start_worker

    try:
        sqs_worker = start_worker(settings, registry)
    except IntentqError as exc:
        raise CliError(f"cannot start the SQS worker: {exc}", code_for(exc)) from exc
    return serve(sqs_worker)
