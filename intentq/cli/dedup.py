"""``intentq dedup get | forget | gc``: the idempotency store, record by record."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from intentq.cli.common import JsonFlag, KeyArg, ToolArg, load_settings, usage
from intentq.cli.exits import CliError, ExitCode
from intentq.cli.group import typer_app
from intentq.cli.output import console, print_json, show_fields

dedup_app = typer_app(
    help="Inspect and manage the idempotency store.",
    epilog="Example:  intentq dedup get book_slot conv42-call7",
)


def _missing(tool: str, key: str) -> CliError:
    return CliError(f"no record of {tool}:{key} (never claimed, or expired)", ExitCode.NOT_FOUND)


@dedup_app.command("get", epilog="Example:  intentq dedup get book_slot conv42-call7 --json")
def get(tool: ToolArg, key: KeyArg, as_json: JsonFlag = False) -> None:
    """Show the store's record of TOOL under KEY: state, attempts, lease, result, error."""
    from intentq.connections import opened_store
    from intentq.ops.serialize import record_detail

    with opened_store(load_settings()) as store:
        record = store.get(tool, key)
    if record is None:
        raise _missing(tool, key)
    detail = record_detail(record)
    if as_json:
        print_json(detail)
        return
    shown = {**detail, "result": json.dumps(detail["result"]), "error": json.dumps(detail["error"])}
    console().print(show_fields(f"{tool}:{key}", shown))


@dedup_app.command("forget", epilog="Example:  intentq dedup forget book_slot conv42-call7 --yes")
def forget(
    tool: ToolArg,
    key: KeyArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete the record of TOOL under KEY: the next intent with that key runs the tool again.

    Asks for confirmation unless --yes; without a terminal to ask on, refuses (exit 2).
    """
    from intentq.connections import opened_store

    with opened_store(load_settings()) as store:
        record = store.get(tool, key)
        if record is None:
            raise _missing(tool, key)
        if not yes:
            if not sys.stdin.isatty():
                raise usage(f"refusing to forget {tool}:{key} without --yes: no terminal to ask")
            question = f"Forget {tool}:{key} ({record.state})? Its tool may then run again"
            if not typer.confirm(question, default=False):
                raise CliError("nothing forgotten", ExitCode.FAILURE)
        existed = store.forget(tool, key)
    if as_json:
        print_json({"tool": tool, "key": key, "forgotten": existed})
    else:
        console().print(f"forgot {tool}:{key}" if existed else f"{tool}:{key} was already gone")


@dedup_app.command("gc", epilog="Example:  intentq dedup gc --json")
def gc(as_json: JsonFlag = False) -> None:
    """Delete expired records now (the SQL store; Redis expires keys by itself)."""
    from intentq.connections import opened_store

    with opened_store(load_settings()) as store:
        removed = store.gc()
    if as_json:
        print_json({"removed": removed})
    else:
        console().print(f"removed {removed} expired record(s)")
