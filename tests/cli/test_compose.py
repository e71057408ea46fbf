"""docker-compose.yml and Dockerfile, checked by reading them (no Docker engine needed).

The compose file is parsed by a real YAML parser: PyYAML from the local SQS server's own
virtual environment (ministack depends on it), so intentq itself needs no YAML dependency.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from intentq.config.settings import CONFIG_ENV, ENV_PREFIX, Settings
from intentq.dlq.memory import MemoryDeadLetterStore
from intentq.registry import Registry, load_registry
from tests.support.services import MINISTACK_VERSION, ensure_ministack

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
SERVERS = ("redis", "postgres", "rabbitmq", "sqs")
WORKERS = {"worker-sqs": "sqs", "worker-celery": "celery"}
OPERATORS = ("prometheus", "grafana")
KNOWN = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | {CONFIG_ENV}

PARSE = "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"


def parse_yaml(path: Path) -> Any:
    python = ensure_ministack().parent / "python"
    done = subprocess.run(
        [str(python), "-c", PARSE, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    parsed: dict[str, Any] = parse_yaml(COMPOSE)
    return parsed


def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {*SERVERS, "init", *WORKERS, "cli", *OPERATORS}


@pytest.mark.parametrize("name", [*SERVERS, *OPERATORS])
def test_servers_have_health_checks(compose: dict[str, Any], name: str) -> None:
    check = compose["services"][name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["retries"] >= 3


def test_init_runs_once_after_the_servers_are_healthy(compose: dict[str, Any]) -> None:
    init = compose["services"]["init"]
    assert init["command"] == ["init"]
    assert init["restart"] == "no"
    assert init["environment"]["INTENTQ_TRANSPORT"] == "sqs"  # creates the queue and its DLQ
    assert init["depends_on"] == {
        name: {"condition": "service_healthy"} for name in ("redis", "postgres", "sqs")
    }


@pytest.mark.parametrize(("name", "transport"), WORKERS.items())
def test_workers_start_after_init(compose: dict[str, Any], name: str, transport: str) -> None:
    worker = compose["services"][name]
    assert worker["command"][:3] == ["worker", "--transport", transport]
    assert worker["environment"]["INTENTQ_TRANSPORT"] == transport
    assert worker["depends_on"]["init"] == {"condition": "service_completed_successfully"}
    grace = float(worker["environment"]["INTENTQ_SHUTDOWN_GRACE"])
    assert float(worker["stop_grace_period"].rstrip("s")) > grace


def test_environment_names_are_settings(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        intentq = {k: str(v) for k, v in env.items() if k.startswith(ENV_PREFIX)}
        assert set(intentq) <= KNOWN, (name, set(intentq) - KNOWN)
        if intentq:  # and the values are valid settings, URLs and all
            Settings(**{k[len(ENV_PREFIX) :].lower(): v for k, v in intentq.items()})


def test_every_intentq_name_in_either_file_exists() -> None:
    # Comments and commands too: a renamed setting must not survive in the docs of a file.
    for path in (COMPOSE, DOCKERFILE):
        used = set(re.findall(r"\bINTENTQ_[A-Z0-9_]+", path.read_text()))
        assert used <= KNOWN, (path.name, used - KNOWN)


def test_the_tools_named_there_load(compose: dict[str, Any]) -> None:
    apps = {s["environment"].get("INTENTQ_APP") for s in compose["services"].values()
            if "environment" in s} - {None}  # fmt: skip
    assert apps
    for app in apps:
        assert isinstance(load_registry(app), Registry)


def test_dockerfile_targets(compose: dict[str, Any]) -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)
    assert stages[-1] == "intentq"  # `docker build .` builds intentq itself
    targets = {s["build"]["target"] for s in compose["services"].values() if "build" in s}
    assert targets <= set(stages)
    assert 'ENTRYPOINT ["intentq"]' in text
    assert f'"ministack=={MINISTACK_VERSION}"' in text  # the version the tests run against
    assert "uv sync --frozen" in text  # installs from the lock file


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".cache", "*.db"} <= ignored


# -- Prometheus and Grafana ------------------------------------------------------------------


def metric_names() -> set[str]:
    """Every series name intentq's metrics and its dead-letter gauge can expose."""
    from prometheus_client import CollectorRegistry

    from intentq.observe.metrics import DeadLetterGauge, Metrics

    metrics = Metrics(CollectorRegistry())
    assert metrics.registry is not None
    names = set(metrics.registry._names_to_collectors)
    gauge = DeadLetterGauge(MemoryDeadLetterStore(), 60)
    return names | {family.name for family in gauge.collect()}


def test_prometheus_scrapes_every_worker_on_its_metrics_port(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mounted = {v.split(":")[0]: v.split(":")[1] for v in prometheus["volumes"]}
    assert mounted["./deploy/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = parse_yaml(DEPLOY / "prometheus.yml")
    targets = {
        target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    expected = {
        f"{name}:{compose['services'][name]['environment']['INTENTQ_METRICS_PORT']}"
        for name in WORKERS
    }
    assert targets == expected


def test_grafana_is_provisioned_from_the_repository(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounted = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    assert mounted["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounted["./deploy/grafana/dashboards"] == "/var/lib/grafana/dashboards"
    assert grafana["depends_on"]["prometheus"] == {"condition": "service_healthy"}
    sources = parse_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    (source,) = sources["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    boards = parse_yaml(DEPLOY / "grafana/provisioning/dashboards/intentq.yml")
    assert boards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_dashboard_queries_name_real_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/intentq.json").read_text())
    known = metric_names()
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus"
        for target in panel["targets"]:
            names = set(re.findall(r"\bintentq_[a-z_]+", target["expr"]))
            assert names, target
            assert names <= known, (panel["title"], names - known)
            used |= names
    # Every metric the workers count is on the dashboard.
    families = {
        "intentq_intents_total", "intentq_dedup_decisions_total", "intentq_dead_letters_total",
        "intentq_inprogress", "intentq_dlq_letters", "intentq_store_errors_total",
        "intentq_lease_extensions_total", "intentq_tool_duration_seconds_bucket",
        "intentq_queue_lag_seconds_bucket",
    }  # fmt: skip
    assert families <= used
