"""A tool's answer in vendor-neutral form, from a result, an ``Awaited`` or an exception.

Every failure becomes something the model can read, ``{"error": {"status", "reason",
"message", ...}}``, never a traceback and never an exception in the agent loop: a model that
is told why a call failed can correct its arguments or tell the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from intentq.errors import InvalidIntent, InvalidToolCall
from intentq.ops.awaiting import Awaited, Status

# Long enough for a validator's report, short enough not to flood the model's context.
MESSAGE_MAX_CHARS = 2000
# Only these fields of a dead intent's error reach the model: never a traceback, never ids
# that mean something to operators only.
_ERROR_FIELDS = ("reason", "type", "message")


@dataclass(frozen=True)
class Reply:
    """What to tell the model: the JSON value, its text, and whether it is an error."""

    value: Any
    text: str
    is_error: bool = False


def _default(value: object) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    # The text is for a model to read, not a data contract: show what it is.
    return str(value)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (pydantic models dumped, other objects as text)."""
    return json.loads(json.dumps(value, default=_default))


def as_text(value: Any) -> str:
    """Text for the model: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=_default)


def _error(status: str, reason: str, message: str, **extra: Any) -> Reply:
    body: dict[str, Any] = {"status": status, "reason": reason}
    body.update({name: value for name, value in extra.items() if value is not None})
    body["message"] = message[:MESSAGE_MAX_CHARS]
    value = {"error": body}
    return Reply(value, as_text(value), is_error=True)


def error_reply(exc: BaseException) -> Reply:
    """An exception as an error the model can read: its reason and message only."""
    if isinstance(exc, InvalidIntent):
        tool = exc.tool if isinstance(exc, InvalidToolCall) else None
        return _error("rejected", exc.reason, exc.message, tool=tool)
    return _error("error", type(exc).__name__, str(exc))


def _awaited_reply(done: Awaited) -> Reply:
    if done.status is Status.COMPLETED:
        return result_reply(done.result)
    if done.status is Status.DEAD:
        error = {name: done.error.get(name) for name in _ERROR_FIELDS}
        return _error(
            "dead", str(error["reason"] or "failed"), str(error["message"] or "the tool failed"),
            tool=done.tool, type=error["type"],
        )  # fmt: skip
    if done.status is Status.TIMEOUT:
        return _error(
            "timeout", "timeout",
            f"no result after {done.waited:.1f}s; the call may still complete", tool=done.tool,
        )  # fmt: skip
    # A status added after this module: still an error the model can read.
    return _error(str(done.status), str(done.status), "the call did not complete", tool=done.tool)


def result_reply(value: Any) -> Reply:
    """A tool's result as a successful reply."""
    plain = value if isinstance(value, str) else jsonable(value)
    return Reply(plain, as_text(plain))


def to_reply(result: Any) -> Reply:
    """The reply for an ``Awaited``, an exception, or a tool's plain result value."""
    if isinstance(result, Awaited):
        return _awaited_reply(result)
    if isinstance(result, BaseException):
        return error_reply(result)
    return result_reply(result)
