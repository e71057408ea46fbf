"""The dashboard in a real browser: uvicorn in a thread, headless Chromium through selenium.

Each test gets its own SQLite store and DLQ in ``tmp_path``, its own server on a free
loopback port and its own browser profile.

Screenshots: one per page a test visits, saved as PNG files under
``$INTENTQ_TEST_ARTIFACTS/dashboard/<test name>/`` when that variable is set (CI uploads the
folder), else under the test's ``tmp_path/artifacts/`` (pytest keeps the last three runs'
``tmp_path`` folders, and prints where they are with ``-v --basetemp``).

Chromium and chromedriver are required: a test fails, naming the apt-get command, when they
are missing; nothing is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from intentq.config.settings import Settings
from intentq.dashboard import Backends, create_app
from intentq.dedup import DedupStore, open_store
from intentq.dlq import DeadLetter, DeadLetterStore, open_dlq
from intentq.ops.init import init_resources
from tests.support.net import free_port, port_open, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install chromium chromium-driver"
CHROME_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,900",
)  # fmt: skip
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def sqlite_settings(directory: Path, **overrides: Any) -> Settings:
    """The embedded default in ``directory``: store and DLQ in one SQLite file."""
    db = f"sqlite:///{directory / 'intentq.db'}"
    values: dict[str, Any] = {
        "transport": "celery",
        "dedup_url": db,
        "dlq_url": db,
        "broker_url": f"sqla+sqlite:///{directory / 'broker.db'}",
        "celery_queue": f"dash-{uuid.uuid4().hex[:8]}",
        "key_prefix": "dash",
    }
    return Settings(**{**values, **overrides})


@dataclass
class Sent:
    """A ``send`` that records what replay would have published: (letter id, body, to)."""

    calls: list[tuple[str, bytes, str | None]] = field(default_factory=list)

    def __call__(self, letter: DeadLetter, to: str | None) -> None:
        self.calls.append((letter.id, letter.body, to))


class LiveServer:
    """An app under uvicorn in a daemon thread; ready once its port answers."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", lifespan="on", ws="none",
            http="h11",
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="dashboard", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: port_open(self.port), timeout=START_TIMEOUT, what="the dashboard")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
        assert not self.thread.is_alive(), "the dashboard's server did not stop"


@dataclass
class Stage:
    """One test's world: settings, the stores, what was sent, and the running dashboard."""

    settings: Settings
    dlq: DeadLetterStore
    store: DedupStore
    sent: Sent
    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = sqlite_settings(tmp_path)
    init_resources(settings)  # what `intentq init` does: the store's and the DLQ's tables
    return settings


@pytest.fixture
def stores(settings: Settings) -> Iterator[tuple[DeadLetterStore, DedupStore]]:
    with ExitStack() as stack:
        dlq = open_dlq(settings.dlq_url)
        stack.callback(dlq.close)
        store = open_store(settings.dedup_url, settings.key_prefix)
        stack.callback(store.close)
        yield dlq, store


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], LiveServer]]:
    """Start an app under uvicorn; every server started is stopped after the test."""
    started: list[LiveServer] = []

    def start(app: Any, host: str = "127.0.0.1") -> LiveServer:
        server = LiveServer(app, host).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def stage(
    settings: Settings,
    stores: tuple[DeadLetterStore, DedupStore],
    serve_app: Callable[..., LiveServer],
) -> Stage:
    """The dashboard on this test's stores; replays are recorded in ``stage.sent``."""
    dlq, store = stores
    sent = Sent()
    server = serve_app(create_app(settings, backends=Backends(dlq, store, sent)))
    return Stage(settings, dlq, store, sent, server)


@pytest.fixture
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where this test's screenshots go (see the module docstring)."""
    base = os.environ.get("INTENTQ_TEST_ARTIFACTS")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder = Path(base) / "dashboard" / name if base else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing and not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail(f"{' and '.join(missing)} not found: {INSTALL}")


class Browser:
    """A headless Chromium with the few moves these tests make, and a screenshot per page."""

    def __init__(self, driver: WebDriver, artifacts: Path) -> None:
        self.driver = driver
        self.artifacts = artifacts
        self.shots: list[Path] = []

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str = "body") -> str:
        return self.find(css).text

    def click(self, css: str) -> None:
        """Click, then wait for the page it leads to (the old page's body goes stale)."""
        old = self.find("body")
        self.find(css).click()
        wait_until(lambda: _stale(old), timeout=START_TIMEOUT, what=f"the page after {css}")

    def fill(self, css: str, value: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def rows(self) -> list[WebElement]:
        """The letters the page lists (the "no letters" row is not one)."""
        return [
            r
            for r in self.all("table.letters tbody tr")
            if not r.find_elements(By.CSS_SELECTOR, "td.empty")
        ]

    def shot(self, name: str) -> Path:
        """The whole page as ``NN-name.png``: the window grows to the page's height."""
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(1280, max(900, min(height, 4000)))
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{name}.png"
        assert self.driver.save_screenshot(str(path)), f"no screenshot saved at {path}"
        self.driver.set_window_size(1280, 900)
        self.shots.append(path)
        return path


def _stale(element: WebElement) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    return False


@pytest.fixture
def browser(tmp_path: Path, artifacts: Path) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile, quit after the test."""
    _require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield Browser(driver, artifacts)
    finally:
        driver.quit()
