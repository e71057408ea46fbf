"""``init_resources``: create the tables and queues the settings name; safe to run again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from intentq.config.redact import redacted
from intentq.connections import is_sqs_dlq, opened_dlq, opened_store
from intentq.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from intentq.config.settings import Settings

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


def init_resources(settings: Settings) -> list[InitStep]:
    """Create the store's and the DLQ's schema and, for SQS, the queue with its redrive."""
    steps: list[InitStep] = []
    with opened_store(settings, create=True) as store:
        store.create_schema()
    steps.append(InitStep("dedup store", redacted(settings.dedup_url), "schema ready"))
    with opened_dlq(settings, create=True) as dlq:
        dlq.create_schema()
    detail = "queue ready" if is_sqs_dlq(settings.dlq_url) else "table ready"
    steps.append(InitStep("dead-letter store", redacted(settings.dlq_url), detail))
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
