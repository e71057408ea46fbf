"""The guards: escaped bodies, CSRF on every POST, a token beyond loopback, no secrets shown."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from intentq.config.settings import Settings
from intentq.dashboard import Backends, check_bind, create_app
from intentq.dashboard.security import CSRF_COOKIE, SESSION_COOKIE
from intentq.dedup import DedupStore
from intentq.dlq import DeadLetterStore, Reason
from intentq.errors import ConfigError
from tests.cli.conftest import make_letter
from tests.dashboard.conftest import Browser, LiveServer, Sent, Stage

ATTACK = b'<script>window.pwned = "script"</script><img src="x" onerror="window.pwned = \'img\'">'
TOKEN = "t0k3n-" + "x" * 26


def csrf_field(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no CSRF field on the page"
    return found[1]


def test_a_hostile_body_renders_as_text(stage: Stage, browser: Browser) -> None:
    # Given a letter whose body and error message are markup meant to run
    letter = make_letter(reason=Reason.POISON, body=ATTACK)
    letter.error_message = '<img src="x" onerror="window.pwned = \'message\'">'
    letter_id = stage.dlq.put(letter)

    browser.open(stage.url)
    assert browser.driver.execute_script("return typeof window.pwned") == "undefined"
    assert "onerror=" in browser.text("table.letters")  # the message, as text

    browser.open(f"{stage.url}/letters/{letter_id}")
    browser.shot("hostile-letter")
    # Then nothing ran, no element came of it, and the operator reads the markup
    assert browser.driver.execute_script("return typeof window.pwned") == "undefined"
    assert browser.all("main img") == [] and browser.all("script") == []
    assert browser.text("#body") == ATTACK.decode()
    assert "onerror=" in browser.text("#error-message")


def test_a_post_without_the_csrf_token_is_refused(stage: Stage) -> None:
    ids = [stage.dlq.put(make_letter()) for _ in range(2)]
    with httpx.Client(base_url=stage.url) as client:
        page = client.get("/")
        assert page.status_code == 200 and client.cookies.get(CSRF_COOKIE)
        field = csrf_field(page.text)
        form = {"scope": "ids", "id": ids[0]}

        for path in ("/replay/plan", "/replay", "/purge/plan", "/purge"):
            refused = client.post(path, data=form)  # the cookie, but no field
            assert refused.status_code == 403, path
        assert client.post("/purge", data={**form, "csrf": "0" * 64}).status_code == 403
        # The field without its cookie (another site's form) is refused too
        bare = httpx.post(f"{stage.url}/purge", data={**form, "csrf": field})
        assert bare.status_code == 403
        assert stage.dlq.count() == 2 and stage.sent.calls == []

        # With the pair the same POST goes through
        done = client.post("/purge", data={**form, "csrf": field})
        assert done.status_code == 200
        assert [x.id for x in stage.dlq.iter()] == [ids[1]]


def test_every_page_forbids_scripts_and_framing(stage: Stage) -> None:
    response = httpx.get(stage.url)
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_beyond_loopback_a_token_is_required(
    settings: Settings,
    stores: tuple[DeadLetterStore, DedupStore],
    serve_app: Callable[..., LiveServer],
) -> None:
    # Refused at start without a token, or with one too short to guard anything
    with pytest.raises(ConfigError, match="INTENTQ_DASHBOARD_TOKEN"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ConfigError, match="too short"):
        check_bind("0.0.0.0", "short")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", TOKEN)

    # Given the dashboard on every address, with a token
    guarded = settings.model_copy(update={"dashboard_token": SecretStr(TOKEN)})
    dlq, store = stores
    server = serve_app(create_app(guarded, backends=Backends(dlq, store, Sent())), "0.0.0.0")

    # Without the token: refused, and nothing about the stores is shown
    refused = httpx.get(server.url)
    assert refused.status_code == 401
    assert "Sign in" in refused.text and guarded.dlq_url not in refused.text
    assert httpx.get(f"{server.url}/keys?tool=a&key=b").status_code == 401
    bad = httpx.get(server.url, headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    assert httpx.get(f"{server.url}/?token=wrong").status_code == 401

    # With it, as a bearer header
    ok = httpx.get(server.url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "Dead letters" in ok.text
    assert TOKEN not in ok.text

    # or through ?token=, which sets an HttpOnly cookie and drops the token from the URL
    with httpx.Client(base_url=server.url) as client:
        login = client.get(f"/?reason=schema&token={TOKEN}")
        assert login.status_code == 303 and login.headers["location"] == "/?reason=schema"
        set_cookie = login.headers["set-cookie"]
        assert set_cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in set_cookie
        assert TOKEN not in set_cookie  # the cookie holds an HMAC of it
        assert client.get("/?reason=schema").status_code == 200
        # A POST still needs its CSRF pair
        assert client.post("/purge", data={"scope": "filter"}).status_code == 403


def test_secrets_in_settings_never_appear(
    tmp_path: Any,
    stores: tuple[DeadLetterStore, DedupStore],
    serve_app: Callable[..., LiveServer],
    settings: Settings,
) -> None:
    shown = settings.model_copy(update={"broker_url": "redis://:hunter2@10.0.0.1:6379/0"})
    dlq, store = stores
    server = serve_app(create_app(shown, backends=Backends(dlq, store, Sent())))
    page = httpx.get(server.url).text
    assert "redis://:***@10.0.0.1:6379/0" in page
    assert "hunter2" not in page
