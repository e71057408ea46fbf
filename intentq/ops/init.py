"""``init_resources``: create the tables and queues the settings name, or upgrade the tables
to this code's schema version; safe to run again. ``check_schemas`` reports the versions
(``intentq init --check``), ``schema_sql`` prints the DDL (``intentq init --sql``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from intentq.config.redact import redacted
from intentq.connections import is_sqs_dlq, opened_dlq, opened_store, sqlite_file
from intentq.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from intentq.config.settings import Settings
    from intentq.migrations import Applied, Status, Target

# The redrive policy moves a message to the DLQ only after the consumer's own limit has had
# its chance: the consumer dead-letters with the full error, SQS's redrive is the backstop
# for a message that keeps killing its worker before the consumer can record anything.
REDRIVE_MARGIN = 5
# SQS keeps a message at most 14 days; a DLQ should keep its letters as long as it can.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class InitStep:
    """One thing ``init`` made sure exists."""

    what: str  # "dedup store", "dead-letter store", "SQS queue", ...
    target: str  # a redacted URL or a queue name
    detail: str = "ready"


@dataclass(frozen=True)
class SchemaCheck:
    """One store's schema as ``intentq init --check`` reports it; ``status`` is ``None`` for a
    store without a versioned schema (Redis, memory, an SQS queue)."""

    what: str
    target: str
    status: Status | None

    @property
    def behind(self) -> bool:
        """True if this code cannot run on it yet: ``intentq init`` (or newer code) needed."""
        return self.status is not None and self.status.problem is not None

    def as_dict(self) -> dict[str, Any]:
        versioned = self.status.as_dict() if self.status is not None else {"state": "unversioned"}
        return {"what": self.what, "target": self.target, **versioned}


def init_resources(settings: Settings) -> list[InitStep]:
    """Create (or upgrade) the store's and the DLQ's schema and, for SQS, the queue with its
    redrive."""
    from intentq.migrations import upgrade

    steps: list[InitStep] = []
    with opened_store(settings, create=True) as store:
        target = _target_of(store)
        if target is None:
            store.create_schema()
            detail = "schema ready"
        else:
            detail = _applied(upgrade(target))
    steps.append(InitStep("dedup store", redacted(settings.dedup_url), detail))
    with opened_dlq(settings, create=True) as dlq:
        target = _target_of(dlq)
        if target is None:
            dlq.create_schema()
            detail = "queue ready" if is_sqs_dlq(settings.dlq_url) else "table ready"
        else:
            detail = _applied(upgrade(target))
    steps.append(InitStep("dead-letter store", redacted(settings.dlq_url), detail))
    if settings.outbox_url:
        steps.append(_init_outbox(settings))
    if settings.transport == "sqs":
        steps.extend(create_sqs_queues(settings))
    else:
        steps.append(
            InitStep(
                "Celery broker",
                redacted(settings.broker_url),
                f"queue {settings.celery_queue!r} is declared by the workers",
            )
        )
    return steps


def _init_outbox(settings: Settings) -> InitStep:
    """The outbox table in the application's database (its own migration family)."""
    from intentq.connections import open_outbox_for
    from intentq.migrations import upgrade

    outbox = open_outbox_for(settings)
    try:
        detail = _applied(upgrade(outbox.schema_target))
    finally:
        outbox.close()
    return InitStep("outbox table", redacted(settings.outbox_url or ""), detail)


def create_sqs_queues(settings: Settings) -> list[InitStep]:
    """The SQS DLQ, then the source queue whose redrive policy points at it."""
    from intentq.connections import sqs_client_for
    from intentq.sqs.queues import is_fifo, queue_name, translated

    source, target = queue_name(settings.sqs_queue), queue_name(settings.sqs_dlq)
    if is_fifo(source) != is_fifo(target):
        raise ConfigError(
            f"queue {source!r} and its DLQ {target!r} must both be FIFO (.fifo) or both standard"
        )
    max_receive = settings.max_receives + REDRIVE_MARGIN
    client = sqs_client_for(settings)
    try:
        dlq_url = _ensure_queue(
            client, target, {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}
        )
        with translated("GetQueueAttributes", target):
            arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive)})
        source_url = _ensure_queue(client, source, {"RedrivePolicy": redrive})
    finally:
        client.close()
    return [
        InitStep("SQS dead-letter queue", dlq_url, "ready"),
        InitStep("SQS queue", source_url, f"ready, redrive to {target} after {max_receive}"),
    ]


def _ensure_queue(client: SQSClient, name: str, attributes: dict[str, str]) -> str:
    """Create ``name`` if needed, then set ``attributes`` (create ignores them on a queue
    that exists)."""
    from intentq.sqs.queues import is_fifo, translated

    create: dict[str, Any] = {"QueueName": name}
    if is_fifo(name):
        create["Attributes"] = {"FifoQueue": "true"}
    with translated("CreateQueue", name):
        url = str(client.create_queue(**create)["QueueUrl"])
    with translated("SetQueueAttributes", name):
        client.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
    return url


# -- versioned schemas -----------------------------------------------------------------------


def check_schemas(settings: Settings) -> list[SchemaCheck]:
    """Each store's schema version and the revisions ``intentq init`` would apply; changes
    nothing (a SQLite file that is not there yet is reported as empty, not created)."""
    from intentq.migrations import status

    checks = []
    for what, url, opened in _stores(settings):
        with opened() as store:
            target = _target_of(store)
            checks.append(
                SchemaCheck(what, redacted(url), None if target is None else status(target))
            )
    return checks


def schema_sql(settings: Settings) -> str:
    """The DDL that ``intentq init`` would run on each SQL store, from the version it is at,
    for a DBA to review and apply (``intentq init --sql``); changes nothing."""
    from intentq.migrations import offline_sql

    parts = []
    for what, url, opened in _stores(settings):
        with opened() as store:
            target = _target_of(store)
            if target is None:
                parts.append(f"-- {what} {redacted(url)}: no SQL schema\n")
            else:
                parts.append(f"-- {what} {redacted(url)}\n{offline_sql(target)}")
    return "\n".join(parts)


def _stores(settings: Settings) -> list[tuple[str, str, Callable[[], Any]]]:
    """(what, url, open it for reading) for the dedup store, the DLQ and the outbox."""
    stores: list[tuple[str, str, Callable[[], Any]]] = [
        ("dedup store", settings.dedup_url, lambda: _reading(settings, dlq=False)),
        ("dead-letter store", settings.dlq_url, lambda: _reading(settings, dlq=True)),
    ]
    if settings.outbox_url:
        stores.append(("outbox table", settings.outbox_url, lambda: _reading_outbox(settings)))
    return stores


@contextmanager
def _reading_outbox(settings: Settings) -> Iterator[Any]:
    """The outbox's database, opened to read its schema; a SQLite file not there yet reads
    as an empty database, as in ``_reading``."""
    from intentq.connections import open_outbox_for
    from intentq.outbox.database import OutboxDatabase

    path = sqlite_file(settings.outbox_url or "")
    if path is not None and not path.exists():
        outbox = OutboxDatabase.from_url("sqlite://", settings.outbox_table)
    else:
        outbox = open_outbox_for(settings)
    try:
        yield outbox
    finally:
        outbox.close()


@contextmanager
def _reading(settings: Settings, *, dlq: bool) -> Iterator[Any]:
    """The store, opened to read its schema. A SQLite file that is not there yet reads as an
    empty database (one in memory, same table names), so a check leaves no file behind."""
    from intentq.connections import open_dlq, open_dlq_for, open_store, open_store_for

    path = sqlite_file(settings.dlq_url if dlq else settings.dedup_url)
    store: Any
    if path is not None and not path.exists():
        store = open_dlq("sqlite://") if dlq else open_store("sqlite://")
    else:
        store = open_dlq_for(settings) if dlq else open_store_for(settings)
    try:
        yield store
    finally:
        store.close()


def _target_of(store: object) -> Target | None:
    """The versioned table behind a store (the SQL ones), if any."""
    from intentq.migrations import Target

    target = getattr(store, "schema_target", None)
    return target if isinstance(target, Target) else None


def _applied(applied: Applied) -> str:
    """What ``upgrade`` did, for the table ``intentq init`` prints."""
    before, steps = applied.before, applied.steps
    if not steps:
        return f"version {before.found_text}, nothing to do ({before.state})"
    reached = steps[-1].number
    if before.legacy:
        adopted = "0.1 table adopted as version 1"
        return adopted if reached == 1 else f"{adopted}, upgraded to {reached}"
    if before.found is None:
        return f"created at version {reached}"
    return f"upgraded from version {before.found} to {reached}"
