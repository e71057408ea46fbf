"""A missing optional dependency is one line naming the extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from intentq.connections import open_dlq, open_store
from intentq.extras import MissingExtra


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("redis://127.0.0.1:6379/0", "redis", "redis"),
        ("postgresql+psycopg://postgres@127.0.0.1/intentq", "psycopg", "postgres"),
    ],
)
def test_a_store_without_its_driver_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError

    with pytest.raises(MissingExtra, match=rf"pip install 'intentq\[{extra}\]'") as caught:
        open_store(url)

    assert (caught.value.module, caught.value.extra) == (module, extra)
    assert isinstance(caught.value.__cause__, ImportError)


def test_an_sqs_dlq_without_boto3_names_the_sqs_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)

    with pytest.raises(MissingExtra, match=r"pip install 'intentq\[sqs\]'"):
        open_dlq("sqs://letters", endpoint_url="http://127.0.0.1:1")


def test_the_celery_transport_without_celery_names_the_celery_extra() -> None:
    probe = "import sys; sys.modules['celery'] = None; import intentq.consumers.celery"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)

    assert run.returncode != 0
    assert "MissingExtra: the Celery transport needs the 'celery' package: " in run.stderr
    assert "pip install 'intentq[celery]'" in run.stderr


def test_the_cli_says_it_in_one_line_with_the_config_exit_code() -> None:
    probe = (
        "import sys; sys.modules['redis'] = None; "
        "sys.argv = ['intentq', 'dedup', 'get', 't', 'k']; "
        "from intentq.cli import main; main()"
    )
    env = {"INTENTQ_DEDUP_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin"}
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)

    assert run.returncode == 3, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert "pip install 'intentq[redis]'" in lines[0]
