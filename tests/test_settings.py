"""Settings: environment, TOML file, unknown keys refused, secrets redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from intentq.config import Settings, redacted
from intentq.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("INTENTQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_embedded_sqlite() -> None:
    s = Settings.load()
    assert s.dedup_url.startswith("sqlite:///")
    assert s.dlq_url.startswith("sqlite:///")
    assert s.broker_url.startswith("sqla+sqlite:///")
    assert (s.transport, s.dedup_ttl, s.lease, s.max_message_bytes) == (
        "celery",
        86400,
        300,
        1 << 20,
    )


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENTQ_DEDUP_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("INTENTQ_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("INTENTQ_TRANSPORT", "sqs")
    s = Settings.load()
    assert (s.dedup_url, s.max_attempts, s.transport) == ("redis://127.0.0.1:6379/0", 7, "sqs")


def test_from_toml_with_env_winning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "intentq.toml").write_text('lease = 42\nsqs_queue = "jobs"\napp = "a.b:reg"\n')
    monkeypatch.setenv("INTENTQ_SQS_QUEUE", "other")
    s = Settings.load()
    assert (s.lease, s.sqs_queue, s.app) == (42, "other", "a.b:reg")


def test_config_path_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text("max_attempts = 9\n")
    monkeypatch.setenv("INTENTQ_CONFIG", str(path))
    assert Settings.load().max_attempts == 9
    monkeypatch.setenv("INTENTQ_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        Settings.load()


def test_unknown_env_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENTQ_DEDUP_TLL", "5")
    with pytest.raises(ConfigError, match="INTENTQ_DEDUP_TLL"):
        Settings.load()


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "intentq.toml").write_text("leese = 3\n")
    with pytest.raises(ConfigError, match="leese"):
        Settings.load()


def test_bad_values_are_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INTENTQ_LEASE", "-1")
    with pytest.raises(ConfigError, match="lease"):
        Settings.load()
    monkeypatch.delenv("INTENTQ_LEASE")
    monkeypatch.setenv("INTENTQ_APP", "no-colon")
    with pytest.raises(ConfigError, match="app"):
        Settings.load()
    monkeypatch.delenv("INTENTQ_APP")
    (tmp_path / "intentq.toml").write_text("lease = = 3\n")
    with pytest.raises(ConfigError, match="cannot read config"):
        Settings.load()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("postgresql+psycopg://app:pw@db/x", "postgresql+psycopg://app:***@db/x"),
        ("sqs://AKIA:wJalr/xyz@127.0.0.1:4566", "sqs://AKIA:***@127.0.0.1:4566"),
        ("amqp://guest:guest@localhost:5672//", "amqp://guest:***@localhost:5672//"),
        ("https://h/q?token=abc&x=1", "https://h/q?token=***&x=1"),
        ("sqlite:///intentq.db", "sqlite:///intentq.db"),
    ],
)
def test_redacted(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_settings_redacted_masks_every_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENTQ_BROKER_URL", "redis://:hunter2@h:6379/1")
    monkeypatch.setenv("INTENTQ_DEDUP_URL", "postgresql+psycopg://u:hunter2@h/db")
    shown = Settings.load().redacted()
    assert "hunter2" not in repr(shown)


def test_concurrency_defaults_per_transport_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings.load()
    # SQS threads: two batches of 10 in flight; Celery: worker processes.
    assert (s.concurrency_for("sqs"), s.concurrency_for("celery")) == (20, 8)
    monkeypatch.setenv("INTENTQ_CONCURRENCY", "3")
    s = Settings.load()
    assert (s.concurrency_for("sqs"), s.concurrency_for("celery")) == (3, 3)


@pytest.mark.parametrize(
    "url", ["not-a-url", "localhost:4566", "ftp://sqs.example.com", "http://", "https:///path"]
)
def test_sqs_endpoint_url_must_be_http_with_a_host(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("INTENTQ_SQS_ENDPOINT_URL", url)
    with pytest.raises(ConfigError, match=r"bad setting sqs_endpoint_url: .* is not an http"):
        Settings.load()


@pytest.mark.parametrize(
    "url", ["http://localhost:4566", "https://sqs.eu-west-1.amazonaws.com", "http://[::1]:9324"]
)
def test_sqs_endpoint_url_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("INTENTQ_SQS_ENDPOINT_URL", url)
    assert Settings.load().sqs_endpoint_url == url
