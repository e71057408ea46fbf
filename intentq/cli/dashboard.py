"""``intentq dashboard``: the dead-letter dashboard in a browser (needs the dashboard extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from intentq.cli.common import TransportOpt, check_broker, load_settings
from intentq.cli.output import examples, note

EPILOG = examples(
    "intentq dashboard   (http://127.0.0.1:8425, this machine only)",
    "INTENTQ_DASHBOARD_TOKEN=... intentq dashboard --host 0.0.0.0 --port 8080",
)


def dashboard(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = (
        8425
    ),
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on; anything but loopback needs INTENTQ_DASHBOARD_TOKEN.",
        ),
    ] = "127.0.0.1",
    transport: TransportOpt = None,
) -> None:
    """Serve the dead-letter dashboard: letters by reason, tool and age, each letter's
    body and traceback, a key's record, replay (dry run first) and purge (confirmed).

    The token is read from INTENTQ_DASHBOARD_TOKEN only, never from the command line,
    where other users could read it in the process list.
    """
    # Imported here: `intentq --help` must not need starlette (a missing extra is a
    # ConfigError naming the pip command).
    from intentq.dashboard import check_bind, serve

    settings = check_broker(load_settings(transport=transport))
    token = settings.dashboard_token
    check_bind(host, token.get_secret_value() if token is not None else None)
    shown = f"[{host}]" if ":" in host else host
    guarded = " (token required)" if token is not None and token.get_secret_value() else ""
    note(f"dashboard on http://{shown}:{port}/{guarded}; Ctrl-C stops it")
    serve(settings, host, port)
