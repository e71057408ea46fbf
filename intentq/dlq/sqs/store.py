"""Dead letters in an SQS queue, as a redrive policy leaves them or as intentq writes them.

SQS has no query and no random access: every read is a *scan*. A scan receives every visible
message, hiding each for ``scan_visibility`` seconds so that it is seen once, then gives them
all back (ChangeMessageVisibility 0). Nothing is consumed, but each listing costs about two
requests per ten letters, and letters in flight elsewhere are not seen. ``get``, ``delete``
and ``mark_replayed`` scan until they meet the letter's id, unless a running ``iter`` holds
it: then they act on it at once (see ``hold``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator
from dataclasses import replace
from datetime import UTC, datetime
from hashlib import sha256
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from intentq.defaults import MAX_MESSAGE_BYTES
from intentq.dlq.base import ANY_LETTER, DeadLetter, DeadLetterStore, LetterFilter, Page
from intentq.dlq.sqs.codec import encode, order_key
from intentq.dlq.sqs.hold import Hold
from intentq.dlq.sqs.scan import Held, Scanner, best, translated, unique
from intentq.errors import ConfigError, DLQError, DLQUnavailable, LetterNotFound
from intentq.intent import new_intent_id
from intentq.sqs.client import new_client
from intentq.sqs.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("intentq.dlq.sqs.store")

# A scan hides what it has received for this long; it must outlast the scan itself, and a
# scan cut short (a killed process) leaves letters hidden for at most this long.
DEFAULT_SCAN_VISIBILITY = 60
# Real SQS short polls sample a subset of its servers: one long poll of this many seconds
# confirms that a scan has really reached the end. Zero trusts the first empty answer.
DEFAULT_SCAN_WAIT = 1
# SQS keeps a message at most 14 days; a DLQ should keep letters as long as it can.
RETENTION_SECONDS = 14 * 24 * 3600


def _cursor(letter: DeadLetter) -> str:
    ms, letter_id = order_key(letter)
    return f"{ms}:{letter_id}"


def _after(cursor: str) -> tuple[int, str]:
    ms, sep, letter_id = cursor.partition(":")
    if not sep or not ms.isdigit():
        raise DLQError(f"not a cursor of the SQS DLQ: {cursor!r}")
    return int(ms), letter_id


class SqsDeadLetterStore(DeadLetterStore):
    """A DLQ queue; works as the ``deadLetterTargetArn`` of a source queue's redrive policy."""

    def __init__(
        self,
        client: SQSClient,
        queue: str,
        *,
        queue_url: str | None = None,
        owns_client: bool = False,
        scan_visibility: int = DEFAULT_SCAN_VISIBILITY,
        scan_wait_seconds: int = DEFAULT_SCAN_WAIT,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.client = client
        self.queue = queue
        self.fifo = queue.endswith(".fifo")
        self.max_message_bytes = max_message_bytes
        self._queue_url = queue_url
        self._owns_client = owns_client
        self.scanner = Scanner(
            client, queue, lambda: self.queue_url, scan_visibility, scan_wait_seconds
        )
        self._lock = threading.Lock()
        self._holds: list[Hold] = []

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: SQSClient | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        scan_visibility: int = DEFAULT_SCAN_VISIBILITY,
        scan_wait_seconds: int = DEFAULT_SCAN_WAIT,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> SqsDeadLetterStore:
        """``sqs://NAME`` or ``sqs+http(s)://host/account/NAME``; a given ``client`` stays open."""
        scheme, _, rest = url.partition("://")
        queue_url: str | None = None
        if scheme.lower() in ("sqs+http", "sqs+https"):
            queue_url = f"{scheme[4:]}://{rest}"
            parts = urlsplit(queue_url)
            endpoint_url = endpoint_url or f"{parts.scheme}://{parts.netloc}"
            name = parts.path.rstrip("/").rpartition("/")[2]
        else:
            name = rest.strip("/")
        if not name or "/" in name:
            raise ConfigError(f"no queue name in the DLQ URL {url!r}: use sqs://queue-name")
        owns = client is None
        if client is None:
            with translated(name, "client setup"):
                client = new_client(
                    region=region,
                    endpoint_url=endpoint_url,
                    aws_access_key_id=aws_access_key_id,
                    aws_secret_access_key=aws_secret_access_key,
                    read_timeout=scan_wait_seconds + 30,  # outlast a long poll
                )
        return cls(
            client,
            name,
            queue_url=queue_url,
            owns_client=owns,
            scan_visibility=scan_visibility,
            scan_wait_seconds=scan_wait_seconds,
            max_message_bytes=max_message_bytes,
        )

    @property
    def queue_url(self) -> str:
        if self._queue_url is None:
            with translated(self.queue, "GetQueueUrl"):
                self._queue_url = self.client.get_queue_url(QueueName=self.queue)["QueueUrl"]
        return self._queue_url

    # -- writing -----------------------------------------------------------------------------

    def _send(self, letter: DeadLetter) -> None:
        encoded = encode(letter, self.max_message_bytes)
        extra: dict[str, Any] = {}
        if self.fifo:
            # One group per letter: a held letter never blocks another; the dedup id changes
            # with each replay mark so a re-send within five minutes is not dropped.
            extra["MessageGroupId"] = sha256(letter.id.encode()).hexdigest()
            extra["MessageDeduplicationId"] = sha256(
                f"{letter.id}\x1f{letter.replay_count}".encode()
            ).hexdigest()
        with translated(self.queue, "SendMessage"):
            self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=encoded.body,
                MessageAttributes=encoded.attributes,  # type: ignore[arg-type]
                **extra,
            )

    def put(self, letter: DeadLetter) -> str:
        now = datetime.now(UTC)
        letter = replace(
            letter,
            id=letter.id or new_intent_id(),
            dead_at=letter.dead_at or now,
            first_seen=letter.first_seen or letter.dead_at or now,
        )
        self._send(letter)
        return letter.id

    # -- scanning ----------------------------------------------------------------------------

    def _snapshot(self) -> list[DeadLetter]:
        held = self.scanner.scan()
        self.scanner.give_back(held)
        return sorted(unique(held), key=order_key)

    def _find(self, letter_id: str) -> tuple[list[Held], list[Held]]:
        """``(copies of the letter, the others)``, all still hidden."""
        held = self.scanner.scan(until=lambda x: x.id == letter_id)
        mine = [h for h in held if h.letter.id == letter_id]
        return mine, [h for h in held if h.letter.id != letter_id]

    def _held(self, letter_id: str, take: bool) -> list[Held] | None:
        with self._lock:
            holds = list(self._holds)
        for hold in holds:
            copies = hold.take(letter_id) if take else hold.peek(letter_id)
            if copies:
                return copies
        return None

    # -- reading -----------------------------------------------------------------------------

    def list(
        self, filter: LetterFilter | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page:
        after = _after(cursor) if cursor is not None else None
        found = [
            x
            for x in self._snapshot()
            if (filter or ANY_LETTER).matches(x) and (after is None or order_key(x) > after)
        ]
        page = found[:limit]
        more = len(found) > limit
        return Page(page, _cursor(page[-1]) if more and page else None)

    def iter(
        self, filter: LetterFilter | None = None, page_size: int = 100
    ) -> Generator[DeadLetter, None, None]:
        """Every matching letter from one scan, held hidden until the iteration ends.

        ``delete`` and ``mark_replayed`` of a held letter cost no scan: a replay receives each
        message once. Other readers do not see held letters meanwhile.
        """
        since = time.monotonic()
        held = self.scanner.scan()
        wanted = [h for h in held if (filter or ANY_LETTER).matches(h.letter)]
        self.scanner.give_back([h for h in held if not (filter or ANY_LETTER).matches(h.letter)])
        hold = Hold(self.scanner, wanted, since)
        with self._lock:
            self._holds.append(hold)
        try:
            for letter in sorted(unique(wanted), key=order_key):
                hold.keep_alive()
                if hold.pending(letter.id):  # not deleted or replaced meanwhile
                    yield letter
        finally:
            with self._lock:
                self._holds.remove(hold)
            hold.release()

    def count(self, filter: LetterFilter | None = None) -> int:
        return sum(1 for x in self._snapshot() if (filter or ANY_LETTER).matches(x))

    def approximate_count(self) -> int:
        """SQS's own approximate count of every message, visible or not: one cheap request."""
        with translated(self.queue, "GetQueueAttributes"):
            attrs = self.client.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
        visible = attrs.get("ApproximateNumberOfMessages", "0")
        return int(visible) + int(attrs.get("ApproximateNumberOfMessagesNotVisible", "0"))

    def get(self, letter_id: str) -> DeadLetter:
        held = self._held(letter_id, take=False)
        if held:
            return best([h.letter for h in held])
        mine, others = self._find(letter_id)
        self.scanner.give_back(mine + others)
        if not mine:
            raise LetterNotFound(letter_id)
        return best([h.letter for h in mine])

    # -- changing ----------------------------------------------------------------------------

    def delete(self, letter_id: str) -> bool:
        held = self._held(letter_id, take=True)
        if held:
            try:
                self.scanner.delete(held)
                return True
            except DLQUnavailable:
                raise
            except DLQError:  # a handle no longer current: find the message afresh
                log.info("held copy of %s was not deletable; scanning for it", letter_id)
        mine, others = self._find(letter_id)
        try:
            self.scanner.delete(mine)
        finally:
            self.scanner.give_back(others)
        return bool(mine or held)

    def delete_many(self, filter: LetterFilter | None = None) -> int:
        held = self.scanner.scan()
        doomed = [h for h in held if (filter or ANY_LETTER).matches(h.letter)]
        try:
            self.scanner.delete(doomed)
        finally:
            kept = [h for h in held if not (filter or ANY_LETTER).matches(h.letter)]
            self.scanner.give_back(kept)
        return len({h.letter.id for h in doomed})

    def mark_replayed(self, letter_id: str) -> DeadLetter:
        """Attributes cannot change in place: send the updated copy, then delete the old."""
        mine = self._held(letter_id, take=True)
        others: list[Held] = []
        if not mine:
            mine, others = self._find(letter_id)
        try:
            if not mine:
                raise LetterNotFound(letter_id)
            current = best([h.letter for h in mine])
            updated = replace(
                current,
                replay_count=current.replay_count + 1,
                last_replayed_at=datetime.now(UTC),
            )
            try:
                # New copy first: a crash in between leaves two copies, never none.
                self._send(updated)
            except BaseException:
                others = others + mine
                raise
            self.scanner.delete(mine)
            return updated
        finally:
            self.scanner.give_back(others)

    def create_schema(self) -> None:
        attributes = {"MessageRetentionPeriod": str(RETENTION_SECONDS)}
        if self.fifo:
            attributes["FifoQueue"] = "true"
        with translated(self.queue, "CreateQueue"):
            try:
                answer = self.client.create_queue(
                    QueueName=self.queue,
                    Attributes=attributes,  # type: ignore[arg-type]
                )
            except ClientError as exc:
                # Made earlier with other attributes (a retention set by hand): use it as is.
                if error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
                    raise
                answer = self.client.get_queue_url(QueueName=self.queue)
        self._queue_url = self._queue_url or answer["QueueUrl"]

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __repr__(self) -> str:
        return f"SqsDeadLetterStore(queue={self.queue!r})"
