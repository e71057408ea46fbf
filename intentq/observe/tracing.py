"""OpenTelemetry traces through the API alone: a PRODUCER span per send, a CONSUMER span per
delivery, linked by the W3C ``traceparent`` the transport carries (SQS message attributes,
Celery headers).

Without an SDK the API's tracer is a no-op and nothing is propagated. The envelope keeps the
first send's ``traceparent`` in ``meta``: it survives the DLQ, and a replay's spans link back
to it. Attribute names are OpenTelemetry's messaging conventions, plus ``intentq.*``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from intentq.extras import require

require("opentelemetry.trace", "tracing", "tracing")  # a missing one is one line naming the extra

from opentelemetry import context, propagate, trace  # noqa: E402
from opentelemetry.trace import Link, Span, SpanKind, StatusCode  # noqa: E402

from intentq.outcome import SendToDLQ  # noqa: E402

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from intentq.executor import Job
    from intentq.observe.base import Report
    from intentq.outcome import Delivery

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# What a transport carries: the W3C trace context headers, nothing else.
HEADERS = (TRACEPARENT, TRACESTATE)
# intentq's transport names as OpenTelemetry's messaging.system values.
SYSTEMS = {"sqs": "aws_sqs", "celery": "celery"}

# The consumer span this thread (or task) is in, so the observer sets attributes on it and
# never on a span of the caller's.
_current: ContextVar[Span | None] = ContextVar("intentq_consumer_span", default=None)


@dataclass
class Sending:
    """A PRODUCER span: its ``carrier`` goes with the message, ``span`` takes the message id."""

    span: Span
    carrier: dict[str, str] = field(default_factory=dict)

    def sent(self, message_id: str | None) -> None:
        if message_id:
            self.span.set_attribute("messaging.message.id", message_id)


class Tracing:
    """Spans for intentq: ``sending()`` for producers, and the observer for workers."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        from intentq import __version__

        self.tracer = trace.get_tracer("intentq", __version__, tracer_provider=tracer_provider)

    # -- producing ---------------------------------------------------------------------

    @contextmanager
    def sending(
        self,
        transport: str,
        queue: str,
        *,
        count: int = 1,
        tool: str | None = None,
        intent_id: str | None = None,
        origin: str | None = None,
    ) -> Iterator[Sending]:
        """``send {queue}``; ``origin`` is the ``traceparent`` a re-sent body carries (a
        replay), kept as a link to the trace the message started in."""
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEMS.get(transport, transport),
            "messaging.destination.name": queue,
            "messaging.operation.type": "send",
        }
        if count != 1:
            attributes["messaging.batch.message_count"] = count
        if tool:
            attributes["intentq.tool"] = tool
        if intent_id:
            attributes["intentq.intent_id"] = intent_id
        links = _links(origin)
        with self.tracer.start_as_current_span(
            f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes, links=links
        ) as span:
            sending = Sending(span)
            propagate.inject(sending.carrier)
            yield sending

    # -- consuming: the observer -------------------------------------------------------

    def processing(
        self, delivery: Delivery, prepared: Job | SendToDLQ, carrier: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        # Every attribute costs the SDK a validation: only what a reader needs, set once.
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEMS.get(delivery.transport, delivery.transport),
            "messaging.destination.name": delivery.queue,
            "messaging.operation.type": "process",
            "messaging.message.id": delivery.message_id,
        }
        if delivery.receive_count > 1:
            attributes["messaging.message.delivery_count"] = delivery.receive_count
        origin = None
        if isinstance(prepared, SendToDLQ):
            letter = prepared.letter
            attributes["intentq.outcome"] = "dead_lettered"
            attributes["intentq.dead_letter.reason"] = str(letter.reason)
            if letter.tool:
                attributes["intentq.tool"] = letter.tool
        else:
            attributes["intentq.tool"] = prepared.tool
            attributes["intentq.intent_id"] = prepared.intent_id
            value = prepared.meta.get(TRACEPARENT)
            origin = value if isinstance(value, str) else None
        sent = carrier.get(TRACEPARENT)
        parent: Context | None = None
        links: list[Link] = []
        if sent:  # the send that delivered this message: a replay links the first trace
            parent = propagate.extract(carrier)
            if origin and _trace_id(origin) != _trace_id(sent):
                links = _links(origin)
        elif origin:  # a body sent without trace headers (by another client, say)
            parent = propagate.extract({TRACEPARENT: origin})
        span = self.tracer.start_span(
            f"process {delivery.queue}", context=parent, kind=SpanKind.CONSUMER,
            attributes=attributes, links=links,
        )  # fmt: skip
        return _Processing(span)

    def tool_started(self, job: Job, attempt: int) -> None:
        pass

    def tool_finished(self, job: Job, seconds: float) -> None:
        pass

    def concluded(self, report: Report) -> None:
        span = _current.get()
        if span is None or not span.is_recording():
            return
        outcome = report.outcome_label
        attributes: dict[str, Any] = {"intentq.outcome": outcome}
        if report.decision is not None:
            attributes["intentq.dedup.decision"] = report.decision
        if report.attempt is not None:
            attributes["intentq.attempt"] = report.attempt
        if report.dead_reason is not None:
            attributes["intentq.dead_letter.reason"] = report.dead_reason
        span.set_attributes(attributes)  # one call: the SDK takes a lock per call
        if outcome in ("retried", "dead_lettered"):
            why = report.outcome.letter.error_type if isinstance(report.outcome, SendToDLQ) else ""
            span.set_status(StatusCode.ERROR, why or outcome)

    def store_failed(self, queue: str, operation: str) -> None:
        span = _current.get()
        if span is not None and span.is_recording():
            span.add_event("intentq.store_error", {"intentq.store.operation": operation})

    def lease_extended(self, job: Job) -> None:
        pass


class _Processing:
    """The consumer span, current for the block (the tool's spans nest under it), ended after
    it; a plain class, as it is entered once per message."""

    __slots__ = ("_context_token", "_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        self._context_token = context.attach(trace.set_span_in_context(self._span))
        self._token = _current.set(self._span)
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _current.reset(self._token)
        context.detach(self._context_token)
        if exc is not None:
            self._span.record_exception(exc)
            self._span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
        self._span.end()


def carrier_of(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """The trace headers among ``headers`` (message attributes, task headers)."""
    if not headers:
        return {}
    return {name: str(headers[name]) for name in HEADERS if headers.get(name)}


def _links(traceparent: str | None) -> list[Link]:
    if not traceparent:
        return []
    context = trace.get_current_span(propagate.extract({TRACEPARENT: traceparent}))
    span_context = context.get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


def _trace_id(traceparent: str) -> str:
    # version-traceid-spanid-flags
    return traceparent.split("-", 2)[1] if traceparent.count("-") >= 2 else ""
