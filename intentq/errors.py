"""One exception tree for everything intentq raises."""

from __future__ import annotations

from typing import Any


class IntentqError(Exception):
    """Root of every error intentq raises."""


class ConfigError(IntentqError):
    """The settings are missing, malformed or contradictory."""


class SchemaMismatch(ConfigError):
    """The database holds a schema this code cannot use: ``found`` and ``needed`` versions."""

    def __init__(self, what: str, found: str | None, needed: str) -> None:
        have = f"version {found}" if found else "no versioned schema"
        super().__init__(
            f"the {what} has {have}, this intentq needs {needed}: run `intentq init`"
        )
        self.what, self.found, self.needed = what, found, needed


class SchemaTooNew(SchemaMismatch):
    """The database is at a revision newer than this code, and this code cannot use it."""

    def __init__(self, what: str, found: str, compat: str, needed: str) -> None:
        super().__init__(what, found, needed)
        # Running `intentq init` cannot help: the database is ahead, the code is behind.
        self.args = (
            f"the {what} has version {found}, which needs intentq written for version "
            f"{compat} or later; this intentq is written for {needed}: upgrade intentq",
        )
        self.compat = compat


class InvalidIntent(IntentqError):
    """A message is not a valid intent envelope; ``reason`` says why in one word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class RegistryError(IntentqError):
    """A tool was registered wrongly (bad name, duplicate name, bad options)."""


class UnknownTool(IntentqError):
    """No tool of that name is registered."""

    def __init__(self, tool: str) -> None:
        super().__init__(f"unknown tool {tool!r}")
        self.tool = tool


class InvalidArgs(IntentqError):
    """A tool's arguments failed its schema; ``detail`` keeps the validator's text."""

    def __init__(self, tool: str, detail: str) -> None:
        super().__init__(f"arguments for {tool!r} failed validation: {detail}")
        self.tool = tool
        self.detail = detail


class TransientError(IntentqError):
    """Raised by a tool (or by intentq) to say: this may succeed if retried later."""


class DedupError(IntentqError):
    """The idempotency store refused or failed an operation."""


class LeaseLost(DedupError):
    """The caller's fencing token no longer owns the record: another worker took over."""

    def __init__(self, tool: str, key: str, token: str, record: Any = None) -> None:
        super().__init__(f"lease lost on {tool}:{key} (token {token[:8]}...)")
        self.tool = tool
        self.key = key
        self.token = token
        self.record = record


class NewerRecordFormat(DedupError):
    """A record was written in a format newer than this code reads: a newer intentq wrote it.

    The claim fails, so the transport gives the message back and a newer worker takes it.
    """

    def __init__(self, found: int, readable: int) -> None:
        super().__init__(
            f"a dedup record is in format {found}, written by a newer intentq; this one reads "
            f"formats up to {readable}: finish upgrading the workers"
        )
        self.found = found
        self.readable = readable


class StoreUnavailable(DedupError, TransientError):
    """The idempotency store cannot be reached; never run a tool without a claim."""


class KeyReuseMismatch(DedupError):
    """The key holds another call's record (other tool arguments): never that call's result.

    ``fingerprint`` is this intent's, ``existing`` the one the store holds under the key.
    """

    def __init__(self, tool: str, key: str, fingerprint: str, existing: str) -> None:
        super().__init__(
            f"key {key!r} of {tool!r} was used for other arguments: the store holds "
            f"fingerprint {existing[:12]}..., this intent has {fingerprint[:12]}..."
        )
        self.tool = tool
        self.key = key
        self.fingerprint = fingerprint
        self.existing = existing


class DLQError(IntentqError):
    """The dead-letter store refused or failed an operation."""


class DLQUnavailable(DLQError, TransientError):
    """The dead-letter store cannot be reached."""


class LetterNotFound(DLQError):
    """No dead letter has that id."""

    def __init__(self, letter_id: str) -> None:
        super().__init__(f"no dead letter with id {letter_id!r}")
        self.letter_id = letter_id


class OutboxError(IntentqError):
    """The outbox table refused or failed an operation."""


class OutboxUnavailable(OutboxError, TransientError):
    """The outbox's database cannot be reached."""


class TransportError(IntentqError):
    """A broker call failed."""


class TransportUnavailable(TransportError, TransientError):
    """The broker cannot be reached."""


class Retry(IntentqError):
    """Control flow: the current delivery is to be retried after ``delay`` seconds."""

    def __init__(self, delay: float, spend_attempt: bool = True) -> None:
        super().__init__(f"retry in {delay:.3f}s")
        self.delay = delay
        self.spend_attempt = spend_attempt


class InvalidToolCall(InvalidIntent):
    """A model's tool call cannot become an intent; ``call_id`` says which call it was."""

    def __init__(
        self, reason: str, message: str, *, tool: str | None = None, call_id: str | None = None
    ) -> None:
        super().__init__(reason, message)
        self.tool = tool
        self.call_id = call_id
