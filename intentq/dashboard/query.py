"""Which letters a page shows or a form acts on, from query parameters or form fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime

from intentq.dlq import LetterFilter, Reason
from intentq.ops import parse_instant

REASONS = tuple(r.value for r in Reason)


class BadQuery(ValueError):
    """A filter value the dashboard cannot use; the message is shown to the operator."""


@dataclass(frozen=True)
class Filters:
    """The filter form as typed: empty means any. ``since``/``until`` are a duration ago
    (``2h``, ``7d``) or an ISO time, as on the command line."""

    tool: str = ""
    reason: str = ""
    error_type: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Filters:
        return cls(**{f.name: (params.get(f.name) or "").strip() for f in fields(cls)})

    def letter_filter(self, now: datetime, ids: tuple[str, ...] = ()) -> LetterFilter:
        """The library's filter; ``BadQuery`` for a reason or time it cannot read."""
        reason = None
        if self.reason:
            try:
                reason = Reason(self.reason)
            except ValueError:
                raise BadQuery(
                    f"{self.reason!r} is not a reason; use one of: {', '.join(REASONS)}"
                ) from None
        return LetterFilter(
            tool=self.tool or None,
            reason=reason,
            error_type=self.error_type or None,
            since=self._instant("since", self.since, now),
            until=self._instant("until", self.until, now),
            ids=ids,
        )

    def pinned(self, now: datetime) -> Filters:
        """The same letters as of ``now``, with times as ISO: ``2h`` at a confirmation is a
        later window than ``2h`` at the plan, and letters dead after the plan were not shown
        to the operator, so they are left alone."""
        f = self.letter_filter(now)
        until = now if f.until is None else min(f.until, now)
        since = f.since.isoformat() if f.since is not None else ""
        return replace(self, since=since, until=until.isoformat())

    def params(self) -> dict[str, str]:
        """The non-empty fields, for links and hidden form fields."""
        return {name: value for name, value in asdict(self).items() if value}

    def any(self) -> bool:
        return bool(self.params())

    @staticmethod
    def _instant(name: str, text: str, now: datetime) -> datetime | None:
        if not text:
            return None
        try:
            return parse_instant(text, now)
        except ValueError as exc:
            raise BadQuery(f"{name}: {exc}") from None
