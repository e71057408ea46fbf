"""Every Python snippet in the docs is a file in docs/examples, run here as a user would.

Services are the real local ones (PostgreSQL, Redis, the local SQS server) or the in-memory
store and broker; a snippet that no longer matches the library fails its test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import func, select

from intentq import Intent, new_intent_id
from intentq.config import Settings
from intentq.dedup import DedupStore, State, open_store
from intentq.dlq import DeadLetter, LetterFilter, Reason, open_dlq
from intentq.ops import Status, await_result
from tests.docs.conftest import EXAMPLES, ROOT
from tests.support.services import SqsServer

Example = Callable[[str], ModuleType]
Env = Callable[..., None]


# -- helpers ----------------------------------------------------------------------------------


def drain(client: Any, queue_url: str, expected: int) -> list[Intent]:
    """Receive (and delete) ``expected`` messages from the queue, as intents."""
    intents: list[Intent] = []
    for _ in range(20):
        reply = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=1)  # fmt: skip
        for message in reply.get("Messages", []):
            intents.append(Intent.parse(message["Body"].encode()))
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if len(intents) >= expected:
            break
    return intents


def celery_messages(app: Any, queue: str, count: int) -> list[tuple[str, Any, Any, str]]:
    """(task name, args, kwargs, task id) of the next ``count`` messages on ``queue``."""
    out = []
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            for _ in range(count):
                message = simple.get(timeout=2)
                message.ack()
                args, kwargs, _embed = message.payload
                out.append((message.headers["task"], args, kwargs, message.headers["id"]))
        finally:
            simple.close()
    return out


@pytest.fixture
def sqs_queue(sqs_server: SqsServer, env: Env) -> Iterator[tuple[Any, str]]:
    """A fresh queue on the local SQS server, named by INTENTQ_* as in production."""
    url = sqs_server.new_queue()
    env(transport="sqs", sqs_queue=url, sqs_endpoint_url=sqs_server.endpoint_url,
        sqs_wait_seconds=1)  # fmt: skip
    client = sqs_server.client()
    try:
        yield client, url
    finally:
        client.close()


@pytest.fixture(params=["memory", "redis", "postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["postgresql", "sqlite"])
def sql_store(
    request: pytest.FixtureRequest, example: Example, tmp_path: Path, unique: str
) -> Iterator[Any]:
    """A SQL store, and the examples' bookings table in its database (dropped after)."""
    metadata = example("myapp.db").metadata

    url = (request.getfixturevalue("pg_url") if request.param == "postgresql"
           else f"sqlite:///{tmp_path / 'app.db'}")  # fmt: skip
    store: Any = open_store(url, prefix=f"docs-{unique}")
    store.create_schema()
    metadata.create_all(store.engine)
    try:
        yield store
    finally:
        metadata.drop_all(store.engine)
        store.close()


# -- the tools and the intent -----------------------------------------------------------------


def test_the_registry_holds_the_tools_and_checks_their_arguments(example: Example) -> None:
    from intentq import InvalidArgs, ToolContext

    tools = example("myapp.tools")

    assert tools.registry.names == ["book_slot", "send_email"]
    args = tools.registry.validate("book_slot", {"slot": "15:00"})
    ctx = ToolContext(tool="book_slot", key="k-1", intent_id=new_intent_id(), attempt=1)
    assert tools.registry.get("book_slot").handler(args, ctx)["booked"] == "15:00"
    assert tools.registry.get("book_slot").retry_on == (TimeoutError,)
    with pytest.raises(InvalidArgs):
        tools.registry.validate("book_slot", {"when": "15:00"})


def test_the_key_of_a_tool_call_is_stable_and_travels_in_the_envelope(example: Example) -> None:
    first = example("intent_key")
    again = Intent.create("book_slot", {"slot": "15:00"}, key=first.key)

    assert uuid.UUID(first.key).version == 5
    assert Intent.parse(first.body).key == first.key
    assert again.fingerprint == first.fingerprint


# -- the store by hand ------------------------------------------------------------------------


def test_a_claimed_key_runs_once_on_every_store(example: Example, store_url: str) -> None:
    claims = example("store_claim")
    store: DedupStore = claims.open_and_prepare(store_url)
    key = f"docs-{uuid.uuid4().hex}"
    try:
        first = claims.book_once(store, key, "fp-1")
        second = claims.book_once(store, key, "fp-1")
        with pytest.raises(ValueError, match="reused"):
            claims.book_once(store, key, "fp-2")
        record = store.get("book_slot", key)
    finally:
        store.forget("book_slot", key)
        store.close()

    assert first == second == {"booked": "15:00"}
    assert record is not None
    assert (record.state, record.attempts) == (State.COMPLETED, 1)


def test_a_transactional_completion_commits_the_row_with_the_record(
    example: Example, sql_store: Any
) -> None:
    txn = example("transactional")
    bookings = example("myapp.db").bookings

    txn.book_in_one_transaction(sql_store, "txn-1", "fp")

    with sql_store.engine.connect() as conn:
        rows = conn.execute(select(bookings.c.idem_key)).scalars().all()
    assert rows == ["txn-1"]
    record = sql_store.get("book_slot", "txn-1")
    assert record is not None
    assert (record.state, record.result) == (State.COMPLETED, {"slot": "15:00"})


def test_the_backstop_refuses_a_second_row_for_the_same_key(
    example: Example, sql_store: Any
) -> None:
    backstop = example("backstop")
    bookings = example("myapp.db").bookings

    first = sql_store.claim("book_slot", "bs-1", "fp")
    assert backstop.book(sql_store, "bs-1", first.token) is True
    sql_store.forget("book_slot", "bs-1")  # the store wiped: only the unique column is left
    second = sql_store.claim("book_slot", "bs-1", "fp")
    assert backstop.book(sql_store, "bs-1", second.token) is False

    with sql_store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(bookings)).scalar_one() == 1


def test_a_transactional_tool_writes_once_through_a_celery_task(
    example: Example, sql_store: Any
) -> None:
    from intentq.consumers.celery import create_app
    from intentq.dlq.memory import MemoryDeadLetterStore

    tool = example("transactional_tool")
    bookings = example("myapp.db").bookings

    settings = Settings(broker_url="memory://", celery_queue=f"q-{uuid.uuid4().hex[:8]}")
    app = create_app(settings, tool.registry, dedup=sql_store, dlq=MemoryDeadLetterStore())
    try:
        results = []
        for _ in range(2):  # the agent's retry: a new intent id, the same key
            intent = Intent.create("book_slot", {"slot": "15:00"}, key="tt-1")
            task = app.tasks["intentq.book_slot"]
            results.append(task.apply(args=[intent.as_dict()], task_id=intent.intent_id).result)
    finally:
        app.close()

    assert results == [{"slot": "15:00"}] * 2
    with sql_store.engine.connect() as conn:
        assert conn.execute(select(bookings.c.idem_key)).scalars().all() == ["tt-1"]


# -- SQS --------------------------------------------------------------------------------------


def test_the_producer_sends_one_intent_and_a_batch_to_sqs(
    example: Example, sqs_queue: tuple[Any, str]
) -> None:
    client, url = sqs_queue

    sent = example("producer_sqs")
    received = drain(client, url, 3)

    assert sorted((i.tool, i.key) for i in received) == sorted(
        [("book_slot", sent.intent.key), ("send_email", "mail-1"), ("send_email", "mail-2")]
    )
    assert [i.meta for i in received if i.tool == "book_slot"] == [
        {"conversation_id": "conversation-42"}
    ]


def test_an_agents_tool_call_runs_once_however_often_it_is_asked(
    example: Example, env: Env, sqs_queue: tuple[Any, str], redis_url: str, unique: str
) -> None:
    env(dedup_url=redis_url, key_prefix=f"docs-{unique}", dlq_url="memory://")
    worker_example = example("sqs_worker")
    agent = example("agent_call")

    def call(call_id: str, arguments: str) -> dict[str, Any]:
        function = {"name": "book_slot", "arguments": arguments}
        return {"id": call_id, "type": "function", "function": function}

    worker, thread = worker_example.start_in_thread(Settings.load())
    try:
        first = agent.answer_tool_calls([call(f"call_{unique}", '{"slot": "15:00"}')], unique)
        # The model, asked again, gives the same call a new id (and other spacing)
        again = agent.answer_tool_calls([call(f"again_{unique}", '{ "slot":"15:00" }')], unique)
        bad = agent.answer_tool_calls([call(f"bad_{unique}", '{"slot": ')], unique)
    finally:
        worker.stop()
        thread.join(60)
        worker.close()

    assert [m["role"] for m in first + again + bad] == ["tool", "tool", "tool"]
    assert [m["tool_call_id"] for m in first + again] == [f"call_{unique}", f"again_{unique}"]
    result = json.loads(first[0]["content"])
    assert json.loads(again[0]["content"]) == result
    assert result["booked"] == "15:00"
    assert "error" in json.loads(bad[0]["content"])
    store = open_store(redis_url, prefix=f"docs-{unique}")
    try:
        record = store.get("book_slot", result["idempotency_key"])
    finally:
        store.close()
    assert record is not None
    assert (record.state, record.attempts) == (State.COMPLETED, 1)


def test_the_worker_script_serves_until_sigterm(
    sqs_queue: tuple[Any, str], redis_url: str, unique: str, tmp_path: Path
) -> None:
    env = dict(os.environ)  # the queue's INTENTQ_* variables, from the sqs_queue fixture
    env.update(INTENTQ_DEDUP_URL=redis_url, INTENTQ_KEY_PREFIX=f"docs-{unique}",
               INTENTQ_DLQ_URL="memory://", PYTHONPATH=f"{EXAMPLES}{os.pathsep}{ROOT}")  # fmt: skip
    settings = Settings.load(dedup_url=redis_url, key_prefix=f"docs-{unique}")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(EXAMPLES / "sqs_worker.py")], env=env,
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        from intentq import Producer

        with Producer(settings) as producer:
            producer.enqueue("book_slot", {"slot": "9:00"}, key="docs-worker-1")
        store = open_store(redis_url, prefix=f"docs-{unique}")
        try:
            done = await_result(store, "book_slot", "docs-worker-1", timeout=30)
        finally:
            store.close()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert done.status is Status.COMPLETED, log.read_text()
    assert done.result["booked"] == "9:00"
    assert code == 0, log.read_text()


# -- Celery -----------------------------------------------------------------------------------


def test_the_celery_app_sends_intents_its_tasks_run_once(example: Example, env: Env) -> None:
    queue = f"q-{uuid.uuid4().hex[:8]}"
    env(transport="celery", broker_url="memory://", celery_queue=queue,
        dedup_url="memory://", dlq_url="memory://")  # fmt: skip
    celery_app = example("celery_app")

    settings, app = celery_app.build()
    try:
        celery_app.send(settings, app, "conv42-call7")
        messages = celery_messages(app, queue, 2)
        results = [
            app.tasks[name].apply(args=args, kwargs=kwargs, task_id=task_id).result
            for name, args, kwargs, task_id in messages
        ]
    finally:
        app.close()

    assert [name for name, *_ in messages] == ["intentq.book_slot"] * 2
    assert results[0] == results[1]
    assert results[0]["idempotency_key"] == "conv42-call7"


def test_a_plain_celery_task_charges_once_per_key(example: Example, env: Env) -> None:
    env(broker_url="memory://", dedup_url="memory://", dlq_url="memory://")
    shop = example("celery_plain_task")
    try:
        for _ in range(2):
            shop.charge.delay("o-1", 500, idempotency_key="pay-o-1")
        messages = celery_messages(shop.app, "celery", 2)
        results = [
            shop.app.tasks[name].apply(args=args, kwargs=kwargs, task_id=task_id).result
            for name, args, kwargs, task_id in messages
        ]
    finally:
        shop.app.close()

    assert shop.charges == ["o-1"]
    assert results == [{"order": "o-1", "amount": 500, "idempotency_key": "pay-o-1"}] * 2


# -- dead letters -----------------------------------------------------------------------------


def letter(tool: str, key: str, reason: Reason, body: bytes | None = None) -> DeadLetter:
    intent = Intent.create(tool, {"slot": "15:00"}, key=key)
    return DeadLetter(
        id=new_intent_id(), body=body if body is not None else intent.to_json(), reason=reason,
        tool=tool, key=key, intent_id=intent.intent_id, error_type="ValueError",
        error_message="no such slot", attempts=1, source_transport="sqs",
        dead_at=datetime.now(UTC),
    )  # fmt: skip


def test_letters_are_listed_read_and_tidied(
    example: Example, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'dlq.db'}"
    seed = open_dlq(url)
    seed.create_schema()
    first = letter("book_slot", "k-1", Reason.PERMANENT)
    for item in (first, letter("book_slot", "k-2", Reason.PERMANENT),
                 letter("book_slot", "k-3", Reason.SCHEMA)):  # fmt: skip
        seed.put(item)
    seed.close()

    dlq = example("dlq_usage").look_around(url)
    try:
        left = [(item.key, item.reason) for item in dlq.list(LetterFilter()).letters]
    finally:
        dlq.close()

    assert left == [("k-2", Reason.PERMANENT)]
    assert f"{first.id} ValueError no such slot" in capsys.readouterr().out


def test_replay_resends_what_the_fix_can_run_and_purge_removes_the_rest(
    example: Example, env: Env, sqs_queue: tuple[Any, str], tmp_path: Path
) -> None:
    client, url = sqs_queue
    dlq_url, store_url = f"sqlite:///{tmp_path / 'dlq.db'}", f"sqlite:///{tmp_path / 's.db'}"
    env(dlq_url=dlq_url, dedup_url=store_url)
    seed, store = open_dlq(dlq_url), open_store(store_url)
    seed.create_schema()
    store.create_schema()
    store.close()
    fixed = letter("book_slot", "k-fixed", Reason.PERMANENT)
    poison = letter("book_slot", "k-garbage", Reason.POISON, body=b"{not json")
    garbage = replace(poison, tool=None, key=None, intent_id=None)  # nothing names a key
    seed.put(fixed)
    seed.put(garbage)
    seed.close()
    replays = example("dlq_replay")

    summary = replays.replay_book_slot(Settings.load())
    resent = drain(client, url, 1)
    purged = replays.tidy(Settings.load(), [garbage.id])

    assert (summary.replayed, summary.skipped, summary.refused, summary.failed) == (1, 0, 0, 0)
    assert [(i.tool, i.key) for i in resent] == [("book_slot", "k-fixed")]
    assert purged == 1  # the garbage; the replayed letter was removed by the replay
    check = open_dlq(dlq_url)
    try:
        assert check.count() == 0
    finally:
        check.close()


# -- testing with the stub transport ------------------------------------------------------


def test_the_stub_broker_runs_a_users_tool_test_without_services(example: Example) -> None:
    stub = example("stub_tools")

    stub.test_a_call_asked_twice_books_once()

    assert stub.booked == ["15:00"]


def _outbox_table(url: str, env: Env) -> Any:
    """The outbox table made as `intentq init` makes it, in the application's database."""
    from intentq.connections import open_outbox_for
    from intentq.migrations import upgrade

    env(outbox_url=url, tracing="false")
    db = open_outbox_for(Settings.load())
    upgrade(db.schema_target)
    return db


def test_the_outbox_commits_a_booking_and_its_intent_together(
    example: Example, env: Env, sqs_queue: tuple[Any, str], tmp_path: Path
) -> None:
    from sqlalchemy import create_engine

    from intentq.outbox import Relay

    write = example("outbox_write")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    db = _outbox_table(url, env)
    engine = create_engine(url)
    example("myapp.db").metadata.create_all(engine)
    settings = Settings.load()
    write.book(engine, settings, "conv7-call1", "15:00")
    with pytest.raises(Exception, match="UNIQUE"):  # the booking fails: no intent either
        write.book(engine, settings, "conv7-call1", "16:00")
    with Relay(settings, db=db) as relay:
        assert relay.drain().sent == 1
    client, queue_url = sqs_queue
    assert [(i.key, i.args) for i in drain(client, queue_url, 1)] == [
        ("conv7-call1", {"slot": "15:00"})
    ]
    engine.dispose()
    db.close()


def test_the_outbox_takes_an_async_session(
    example: Example, env: Env, pg_url: str, unique: str
) -> None:
    pytest.importorskip("greenlet", reason="SQLAlchemy's asyncio needs greenlet")
    import asyncio

    from sqlalchemy import create_engine, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from intentq.outbox.ops import stats

    writer = example("outbox_async")
    env(outbox_table=f"docs_outbox_{unique}")
    db = _outbox_table(pg_url, env)
    metadata = example("myapp.db").metadata
    sync = create_engine(pg_url)
    metadata.create_all(sync)

    async def run() -> None:
        engine = create_async_engine(pg_url)
        await writer.book(engine, Settings.load(), f"async-{unique}", "09:00")
        await engine.dispose()

    try:
        asyncio.run(run())
        assert stats(db).pending == 1
    finally:
        metadata.drop_all(sync)
        with sync.begin() as conn:
            for name in (db.table.name, f"{db.table.name}_relay", f"{db.table.name}_version"):
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
            conn.execute(text(f'DROP FUNCTION IF EXISTS "{db.table.name}_notify"()'))
        sync.dispose()
        db.close()


def test_every_example_is_tested_here() -> None:
    source = Path(__file__).read_text()
    names = sorted(
        p.relative_to(EXAMPLES).with_suffix("").as_posix().replace("/", ".")
        for p in EXAMPLES.rglob("*.py")
        if p.name != "__init__.py" and not p.name.startswith("agents_")
    )
    untested = [n for n in names if f'example("{n}")' not in source]
    assert untested == [], f"examples no test runs: {untested}"
