"""Reading an SQS queue without consuming it: receive everything, act, give the rest back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from intentq.dlq.base import DeadLetter
from intentq.dlq.sqs.codec import decode
from intentq.errors import DLQError, DLQUnavailable
from intentq.sqs import errors as sqs_errors
from intentq.sqs.errors import is_gone
from intentq.sqs.queues import in_batches

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("intentq.dlq.sqs.store")




def translated(queue: str, action: str) -> AbstractContextManager[None]:
    """Run an SQS call; its failure comes out as a DLQ error with the cause chained."""
    return sqs_errors.translated(
        f"SQS {action} on {queue!r} failed",
        error=DLQError,
        unavailable=DLQUnavailable,
        unreachable=f"SQS unreachable for {action} on {queue!r}",
        missing=(
            f"the DLQ queue {queue!r} does not exist: run `intentq init` (or create_schema()) first"
        ),
    )


@dataclass(frozen=True)
class Held:
    """A message this process received and keeps hidden: its letter and its receipt handle."""

    letter: DeadLetter
    message_id: str
    handle: str


def best(letters: Sequence[DeadLetter]) -> DeadLetter:
    """The newest copy: a crash inside mark_replayed can leave the old copy beside the new."""
    return max(letters, key=lambda x: (x.replay_count, x.last_replayed_at or datetime.min))


def unique(held: Sequence[Held]) -> list[DeadLetter]:
    """One letter per id, the newest copy."""
    by_id: dict[str, list[DeadLetter]] = {}
    for h in held:
        by_id.setdefault(h.letter.id, []).append(h.letter)
    return [best(copies) for copies in by_id.values()]


class Scanner:
    """Receives every visible message of one queue, hiding each for ``visibility`` seconds."""

    def __init__(
        self,
        client: SQSClient,
        queue: str,
        queue_url: Callable[[], str],
        visibility: int,
        wait_seconds: int,
    ) -> None:
        self.client = client
        self.queue = queue
        self.queue_url = queue_url
        self.visibility = visibility
        self.wait_seconds = wait_seconds

    def _receive(self, wait: int) -> list[dict[str, Any]]:
        with translated(self.queue, "ReceiveMessage"):
            answer = self.client.receive_message(
                QueueUrl=self.queue_url(),
                MaxNumberOfMessages=10,
                VisibilityTimeout=self.visibility,
                WaitTimeSeconds=wait,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            )
        return [dict(m) for m in answer.get("Messages", [])]

    def scan(self, until: Callable[[DeadLetter], bool] | None = None) -> list[Held]:
        """Every visible message, or those up to the first letter ``until`` accepts.

        What is returned stays hidden: the caller acts on it, then gives it back.
        """
        held: dict[str, Held] = {}
        try:
            while True:
                batch = self._receive(0)
                if not batch and self.wait_seconds:
                    batch = self._receive(self.wait_seconds)
                fresh = found = False
                for message in batch:
                    message_id = str(message["MessageId"])
                    fresh = fresh or message_id not in held
                    # A message seen again (the scan outlasted its visibility) keeps only
                    # its newest receipt handle: the older one no longer deletes it.
                    h = Held(decode(message), message_id, str(message["ReceiptHandle"]))
                    held[message_id] = h
                    found = found or (until is not None and until(h.letter))
                if found or not fresh:
                    return list(held.values())
        except BaseException:
            self.give_back(list(held.values()), strict=False)
            raise

    def _batch(
        self, action: str, held: Sequence[Held], call: Callable[[list[Any]], Any]
    ) -> list[tuple[Held, str]]:
        """Run a batch call ten entries at a time; returns the failed entries with codes."""

        def translated_call(entries: list[Any]) -> Any:
            with translated(self.queue, action):
                return call(entries)

        failed = in_batches(held, lambda h: {"ReceiptHandle": h.handle}, translated_call)
        return [(h, code) for h, code, _ in failed]

    def set_visibility(self, held: Sequence[Held], seconds: int) -> list[tuple[Held, str]]:
        """Hide ``held`` for ``seconds`` from now (0: visible at once); returns failures."""

        def call(entries: list[Any]) -> Any:
            for e in entries:
                e["VisibilityTimeout"] = seconds
            return self.client.change_message_visibility_batch(
                QueueUrl=self.queue_url(), Entries=entries
            )

        return self._batch("ChangeMessageVisibilityBatch", held, call)

    def give_back(self, held: Sequence[Held], strict: bool = True) -> None:
        """Make ``held`` visible again at once; a message that fails returns by itself later."""
        try:
            failed = self.set_visibility(held, 0)
        except DLQError:
            if strict:
                raise
            log.warning("could not give back %d letters; they return by themselves", len(held))
            return
        for h, code in failed:
            if not is_gone(code):
                log.warning(
                    "letter %s stays hidden up to %ds: give-back failed (%s)",
                    h.letter.id,
                    self.visibility,
                    code,
                )

    def delete(self, held: Sequence[Held]) -> None:
        """Delete ``held``; raise ``DLQError`` naming any that SQS refused."""

        def call(entries: list[Any]) -> Any:
            return self.client.delete_message_batch(QueueUrl=self.queue_url(), Entries=entries)

        failed = self._batch("DeleteMessageBatch", held, call)
        if failed:
            detail = ", ".join(f"{h.letter.id} ({code})" for h, code in failed[:5])
            raise DLQError(
                f"SQS kept {len(failed)} of {len(held)} letters it was to delete: {detail}"
            )
