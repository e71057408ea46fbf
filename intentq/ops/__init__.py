"""Operations the command line runs, importable for scripts: init, await, stats, durations."""

from intentq.connections import opened_dlq, opened_store
from intentq.ops.awaiting import Awaited, Status, await_result
from intentq.ops.durations import parse_duration, parse_instant
from intentq.ops.init import InitStep, init_resources
from intentq.ops.stats import LetterStats, letter_stats

__all__ = [
    # setup
    "InitStep",
    "init_resources",
    "opened_dlq",
    "opened_store",
    # results
    "Awaited",
    "Status",
    "await_result",
    # dead letters
    "LetterStats",
    "letter_stats",
    # parsing
    "parse_duration",
    "parse_instant",
]
