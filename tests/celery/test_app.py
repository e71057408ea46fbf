"""The app factory's configuration, and the messages ``publish`` and ``publish_raw`` send.

Messages go through kombu's in-memory transport and are read back as a worker would get them.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import celery
import pytest

from intentq import Registry, ToolContext
from intentq.config import Settings
from intentq.consumers.celery import (
    RAW_TASK,
    IdempotentTask,
    configure_app,
    create_app,
    publish,
    publish_raw,
    runtime_of,
    transport_options,
    visibility_timeout,
    worker_argv,
)
from intentq.consumers.celery import main as celery_main
from intentq.consumers.celery.publish import PlainTask
from intentq.errors import ConfigError
from intentq.intent import Intent


def make_registry() -> Registry:
    registry = Registry()

    @registry.tool("book")
    def book(args: dict[str, Any], ctx: ToolContext) -> str:
        return "booked"

    @registry.tool("export", lease=900.0)
    def export(args: dict[str, Any], ctx: ToolContext) -> str:
        return "exported"

    return registry


@pytest.fixture
def app(unique: str) -> Iterator[Any]:
    settings = Settings(broker_url="memory://", celery_queue=f"q-{unique}", dedup_url="memory://")
    app = create_app(settings, make_registry())
    yield app
    app.close()


def receive(app: Any) -> Any:
    """The next message on the app's queue, as a worker would receive it."""
    queue = runtime_of(app).settings.celery_queue
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            message = simple.get(timeout=2)
            message.ack()
            return message
        finally:
            simple.close()


def test_only_json_is_sent_or_accepted(app: Any) -> None:
    conf = app.conf
    assert (conf.task_serializer, conf.result_serializer) == ("json", "json")
    assert list(conf.accept_content) == ["json"]
    assert list(conf.result_accept_content) == ["json"]


def test_messages_are_acked_late_and_requeued_when_the_worker_is_lost(app: Any) -> None:
    task = app.tasks["intentq.book"]
    assert task.acks_late and task.reject_on_worker_lost
    assert task.acks_on_failure is True  # dead-lettered: acked, never looping
    assert task.acks_on_timeout is False  # killed by a time limit: redelivered
    assert task.max_retries is None  # the store counts attempts, not Celery


def test_one_task_per_tool_routed_to_the_configured_queue(app: Any) -> None:
    names = {name for name in app.tasks if name.startswith("intentq")}
    assert names == {"intentq.book", "intentq.export", RAW_TASK}
    assert all(isinstance(app.tasks[n], IdempotentTask) for n in names)
    queue = runtime_of(app).settings.celery_queue
    assert app.amqp.router.route({}, "intentq.book")["queue"].name == queue
    assert app.amqp.router.route({}, RAW_TASK)["queue"].name == queue


def test_the_app_is_not_made_celerys_current_app(app: Any) -> None:
    assert celery.current_app is not app
    assert "intentq.book" not in celery.current_app.tasks


def test_nothing_is_opened_before_a_task_runs(app: Any) -> None:
    runtime = runtime_of(app)
    assert (runtime._executor, runtime._dlq) == (None, None)


def test_each_process_opens_one_executor_and_never_uses_its_parents(app: Any) -> None:
    runtime = runtime_of(app)
    first = runtime.executor()
    assert runtime.executor() is first
    pid = os.fork()
    if pid == 0:  # the child: an executor of its own, kept from then on
        mine = runtime.executor()
        os._exit(0 if mine is not first and runtime.executor() is mine else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert runtime.executor() is first
    runtime.close()
    assert runtime.executor() is not first


def test_visibility_timeout_outlasts_the_longest_lease_and_retry_delay() -> None:
    settings = Settings(lease=300.0, backoff_max=600.0)
    assert visibility_timeout(settings) > 600
    assert visibility_timeout(settings, make_registry()) > 900  # the export tool's lease


def test_transport_options_per_broker() -> None:
    redis = transport_options(Settings(broker_url="redis://127.0.0.1:6379/1", lease=10.0))
    assert redis["visibility_timeout"] > 10
    sqs = transport_options(Settings(broker_url="sqs://k:s@127.0.0.1:1", aws_region="eu-west-1"))
    assert sqs["region"] == "eu-west-1"
    assert sqs["visibility_timeout"] > Settings().lease
    assert transport_options(Settings(broker_url="amqp://guest:guest@127.0.0.1//")) == {}
    # kombu's SQL transport passes every option to create_engine: there must be none.
    assert transport_options(Settings(broker_url="sqla+sqlite:///x.db")) == {}


def test_given_transport_options_win(unique: str) -> None:
    settings = Settings(broker_url="redis://127.0.0.1:6379/1")
    app = create_app(settings, Registry(), broker_transport_options={"visibility_timeout": 7})
    try:
        assert app.conf.broker_transport_options["visibility_timeout"] == 7
    finally:
        app.close()


def test_one_message_is_reserved_per_process_unless_the_app_chose_otherwise(unique: str) -> None:
    settings = Settings(broker_url="memory://", dedup_url="memory://")
    fresh = create_app(settings, Registry())
    chosen = celery.Celery(f"chosen-{unique}", broker="memory://", set_as_current=False)
    chosen.conf.worker_prefetch_multiplier = 8
    from_object = celery.Celery(f"object-{unique}", broker="memory://", set_as_current=False)
    from_object.config_from_object({"worker_prefetch_multiplier": 2})
    try:
        assert fresh.conf.worker_prefetch_multiplier == 1
        assert configure_app(chosen, settings).conf.worker_prefetch_multiplier == 8
        assert configure_app(from_object, settings).conf.worker_prefetch_multiplier == 2
    finally:
        for app in (fresh, chosen, from_object):
            app.close()


def test_publish_sends_the_envelope_as_the_only_argument_under_the_intent_id(app: Any) -> None:
    intent = Intent.create("book", {"slot": "15:00"}, key="k-1")

    publish(app, intent, runtime_of(app).settings.celery_queue)

    message = receive(app)
    assert message.content_type == "application/json"
    assert (message.headers["task"], message.headers["id"]) == ("intentq.book", intent.intent_id)
    args, kwargs, _ = message.decode()
    assert (args, kwargs) == ([intent.as_dict()], {})


def test_publish_raw_resends_an_envelope_as_its_intent(app: Any) -> None:
    intent = Intent.create("book", {"slot": "16:00"})

    publish_raw(app, intent.to_json(), runtime_of(app).settings.celery_queue)

    message = receive(app)
    assert (message.headers["task"], message.headers["id"]) == ("intentq.book", intent.intent_id)
    assert message.decode()[0] == [intent.as_dict()]


def test_publish_raw_resends_a_plain_task_call_as_that_task(app: Any) -> None:
    body = PlainTask("shop.charge", "t-1", ["o-1", 5], {"idempotency_key": "k"}).to_json()

    publish_raw(app, body, runtime_of(app).settings.celery_queue)

    message = receive(app)
    assert (message.headers["task"], message.headers["id"]) == ("shop.charge", "t-1")
    assert message.decode()[:2] == [["o-1", 5], {"idempotency_key": "k"}]


def test_publish_raw_sends_anything_else_to_the_raw_task_byte_for_byte(app: Any) -> None:
    body = b"\x00\xff{not json"

    publish_raw(app, body, runtime_of(app).settings.celery_queue)

    message = receive(app)
    assert message.headers["task"] == RAW_TASK
    (encoded,), _, _ = message.decode()
    assert base64.b64decode(encoded) == body


def test_celery_main_builds_the_app_from_the_environment_when_asked(
    monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    monkeypatch.setattr(celery_main, "_built", {})
    monkeypatch.setenv("INTENTQ_APP", "tests.celery.test_app:REGISTRY")
    monkeypatch.setenv("INTENTQ_BROKER_URL", "memory://")
    monkeypatch.setenv("INTENTQ_CELERY_QUEUE", f"q-{unique}")

    app = celery_main.app
    try:
        assert celery_main.celery is app
        assert "intentq.book" in app.tasks
        assert runtime_of(app).settings.celery_queue == f"q-{unique}"
    finally:
        app.close()


def test_celery_main_without_a_registry_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(celery_main, "_built", {})
    monkeypatch.delenv("INTENTQ_APP", raising=False)

    with pytest.raises(ConfigError, match="INTENTQ_APP"):
        celery_main.build()


def test_a_plain_celery_app_is_told_to_be_configured_first() -> None:
    plain = celery.Celery("plain", broker="memory://", set_as_current=False)
    try:
        with pytest.raises(ConfigError, match="configure_app"):
            runtime_of(plain)
    finally:
        plain.close()


REGISTRY = make_registry()


def test_the_worker_consumes_the_configured_queue_with_the_pool_asked_for() -> None:
    settings = Settings(celery_queue="tools", concurrency=3)

    argv = worker_argv(settings, pool="threads", hostname="w1@%h")

    def option(args: list[str], name: str) -> str:
        return args[args.index(name) + 1]

    assert argv[0] == "worker"
    assert option(argv, "--queues") == "tools"
    assert (option(argv, "--pool"), option(argv, "--concurrency")) == ("threads", "3")
    assert option(argv, "--hostname") == "w1@%h"
    assert option(worker_argv(settings, concurrency=7), "--concurrency") == "7"
