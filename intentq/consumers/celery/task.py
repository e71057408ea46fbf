"""``IdempotentTask``: a Celery task base that runs every call through the executor.

Tasks ``intentq.<tool>`` take one envelope; any ordinary ``@app.task(base=IdempotentTask)``
is deduplicated on its ``idempotency_key`` keyword argument, or else on its task id.

What each outcome becomes, with ``acks_late`` and ``reject_on_worker_lost``:

- ``Ack``: the task returns the result; a duplicate returns the first call's result.
- ``RetryLater``: ``self.retry(countdown=delay)``. Celery's retry count is not a limit: the
  attempt count lives in the store, shared by retries and by redeliveries after a crash.
- ``SendToDLQ``: the letter is written, then ``DeadLettered`` is raised; a failure is acked
  (``acks_on_failure``), so a poison message never loops. If the DLQ cannot take the letter,
  the task is retried carrying the letter, and only writes it next time.
- ``AlreadyDead``: ``DeadLettered`` again, acked, nothing new written.

A pool child killed mid-tool is redelivered (``reject_on_worker_lost``); its claim runs out
and the next delivery takes over with the next attempt number, until ``max_attempts`` turns
a message that keeps killing its worker into a ``crash_loop`` letter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import inspect
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Reject
from celery.exceptions import Retry as CeleryRetry

from intentq.consumers.celery.letters import letter_from_json, letter_to_json
from intentq.consumers.celery.publish import PlainTask
from intentq.consumers.celery.runtime import Runtime, runtime_of
from intentq.context import ToolContext
from intentq.dlq.base import DeadLetter, Reason
from intentq.errors import IntentqError, TransientError
from intentq.executor import Executor, Job
from intentq.intent import canonical_json
from intentq.outcome import Ack, Delivery, Outcome, RetryLater, SendToDLQ
from intentq.registry import TOOL_NAME_RE, ToolSpec

log = logging.getLogger("intentq.celery")

TRANSPORT = "celery"
KEY_KWARG = "idempotency_key"
# A retried task carries the letter the DLQ could not take under this keyword argument.
LETTER_KWARG = "_intentq_letter"
# Message headers with the W3C trace context (intentq.observe.tracing).
TRACE_HEADERS = ("traceparent", "tracestate")


class DeadLettered(IntentqError):
    """The call was dead-lettered (or was already): the message is acked, never retried."""

    def __init__(self, reason: str, message: str = "", letter_id: str | None = None) -> None:
        # All three in ``args``: a result backend rebuilds the exception from them.
        super().__init__(reason, message, letter_id)
        self.reason = reason
        self.message = message
        self.letter_id = letter_id

    def __str__(self) -> str:
        where = f" (dead letter {self.letter_id})" if self.letter_id else ""
        return f"{self.reason}: {self.message}{where}"


def tool_name_for_task(name: str) -> str:
    """A store-safe tool name for a plain task: its own name when that is valid."""
    if TOOL_NAME_RE.match(name):
        return name
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:47]
    return f"task_{safe}.{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def delivery_of(request: Any, default_queue: str) -> Delivery:
    """The facts the executor needs about this delivery of the task."""
    info = request.delivery_info or {}
    redelivered = 1 if info.get("redelivered") else 0
    return Delivery(
        transport=TRANSPORT,
        queue=info.get("routing_key") or default_queue,
        message_id=request.id or "",
        receive_count=(request.retries or 0) + 1 + redelivered,
    )


class IdempotentTask(Task):  # type: ignore[misc]
    """A Celery task whose side effect runs at most once per idempotency key."""

    acks_late = True
    reject_on_worker_lost = True
    acks_on_failure = True
    # A task killed by a hard time limit is redelivered: its claim runs out, then it is
    # retried with the next attempt number instead of being acked away unfinished.
    acks_on_timeout = False
    max_retries = None
    throws = (DeadLettered,)
    typing = False
    # Set on the ``intentq.<tool>`` tasks that ``configure_app`` registers.
    intentq_tool: str | None = None
    intentq_raw = False
    # Policy of a plain task; ``None`` falls back to the settings.
    intentq_max_attempts: int | None = None
    intentq_lease: float | None = None
    intentq_ttl: float | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        runtime = runtime_of(self.app)
        request = self.request
        if kwargs:  # an envelope comes with none
            pending = kwargs.pop(LETTER_KWARG, None)
            if isinstance(pending, dict):
                return self._dead_letter(runtime, letter_from_json(pending), args, kwargs)
        delivery = delivery_of(request, runtime.settings.celery_queue)
        try:
            executor = runtime.executor()
            job = self._prepare(executor, delivery, args, kwargs)
            # The tool runs inside the observer's span, so spans of its own nest under it.
            with executor.observer.processing(delivery, job, _trace_headers(request)):
                outcome = job if isinstance(job, SendToDLQ) else self._resolve(executor, job)
        except Exception as exc:
            # A store or a bug outside any tool: the message must not be acked unfinished,
            # nor retried forever.
            log.exception("%s[%s]: could not process", self.name, request.id)
            if delivery.receive_count > runtime.policy.max_receives:
                letter = self._unprocessable(exc, delivery, args, kwargs)
                return self._dead_letter(runtime, letter, args, kwargs)
            delay = runtime.policy.outage_delay(delivery.receive_count)
            self._retry(delay, why=f"{type(exc).__name__}: {exc}")
        return self._carry_out(runtime, outcome, job, args, kwargs)

    @staticmethod
    def _resolve(executor: Executor, job: Job) -> Outcome:
        return executor.resolve(job, executor.claim([job])[0])

    # -- prepare ------------------------------------------------------------------------

    def _prepare(
        self, executor: Executor, delivery: Delivery, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Job | SendToDLQ:
        if self.intentq_raw:
            return executor.prepare(_raw_body(args), delivery)
        if self.intentq_tool is not None:
            body = args[0] if len(args) == 1 and not kwargs else {"args": args, "kwargs": kwargs}
            return executor.prepare(_json_bytes(body), delivery)
        return self._prepare_plain(executor, delivery, args, kwargs)

    def _prepare_plain(
        self, executor: Executor, delivery: Delivery, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Job | SendToDLQ:
        request_id = str(self.request.id or "")
        key = kwargs.get(KEY_KWARG) or request_id
        call = {"args": list(args), "kwargs": {k: v for k, v in kwargs.items() if k != KEY_KWARG}}
        body = _plain_body(self.name, request_id, args, kwargs)
        return executor.prepare_job(self._spec, call, str(key), request_id, body, delivery)

    @cached_property
    def _spec(self) -> ToolSpec:
        """The plain task as a tool: its arguments are ``{"args": [...], "kwargs": {...}}``."""
        run = getattr(self, "_orig_run", None) or self.run  # under Celery's autoretry wrapper
        try:
            takes_key = KEY_KWARG in inspect.signature(run).parameters
        except (TypeError, ValueError):
            takes_key = False

        def handler(call: dict[str, Any], ctx: ToolContext) -> Any:
            extra = {KEY_KWARG: ctx.key} if takes_key else {}
            try:
                return run(*call["args"], **call["kwargs"], **extra)
            except CeleryRetry as exc:
                # ``self.retry()`` inside the call already re-sent the message; the attempt
                # still counts, and the copy it sent is deduplicated.
                raise TransientError(f"the task asked to be retried: {exc}") from exc

        return ToolSpec(
            name=tool_name_for_task(self.name),
            handler=handler,
            max_attempts=self.intentq_max_attempts,
            retry_on=tuple(getattr(self, "autoretry_for", None) or ()),
            ttl=self.intentq_ttl,
            lease=self.intentq_lease,
        )

    def _unprocessable(
        self, exc: Exception, delivery: Delivery, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> DeadLetter:
        if self.intentq_raw:
            body = _raw_body(args)
        elif self.intentq_tool is not None:
            body = _json_bytes(args[0] if len(args) == 1 and not kwargs else list(args))
        else:
            body = _plain_body(self.name, delivery.message_id, args, kwargs)
        now = datetime.now(UTC)
        return DeadLetter(
            id="",
            body=body,
            reason=Reason.EXHAUSTED,
            tool=self.intentq_tool or (None if self.intentq_raw else self.name),
            intent_id=delivery.message_id or None,
            error_type=type(exc).__name__,
            error_message=f"received {delivery.receive_count} times, failing every time: {exc}",
            traceback="".join(traceback.format_exception(exc)),
            attempts=0,
            source_transport=TRANSPORT,
            source_queue=delivery.queue,
            first_seen=now,
            dead_at=now,
        )

    # -- carry out ----------------------------------------------------------------------

    def _carry_out(
        self,
        runtime: Runtime,
        outcome: Outcome,
        job: Job | SendToDLQ,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if isinstance(outcome, Ack):
            return outcome.result
        if isinstance(outcome, RetryLater):
            self._retry(outcome.delay, why=outcome.why)
        if isinstance(outcome, SendToDLQ):
            return self._dead_letter(runtime, outcome.letter, args, kwargs)
        error = outcome.error
        raise DeadLettered(str(error.get("reason", "dead")), str(error.get("message", "")))

    def _dead_letter(
        self,
        runtime: Runtime,
        letter: DeadLetter,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        try:
            letter_id = runtime.dead_letters().put(letter)
        except Exception as exc:
            # The store already says "failed": a plain retry would be acked as AlreadyDead
            # and the letter lost, so the retried message carries the letter itself.
            log.error("%s[%s]: the DLQ refused a letter (%s)", self.name, self.request.id, exc)
            delay = runtime.policy.outage_delay(self.request.retries + 1)
            self._retry(
                delay,
                why=str(exc),
                args=args,
                kwargs={**kwargs, LETTER_KWARG: letter_to_json(letter)},
            )
        raise DeadLettered(str(letter.reason), letter.error_message or "", letter_id)

    def _retry(
        self,
        delay: float,
        why: str = "",
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> NoReturn:
        # The attempt count lives in the store; Celery's own limit must never end a retry.
        limit = None if self.max_retries is None else sys.maxsize
        log.info("%s[%s]: retry in %.2fs (%s)", self.name, self.request.id, delay, why)
        try:
            raise self.retry(args=args, kwargs=kwargs, countdown=max(delay, 0.0), max_retries=limit)
        except Reject as exc:
            # Celery rejects without requeue when it cannot send the retry: that would drop
            # the intent. Requeue it instead; the store still knows where it stands.
            if exc.requeue:
                raise
            raise Reject(exc.reason, requeue=True) from None


def _trace_headers(request: Any) -> dict[str, str]:
    """The W3C trace context the publisher sent as message headers, if any."""
    carrier: dict[str, str] = {}
    headers = getattr(request, "headers", None) or {}
    for name in TRACE_HEADERS:
        # Custom headers become request attributes; some paths keep them under ``headers``.
        value = getattr(request, name, None) or headers.get(name)
        if isinstance(value, str) and value:
            carrier[name] = value
    return carrier


def _json_bytes(value: Any) -> bytes:
    try:
        return canonical_json(value)
    except (TypeError, ValueError):
        # Not JSON at all (only possible for calls made in-process): the executor calls it poison.
        return repr(value).encode("utf-8", "replace")


def _plain_body(name: str, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    plain = PlainTask(name, task_id, list(args), dict(kwargs))
    try:
        return plain.to_json()
    except (TypeError, ValueError):
        return repr(plain).encode("utf-8", "replace")


def _raw_body(args: tuple[Any, ...]) -> bytes:
    if len(args) == 1 and isinstance(args[0], str):
        try:
            return base64.b64decode(args[0], validate=True)
        except (binascii.Error, ValueError):
            pass
    return _json_bytes(list(args))
