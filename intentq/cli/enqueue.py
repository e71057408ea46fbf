"""``intentq enqueue`` and ``intentq result``: send an intent, read back what became of it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from intentq.cli.common import (
    AppOpt,
    JsonFlag,
    KeyArg,
    ToolArg,
    TransportOpt,
    check_broker,
    load_app_registry,
    load_settings,
    parse_args_json,
    parse_meta,
)
from intentq.cli.exits import CliError, ExitCode
from intentq.cli.output import console, examples, print_json, show_fields

ENQUEUE_EPILOG = examples(
    'intentq enqueue book_slot --args \'{"slot": "15:00"}\' --key conv42-call7 --wait 30',
    "intentq enqueue book_slot --args @args.json --meta conversation_id=conv42 --json",
    'intentq enqueue book_slot --app myapp.tools:registry --args \'{"slot": "15:00"}\'',
)
RESULT_EPILOG = "Example:  intentq result book_slot conv42-call7 --json"


def enqueue(
    tool: Annotated[str, typer.Argument(help="The tool to call, e.g. book_slot.")],
    args: Annotated[
        str,
        typer.Option("--args", help="Arguments: a JSON object, @file, or @- for stdin."),
    ] = "{}",
    key: Annotated[
        str | None,
        typer.Option("--key", help="Idempotency key (default: the new intent id)."),
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="name=value for the envelope's meta (repeatable)."),
    ] = None,
    transport: TransportOpt = None,
    app: AppOpt = None,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            min=0,
            help="Wait up to SECONDS for the result (or the dead-letter reason).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Send one tool intent; prints its intent id and key.

    With --app (or INTENTQ_APP) the arguments are checked against the tool's schema before
    sending. Sending the same key again is safe: the tool runs at most once per key. With
    --wait, exits 0 on a result, 7 if the intent was dead-lettered, 6 on timeout, 8 if the
    key already holds another call's record (other arguments: its result is not printed).
    """
    from intentq.producer import Producer

    settings = check_broker(load_settings(transport=transport, app=app))
    registry = load_app_registry(settings.app) if settings.app else None
    arguments = parse_args_json(args)
    with Producer(settings, registry) as producer:
        intent = producer.intent(tool, arguments, key=key, meta=parse_meta(meta))
        if wait is not None:
            # Reachable, and not another call's key, before anything is sent.
            producer.result(intent, 0)
        producer.send_intent(intent)
        queue = settings.sqs_queue if settings.transport == "sqs" else settings.celery_queue
        sent = {
            "intent_id": intent.intent_id,
            "key": intent.key,
            "tool": intent.tool,
            "transport": settings.transport,
            "queue": queue,
        }
        if wait is None:
            if as_json:
                print_json(sent)
            else:
                console().print(
                    f"enqueued {intent.intent_id}  key {intent.key}  ({tool} via {queue})"
                )
            return
        awaited = producer.result(intent, wait)
    _report(sent, awaited, as_json)


def _report(sent: dict[str, Any], awaited: Any, as_json: bool) -> None:
    from intentq.ops.awaiting import Status

    if as_json:
        print_json(
            {
                **sent,
                "status": str(awaited.status),
                "result": awaited.result,
                "error": awaited.error or None,
                "attempts": awaited.attempts,
                "waited": round(awaited.waited, 3),
            }
        )
    elif awaited.status is Status.COMPLETED:
        console().print(f"enqueued {sent['intent_id']}  key {sent['key']}")
        console().print(json.dumps(awaited.result, indent=2), markup=False)
    else:
        console().print(f"enqueued {sent['intent_id']}  key {sent['key']}")
    where = f"{sent['tool']}:{sent['key']}"
    if awaited.status is Status.DEAD:
        error = awaited.error
        raise CliError(
            f"{where} was dead-lettered ({error.get('reason')}): "
            f"{error.get('type')}: {error.get('message')}",
            ExitCode.DEAD,
        )
    if awaited.status is Status.TIMEOUT:
        raise CliError(
            f"no result for {where} after {awaited.waited:.1f}s; it may still run: "
            f"`intentq result {sent['tool']} {sent['key']}` tells later",
            ExitCode.TIMEOUT,
        )


def result(
    tool: ToolArg,
    key: KeyArg,
    as_json: JsonFlag = False,
) -> None:
    """Show what became of TOOL under KEY: its result, or why it was dead-lettered.

    Exits 0 when the key completed or is still running, 7 when it was dead-lettered, 5 when
    the store has no record of it (never claimed, or expired).
    """
    from intentq.connections import opened_store
    from intentq.dedup.base import State

    with opened_store(load_settings()) as store:
        record = store.get(tool, key)
    if record is None:
        raise CliError(
            f"no record of {tool}:{key} in the store (never claimed, or expired)",
            ExitCode.NOT_FOUND,
        )
    document = {
        "tool": tool,
        "key": key,
        "state": str(record.state),
        "attempts": record.attempts,
        "result": record.result,
        "error": record.error,
    }
    if as_json:
        print_json(document)
    else:
        fields = {**document, "result": json.dumps(record.result)}
        console().print(show_fields(f"{tool}:{key}", fields))
    if record.state is State.FAILED:
        raise CliError(
            f"{tool}:{key} was dead-lettered: {(record.error or {}).get('message', '')}",
            ExitCode.DEAD,
        )
