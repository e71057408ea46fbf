"""Letters an iteration keeps hidden, so that acting on each costs no new scan."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from intentq.dlq.sqs.scan import Held, Scanner

# A held message is renewed before use once less than this many seconds of its visibility
# remain: a receipt handle used after its message came back may no longer be the current one.
SAFETY_SECONDS = 5.0


class Hold:
    """The messages one ``iter`` received, by letter id, kept hidden until it ends.

    While a message stays hidden nobody else can receive it, so its receipt handle is the
    current one and deleting with it is certain. Visibility is renewed when half of it has
    gone; a message whose renewal SQS refuses is no longer vouched for (the store then scans
    for it afresh).
    """

    def __init__(
        self,
        scanner: Scanner,
        held: Sequence[Held],
        since: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scanner = scanner
        self._clock = clock
        self._lock = threading.Lock()
        self._copies: dict[str, list[Held]] = {}
        self._since: dict[str, float] = {}
        self._taken: set[str] = set()
        for h in held:
            self._copies.setdefault(h.letter.id, []).append(h)
            self._since[h.letter.id] = since

    def _renew(self, ids: Sequence[str]) -> None:
        now = self._clock()
        held = [h for i in ids for h in self._copies[i]]
        failed = self._scanner.set_visibility(held, self._scanner.visibility)
        lost = {h.letter.id for h, _ in failed}
        for i in ids:
            if i in lost:  # gone, or received by someone else since: not ours to vouch for
                del self._copies[i], self._since[i]
            else:
                self._since[i] = now

    def _vouched(self, letter_id: str) -> list[Held] | None:
        if letter_id not in self._copies:
            return None
        left = self._since[letter_id] + self._scanner.visibility - self._clock()
        if left < SAFETY_SECONDS:
            self._renew([letter_id])
        return self._copies.get(letter_id)

    def pending(self, letter_id: str) -> bool:
        """Whether nobody has taken this letter (deleted or replaced it) during the hold."""
        with self._lock:
            return letter_id not in self._taken

    def peek(self, letter_id: str) -> list[Held] | None:
        """The held copies of ``letter_id``, if this hold can still vouch for them."""
        with self._lock:
            copies = self._vouched(letter_id)
            return list(copies) if copies else None

    def take(self, letter_id: str) -> list[Held] | None:
        """Hand over the copies of ``letter_id`` to delete or replace, if this hold can."""
        with self._lock:
            copies = self._vouched(letter_id)
            if not copies:
                return None
            del self._copies[letter_id], self._since[letter_id]
            self._taken.add(letter_id)
            return copies

    def keep_alive(self) -> None:
        """Renew the visibility of the messages held for half of it or more."""
        with self._lock:
            now = self._clock()
            half = self._scanner.visibility / 2
            due = [i for i, since in self._since.items() if now - since >= half]
            if due:
                self._renew(due)

    def release(self) -> None:
        """Give back whatever is still held."""
        with self._lock:
            held = [h for copies in self._copies.values() for h in copies]
            self._copies.clear()
            self._since.clear()
        self._scanner.give_back(held, strict=False)
