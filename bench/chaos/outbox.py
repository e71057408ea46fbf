"""Chaos for the transactional outbox: agents write, relays and workers are SIGKILLed.

``python -m bench.chaos --outbox [--intents 5000] [--kill-every 2]`` (or
``python -m bench.chaos.outbox``). Three agent processes commit each intent with a
``decisions`` row of their own, in one PostgreSQL transaction, through ``intentq.outbox``.
Two relays send the outbox to a local SQS server; two SQS workers run the ``effect`` tool,
which writes its row in the dedup store's transaction. Every ``--kill-every`` seconds one
relay and one worker are SIGKILLed and started again at once.

At the end every committed decision must have exactly one effect row: 0 lost, 0 doubles.
Every process is forked from this preloaded one (imports take seconds on 2 busy cores), at
a moment when it holds no connection and runs no thread.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import sqlalchemy as sa

from bench.chaos.tools import Effects, build_registry
from intentq.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DSN = "host=127.0.0.1 user=postgres dbname=intentq_test"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/intentq_test"
AGENTS = 3
RELAYS = 2
WORKERS = 2


@dataclass
class Run:
    """One chaos run's names and settings."""

    intents: int
    rate: float
    kill_every: float
    timeout: float
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chaos-outbox-")))
    settings: Settings | None = None

    @property
    def schema(self) -> str:
        return f"chaos_outbox_{self.run_id}"

    @property
    def decisions(self) -> str:
        return f'"{self.schema}".decisions'


# -- the processes ----------------------------------------------------------------------------


def fork(name: str, run: Run, body: Callable[[], None]) -> int:
    """A child in a session of its own, its output in ``name``.log; returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        os.setsid()
        fd = os.open(run.folder / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        body()
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def agent(run: Run, index: int) -> None:
    """Commits its share of the intents, each with its decision row, at its share of the rate."""
    from intentq.outbox import Outbox

    assert run.settings is not None
    engine = sa.create_engine(PG)
    outbox = Outbox(run.settings)
    mine = range(index, run.intents, AGENTS)
    pace = run.rate / AGENTS
    begin = time.monotonic()
    for count, n in enumerate(mine):
        pause = begin + count / pace - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        key = f"{run.run_id}-{n}"
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {run.decisions} (key) VALUES (:key)"), {"key": key})
            outbox.add(conn, "effect", {"n": n}, key=key)
    engine.dispose()


def relay(run: Run) -> None:
    import logging

    from intentq.outbox import run_relay

    assert run.settings is not None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")
    run_relay(run.settings)


def worker(run: Run) -> None:
    import logging

    from intentq.consumers.sqs.service import run_worker

    assert run.settings is not None
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(message)s")
    effects = Effects(DSN, run.schema, transactional=True)
    run_worker(run.settings, build_registry(effects))


# -- the run ----------------------------------------------------------------------------------


def prepare(run: Run, endpoint: str, queue_url: str) -> None:
    from intentq.connections import open_outbox_for, open_store_for
    from intentq.migrations import upgrade

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{run.schema}"')
        conn.execute(f"CREATE TABLE {run.decisions} (id bigserial PRIMARY KEY, key text)")
    Effects(DSN, run.schema).create()
    run.settings = Settings(
        transport="sqs", sqs_queue=queue_url, sqs_endpoint_url=endpoint, sqs_wait_seconds=1,
        dedup_url=PG, dlq_url="memory://", key_prefix=f"chaos-{run.run_id}",
        outbox_url=PG, outbox_table=f"chaos_outbox_{run.run_id}", tracing=False,
        lease=5.0, concurrency=4, shutdown_grace=2.0, outbox_poll_interval=0.5,
    )  # fmt: skip
    db = open_outbox_for(run.settings)
    upgrade(db.schema_target)
    db.close()
    store = open_store_for(run.settings)
    target = getattr(store, "schema_target", None)
    if target is not None:
        upgrade(target)
    store.close()


def count(run: Run) -> dict[str, int]:
    """Decisions committed, keys with an effect, keys with more than one, rows pending."""
    assert run.settings is not None
    with psycopg.connect(DSN, autocommit=True) as conn:
        row = conn.execute(
            f"""
            WITH e AS (SELECT key, count(*) AS n FROM "{run.schema}".effects
                       WHERE kind = 'effect' GROUP BY key)
            SELECT (SELECT count(*) FROM {run.decisions}),
                   (SELECT count(*) FROM e),
                   (SELECT count(*) FROM e WHERE n > 1),
                   (SELECT count(*) FROM {run.decisions} d
                    WHERE NOT EXISTS (SELECT 1 FROM e WHERE e.key = d.key)),
                   (SELECT count(*) FROM "{run.settings.outbox_table}" WHERE state = 'pending'),
                   (SELECT count(*) FROM "{run.schema}".effects WHERE kind = 'call')
            """
        ).fetchone()
    assert row is not None
    names = ("decisions", "effects", "doubles", "missing", "pending", "calls")
    return dict(zip(names, (int(v) for v in row), strict=True))


def cleanup(run: Run) -> None:
    assert run.settings is not None
    table = run.settings.outbox_table
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{run.schema}" CASCADE')
        for name in (table, f"{table}_relay", f"{table}_version"):
            conn.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')
        conn.execute(f'DROP FUNCTION IF EXISTS "{table}_notify"() CASCADE')


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos --outbox", description=__doc__)
    p.add_argument("--outbox", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--intents", type=int, default=5000)
    p.add_argument("--rate", type=float, default=250.0, help="intents/s, all agents together")
    p.add_argument("--kill-every", type=float, default=2.0, help="seconds; 0: no kills")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    o = p.parse_args(argv)
    rng = random.Random(o.seed)
    sys.path.insert(0, str(ROOT))
    # Preload what every child runs, before the first fork.
    import intentq.consumers.sqs.service
    import intentq.dedup.sql.store
    import intentq.outbox.relay  # noqa: F401
    from tests.support.net import free_port
    from tests.support.services import SqsServer

    run = Run(o.intents, o.rate, o.kill_every, o.timeout)
    server = SqsServer(free_port(), run.folder / "ministack.log")
    server.start()
    client = server.client()
    queue_url = str(client.create_queue(QueueName=f"chaos-outbox-{run.run_id}")["QueueUrl"])
    client.close()
    prepare(run, server.endpoint_url, queue_url)
    started = time.monotonic()
    children: dict[int, str] = {}
    kills = {"relay": 0, "worker": 0}
    elapsed = 0.0

    def spawn(role: str, body: Callable[[], None]) -> None:
        children[fork(f"{role}-{len(children)}", run, body)] = role

    try:
        agents = [fork(f"agent-{i}", run, lambda i=i: agent(run, i)) for i in range(AGENTS)]
        for _ in range(RELAYS):
            spawn("relay", lambda: relay(run))
        for _ in range(WORKERS):
            spawn("worker", lambda: worker(run))
        next_kill = time.monotonic() + o.kill_every
        counted: dict[str, int] = {}
        while time.monotonic() - started < o.timeout:
            time.sleep(0.2)
            agents = [a for a in agents if os.waitpid(a, os.WNOHANG)[0] == 0]
            if o.kill_every and time.monotonic() >= next_kill:
                next_kill += o.kill_every
                for role in ("relay", "worker"):
                    victim = rng.choice([pid for pid, r in children.items() if r == role])
                    os.kill(victim, signal.SIGKILL)
                    os.waitpid(victim, 0)
                    del children[victim]
                    kills[role] += 1
                    spawn(role, (lambda: relay(run)) if role == "relay" else (lambda: worker(run)))
            if not agents:
                counted = count(run)
                if counted["missing"] == 0 and counted["pending"] == 0:
                    break
        elapsed = time.monotonic() - started
        time.sleep(3)  # a late duplicate would show now
        counted = count(run)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        server.stop()
    report = {
        "intents": o.intents,
        "rate": o.rate,
        "agents": AGENTS,
        "relays": RELAYS,
        "workers": WORKERS,
        "kill_every": o.kill_every,
        "kills": kills,
        "seconds": round(elapsed, 1),
        **counted,
        "lost": counted["missing"],
        "logs": str(run.folder),
    }
    cleanup(run)
    print(json.dumps(report, indent=2))
    if o.json:
        o.json.write_text(json.dumps(report, indent=2))
    ok = counted["missing"] == 0 and counted["doubles"] == 0 and counted["decisions"] == o.intents
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
