"""One settings object, read explicitly at start from ``INTENTQ_*`` and ``intentq.toml``."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from intentq.config.redact import redacted
from intentq.defaults import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_BROKER_URL,
    DEFAULT_CELERY_CONCURRENCY,
    DEFAULT_DB_URL,
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RECEIVES,
    DEFAULT_OUTBOX_BATCH,
    DEFAULT_OUTBOX_LEASE,
    DEFAULT_OUTBOX_RETENTION,
    DEFAULT_SQS_CONCURRENCY,
    DEFAULT_TTL,
    MAX_MESSAGE_BYTES,
)
from intentq.errors import ConfigError

ENV_PREFIX = "INTENTQ_"
# Names the config file; it is not a setting itself.
CONFIG_ENV = "INTENTQ_CONFIG"
DEFAULT_CONFIG_FILE = "intentq.toml"


class Settings(BaseSettings):
    """Everything intentq can be told; every field is ``INTENTQ_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, validate_default=True
    )

    transport: Literal["celery", "sqs"] = "celery"
    app: str | None = Field(default=None, description="module:registry of the user's tools")
    dedup_url: str = DEFAULT_DB_URL
    dlq_url: str = DEFAULT_DB_URL
    key_prefix: str = "intentq"
    broker_url: str = DEFAULT_BROKER_URL
    celery_queue: str = "intentq"
    sqs_queue: str = "intentq"
    sqs_dlq: str = "intentq-dlq"
    sqs_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    sqs_wait_seconds: int = Field(default=20, ge=0, le=20)
    sqs_batch_size: int = Field(default=10, ge=1, le=10)
    # None: each transport's own default (see ``concurrency_for``).
    concurrency: int | None = Field(default=None, ge=1)
    dedup_ttl: float = Field(default=DEFAULT_TTL, gt=0)
    lease: float = Field(default=DEFAULT_LEASE, gt=0)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1)
    max_receives: int = Field(default=DEFAULT_MAX_RECEIVES, ge=1)
    backoff_base: float = Field(default=DEFAULT_BACKOFF_BASE, gt=0)
    backoff_max: float = Field(default=DEFAULT_BACKOFF_MAX, gt=0)
    max_message_bytes: int = Field(default=MAX_MESSAGE_BYTES, gt=0)
    shutdown_grace: float = Field(default=30.0, ge=0)
    # A worker whose store does not answer at start exits instead of starting and deferring.
    require_store: bool = False
    # Required to serve the dashboard on any address but loopback; SecretStr, so it shows as
    # ********** in a repr or a dump and never in output.
    dashboard_token: SecretStr | None = None
    # Operators' view (intentq.observe). A worker serves /metrics on this port when it is set.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Any interface, as Prometheus scrapes workers from elsewhere (dramatiq's default too).
    metrics_host: str = "0.0.0.0"
    # The dead-letter gauge counts the DLQ at most this often (seconds); scrapes in between
    # get the last counts.
    metrics_dlq_interval: float = Field(default=30.0, gt=0)
    # None: traces when opentelemetry-api is installed; true requires it; false never.
    tracing: bool | None = None
    log_format: Literal["text", "json"] = "text"
    # The transactional outbox (intentq.outbox): the application's database that holds the
    # table; None: no outbox (``intentq init`` leaves it out, ``intentq relay`` refuses).
    outbox_url: str | None = None
    outbox_table: str = Field(default="intentq_outbox", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,50}$")
    outbox_batch_size: int = Field(default=DEFAULT_OUTBOX_BATCH, ge=1, le=1000)
    # Seconds between polls when no NOTIFY wakes the relay (SQLite, or a lost listener).
    outbox_poll_interval: float = Field(default=1.0, gt=0)
    # SQLite: how long a relay that stopped answering holds the table before another takes
    # over (and sends again what it sent but had not marked).
    outbox_lease: float = Field(default=DEFAULT_OUTBOX_LEASE, gt=0)
    # Sent rows are kept this long for audit, then deleted in batches by the relay.
    outbox_retention: float = Field(default=DEFAULT_OUTBOX_RETENTION, ge=0)

    @field_validator("app")
    @classmethod
    def _check_app(cls, value: str | None) -> str | None:
        if value is not None and value.count(":") != 1:
            raise ValueError("app must look like 'package.module:registry'")
        return value

    @field_validator("sqs_endpoint_url")
    @classmethod
    def _check_sqs_endpoint_url(cls, value: str | None) -> str | None:
        # boto3 would refuse it only when a client is made, as a bare ValueError.
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"{redacted(value)!r} is not an http:// or https:// URL with a host, "
                    "like http://localhost:4566"
                )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, path))

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read the environment and the config file now; errors become ``ConfigError``."""
        known = {ENV_PREFIX + name.upper() for name in cls.model_fields} | {CONFIG_ENV}
        unknown = sorted(
            n for n in os.environ if n.upper().startswith(ENV_PREFIX) and n.upper() not in known
        )
        if unknown:
            raise ConfigError(unknown_setting(unknown[0], list(cls.model_fields), ENV_PREFIX))
        explicit = os.environ.get(CONFIG_ENV)
        if explicit and not Path(explicit).is_file():
            raise ConfigError(f"{CONFIG_ENV} names {explicit!r}, which is not a file")
        try:
            return cls(**overrides)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            if first["type"] == "extra_forbidden":  # a key of the config file
                raise ConfigError(unknown_setting(where, list(cls.model_fields))) from None
            raise ConfigError(f"bad setting {where}: {first['msg']}") from None
        except Exception as exc:  # a TOML syntax error surfaces as the parser's own type
            raise ConfigError(f"cannot read config: {exc}") from exc

    def concurrency_for(self, transport: str) -> int:
        """Tools running at once: ``concurrency`` if set, else the transport's default."""
        if self.concurrency is not None:
            return self.concurrency
        return DEFAULT_SQS_CONCURRENCY if transport == "sqs" else DEFAULT_CELERY_CONCURRENCY

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict, with every URL's secrets masked."""
        out = self.model_dump()
        for name, value in out.items():
            if name.endswith("_url") and isinstance(value, str):
                out[name] = redacted(value)
        return out


# Where every setting is described.
SETTINGS_DOC = "docs/configuration.md"


def unknown_setting(name: str, fields: list[str], prefix: str = "") -> str:
    """The error for an unknown variable (``prefix`` + name) or file key: it names the
    closest setting, if one is close (compared without the prefix, which all share)."""
    bare = name[len(prefix) :].lower() if name.upper().startswith(prefix) else name.lower()
    close = difflib.get_close_matches(bare, fields, n=1, cutoff=0.6)
    hint = f"; did you mean {(prefix + close[0]).upper() if prefix else close[0]}?" if close else ""
    return f"unknown setting {name}{hint} (every setting: {SETTINGS_DOC})"
