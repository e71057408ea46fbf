"""The root command group: every failure becomes one line on stderr and a named exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from intentq.cli.exits import CliError, ExitCode, code_for
from intentq.cli.output import error_line
from intentq.errors import IntentqError


class HelpAsked(Exception):
    """A group was called without a command: its help is shown instead (exit 2)."""

    def __init__(self, help_text: str) -> None:
        super().__init__(help_text)
        self.help_text = help_text


class IntentqGroup(TyperGroup):
    """Runs the command non-standalone and turns every exception into one error line.

    ``intentq --debug COMMAND`` lets an unexpected error (and an intentq one) show its
    traceback instead: the flag is the root's own option, so it counts only before the
    command's name, as the root parsed it; a ``--debug`` later in the line is not it.
    """

    debug = False

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        code = self._run(argv, prog_name or "intentq", complete_var, extra)
        if standalone_mode:
            sys.exit(int(code))
        return int(code)

    def _run(
        self, argv: list[str], prog_name: str, complete_var: str | None, extra: dict[str, Any]
    ) -> ExitCode | int:
        self.debug = False
        try:
            rv = super().main(
                args=argv,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except CliError as exc:
            error_line(exc.message)
            return exc.code
        except IntentqError as exc:
            if self.debug:
                raise
            error_line(str(exc))
            return code_for(exc)
        except HelpAsked as exc:
            sys.stdout.write(exc.help_text + "\n")
            return ExitCode.USAGE
        except typer.TyperException as exc:
            # Click's errors, as typer raises them: a usage error (exit 2) carries the
            # command it was made in.
            if exc.exit_code != ExitCode.USAGE:
                error_line(exc.format_message())
                return exc.exit_code
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            error_line(f"{exc.format_message()}{hint}")
            return ExitCode.USAGE
        except typer.Abort:
            error_line("aborted")
            return ExitCode.FAILURE
        except (KeyboardInterrupt, EOFError):
            error_line("interrupted")
            return 130
        except BrokenPipeError:
            return ExitCode.FAILURE
        except Exception as exc:
            if self.debug:
                raise
            error_line(f"unexpected {type(exc).__name__}: {exc} (--debug shows the traceback)")
            return ExitCode.FAILURE
        if isinstance(rv, int):  # an Exit(code) raised inside the command comes back as int
            return rv
        return ExitCode.OK

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # typer would raise its own no-arguments error, a private class: the help is shown
        # here instead.
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            raise HelpAsked(ctx.get_help())
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        # The root's options are parsed by now, the command's not yet: a usage error in
        # them has no traceback to show anyway.
        self.debug = bool(ctx.params.get("debug"))
        return super().invoke(ctx)


def typer_app(**kwargs: Any) -> typer.Typer:
    """A sub-command group with the house defaults."""
    kwargs.setdefault("cls", IntentqGroup)
    kwargs.setdefault("no_args_is_help", True)
    # Plain help, as Click renders it: typer's Rich help shows a flag such as --json as
    # taking a <bool>.
    kwargs.setdefault("rich_markup_mode", None)
    kwargs.setdefault("add_completion", False)
    kwargs.setdefault("pretty_exceptions_enable", False)
    return typer.Typer(**kwargs)
