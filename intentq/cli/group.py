"""The root command group: every failure becomes one line on stderr and a named exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer

# typer vendors its own click; its exceptions live there.
from typer._click import exceptions as click_exc
from typer._click.core import Context
from typer.core import TyperGroup

from intentq.cli.exits import CliError, ExitCode, code_for
from intentq.cli.output import error_line
from intentq.errors import IntentqError


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
        except click_exc.NoArgsIsHelpError as exc:
            # The help was printed when the error was made (Rich help); plain help is in it.
            if exc.format_message().strip():
                sys.stdout.write(exc.format_message() + "\n")
            return ExitCode.USAGE
        except click_exc.UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            error_line(f"{exc.format_message()}{hint}")
            return ExitCode.USAGE
        except click_exc.ClickException as exc:
            error_line(exc.format_message())
            return exc.exit_code
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

    def invoke(self, ctx: Context) -> Any:
        # The root's options are parsed by now, the command's not yet: a usage error in
        # them has no traceback to show anyway.
        self.debug = bool(ctx.params.get("debug"))
        return super().invoke(ctx)


def typer_app(**kwargs: Any) -> typer.Typer:
    """A sub-command group with the house defaults."""
    kwargs.setdefault("no_args_is_help", True)
    kwargs.setdefault("add_completion", False)
    kwargs.setdefault("pretty_exceptions_enable", False)
    return typer.Typer(**kwargs)
