"""Exit codes: one name per kind of failure, so scripts can tell them apart."""

from __future__ import annotations

import enum

from intentq.errors import (
    ConfigError,
    DLQUnavailable,
    IntentqError,
    InvalidArgs,
    InvalidIntent,
    KeyReuseMismatch,
    LetterNotFound,
    OutboxUnavailable,
    SchemaMismatch,
    StoreUnavailable,
    TransportUnavailable,
    UnknownTool,
)
from intentq.preflight import StoreRequired


class ExitCode(enum.IntEnum):
    """What ``intentq`` returns to the shell."""

    OK = 0
    FAILURE = 1  # anything else went wrong (a partial replay, a failed demo check)
    USAGE = 2  # bad arguments, or a refusal (no selector, no --yes without a terminal)
    CONFIG = 3  # bad settings: an unknown variable, a bad URL, an app that does not import
    UNAVAILABLE = 4  # a store, the DLQ, the outbox's database or the broker cannot be reached
    NOT_FOUND = 5  # no such letter, record or tool
    TIMEOUT = 6  # `enqueue --wait` saw no result in time
    DEAD = 7  # `enqueue --wait`: the intent was dead-lettered
    KEY_REUSE = 8  # `enqueue --wait`: the key holds another call's record (other arguments)
    STORE_REQUIRED = 9  # `worker --require-store`: the store did not answer at start
    SCHEMA = 10  # a table's schema version is not one this intentq runs on (`init --check`)


class CliError(Exception):
    """Stop the command: print ``message`` as one line on stderr and exit with ``code``."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# Most specific first: StoreUnavailable is also a DedupError and a TransientError.
_CODES: tuple[tuple[type[IntentqError], ExitCode], ...] = (
    (SchemaMismatch, ExitCode.SCHEMA),  # a ConfigError, told apart: `intentq init` fixes it
    (ConfigError, ExitCode.CONFIG),
    (KeyReuseMismatch, ExitCode.KEY_REUSE),
    (StoreRequired, ExitCode.STORE_REQUIRED),
    (StoreUnavailable, ExitCode.UNAVAILABLE),
    (DLQUnavailable, ExitCode.UNAVAILABLE),
    (TransportUnavailable, ExitCode.UNAVAILABLE),
    (OutboxUnavailable, ExitCode.UNAVAILABLE),
    (LetterNotFound, ExitCode.NOT_FOUND),
    (UnknownTool, ExitCode.NOT_FOUND),
    (InvalidArgs, ExitCode.USAGE),
    (InvalidIntent, ExitCode.USAGE),
)


def code_for(exc: IntentqError) -> ExitCode:
    """The exit code an intentq error maps to."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return ExitCode.FAILURE
