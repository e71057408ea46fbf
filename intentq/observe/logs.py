"""Structured logs: a JSON formatter, and an observer that logs one line per delivery's outcome.

With ``--log-format json`` every log record is one JSON object per line; the decision lines
(logger ``intentq.decisions``) carry the intent id, key, tool, queue, the store's decision,
the attempt, the outcome and the duration as fields of their own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from intentq.outcome import SendToDLQ

if TYPE_CHECKING:
    from intentq.executor import Job
    from intentq.observe.base import Report
    from intentq.outcome import Delivery

DECISIONS_LOGGER = "intentq.decisions"
# The attribute of a log record that holds a decision line's fields.
FIELDS = "intentq"
# Attributes every LogRecord has: anything else a caller passed in ``extra`` is a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_NO_SPAN: AbstractContextManager[None] = nullcontext()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            out.update(fields)
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name != FIELDS and name not in out:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def use_json(logger: logging.Logger | None = None) -> None:
    """Every handler of ``logger`` (the root logger by default) writes JSON lines."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        handler.setFormatter(JsonFormatter())


class DecisionLog:
    """The observer that logs one line per delivery, at INFO (a dead letter at WARNING)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger(DECISIONS_LOGGER)

    def processing(
        self, delivery: Delivery, prepared: Job | SendToDLQ, carrier: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        return _NO_SPAN

    def tool_started(self, job: Job, attempt: int) -> None:
        pass

    def tool_finished(self, job: Job, seconds: float) -> None:
        pass

    def concluded(self, report: Report) -> None:
        outcome = report.outcome_label
        level = logging.WARNING if outcome == "dead_lettered" else logging.INFO
        if not self.log.isEnabledFor(level):
            return
        job, delivery = report.job, report.delivery
        letter = report.outcome.letter if isinstance(report.outcome, SendToDLQ) else None
        fields: dict[str, Any] = {
            "intent_id": job.intent_id if job else (letter.intent_id if letter else None),
            "key": job.key if job else (letter.key if letter else None),
            "tool": report.tool,
            "queue": delivery.queue,
            "transport": delivery.transport,
            "message_id": delivery.message_id,
            "decision": report.decision,
            "attempt": report.attempt,
            "outcome": outcome,
            "duration": round(report.seconds, 6),
        }
        if letter is not None:
            fields["reason"] = str(letter.reason)
            fields["error_type"] = letter.error_type
        self.log.log(level, "%s %s: %s", fields["tool"], fields["key"], outcome,
                     extra={FIELDS: fields})  # fmt: skip

    def store_failed(self, queue: str, operation: str) -> None:
        pass

    def lease_extended(self, job: Job) -> None:
        pass
