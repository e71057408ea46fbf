"""The observer seam without services: imports, missing extras, the decision log, the gauge."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest

from intentq import Intent, Registry, ToolContext
from intentq.config import Settings
from intentq.dedup.memory import MemoryDedupStore
from intentq.dlq.base import DeadLetter, Reason
from intentq.dlq.memory import MemoryDeadLetterStore
from intentq.executor import Executor
from intentq.observe import observer_for, tracing_for
from intentq.observe.logs import DECISIONS_LOGGER, DecisionLog, JsonFormatter
from intentq.observe.metrics import DeadLetterGauge
from intentq.outcome import Delivery

IMPORTS = (
    "import sys, intentq, intentq.executor, intentq.observe, intentq.consumers.sqs; "
    "print(sorted({m.split('.')[0] for m in sys.modules} & {'prometheus_client', 'opentelemetry'}))"
)


def test_importing_intentq_imports_neither_prometheus_nor_opentelemetry() -> None:
    done = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("blocked", "code", "extra"),
    [
        ("prometheus_client", "import intentq.observe.metrics", "intentq[metrics]"),
        ("opentelemetry", "import intentq.observe.tracing", "intentq[tracing]"),
        (
            "opentelemetry",
            "from intentq.config import Settings; from intentq.observe import tracing_for; "
            "tracing_for(Settings(tracing=True))",
            "intentq[tracing]",
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(blocked: str, code: str, extra: str) -> None:
    probe = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"from intentq.errors import ConfigError\n"
        f"try:\n    {code}\nexcept ConfigError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert f"pip install '{extra}'" in line


def test_tracing_unset_is_off_without_the_api_and_false_is_always_off() -> None:
    assert tracing_for(Settings(tracing=False)) is None
    assert tracing_for(Settings()) is not None  # the API is installed here


def test_json_logs_carry_one_line_per_decision_with_its_fields() -> None:
    # Given an executor whose observer is the decision log, writing JSON
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"{DECISIONS_LOGGER}.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    registry = Registry()

    @registry.tool("book")
    def book(args: dict[str, str], ctx: ToolContext) -> str:
        return args["slot"]

    executor = Executor(registry, MemoryDedupStore(), observer=DecisionLog(logger))
    intent = Intent.create("book", {"slot": "15:00"}, key="k-1")
    # When it runs the intent, then a duplicate of it
    duplicate = Intent.create("book", {"slot": "15:00"}, key="k-1")
    for n, sent in enumerate((intent, duplicate), 1):
        executor.process(sent.to_json(), Delivery("sqs", "q", f"m{n}"))
    # Then each delivery is one JSON line
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["intent_id"] == intent.intent_id and first["key"] == "k-1"
    assert first["tool"] == "book" and first["queue"] == "q" and first["message_id"] == "m1"
    assert (first["decision"], first["attempt"], first["outcome"]) == ("acquired", 1, "completed")
    assert (second["decision"], second["attempt"], second["outcome"]) == (
        "cached",
        None,
        "duplicate",
    )
    assert first["duration"] >= 0 and first["level"] == "INFO"


def test_the_dead_letter_gauge_counts_at_most_every_interval() -> None:
    now = [0.0]
    dlq = MemoryDeadLetterStore()
    gauge = DeadLetterGauge(dlq, interval=30, clock=lambda: now[0])

    def counts() -> dict[str, float]:
        (letters, up) = gauge.collect()
        assert up.samples[0].value == 1
        return {s.labels["reason"]: s.value for s in letters.samples}

    assert counts()["schema"] == 0
    dlq.put(DeadLetter(id="", body=b"{}", reason=Reason.SCHEMA))
    now[0] = 10.0
    assert counts()["schema"] == 0  # counted at 0: not again before 30
    now[0] = 31.0
    assert counts()["schema"] == 1


def test_observer_for_combines_what_the_settings_ask() -> None:
    assert type(observer_for(Settings(tracing=False))).__name__ == "NullObserver"
    assert type(observer_for(Settings(tracing=False, log_format="json"))).__name__ == "DecisionLog"
