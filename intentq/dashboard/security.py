"""The dashboard's guards: a bearer token at the door, CSRF on every form, strict headers.

- **Token.** With a token set, every request but the stylesheet needs it: an
  ``Authorization: Bearer`` header, or the session cookie a ``?token=`` login sets. The
  cookie holds an HMAC of the token, not the token, and the login redirects to the same page
  without ``?token=`` so the secret does not stay in the address bar or the history.
- **CSRF.** A random nonce lives in a cookie; each form carries HMAC(process secret, nonce).
  Another site can make the browser send the cookie, but cannot read a page to learn the
  field. The secret is new in every process: a restart invalidates open forms, nothing more.
- **Headers.** The pages run no script at all (``script-src`` is absent from the policy), so
  a dead letter's attacker-controlled body could not run even if escaping failed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from urllib.parse import urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "intentq_dashboard_session"
CSRF_COOKIE = "intentq_dashboard_csrf"
CSRF_FIELD = "csrf"
TOKEN_PARAM = "token"
# Paths served without the token: the stylesheet the login page itself needs.
PUBLIC_PREFIXES = ("/static/",)
_NONCE = re.compile(r"[A-Za-z0-9_-]{32,64}\Z")
_SESSION_LABEL = b"intentq-dashboard-session"

HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

# Renders the login page: (request, message) -> HTML, with a 401 status set by the caller.
LoginPage = Callable[[Request, str], str]


def session_value(token: str) -> str:
    """What the session cookie holds: derived from the token, useless to recover it."""
    return hmac.new(token.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenGate:
    """Refuse every request without the token (401), when a token is set."""

    def __init__(self, app: ASGIApp, token: str | None, login_page: LoginPage) -> None:
        self.app = app
        self.token = token or None  # an empty token would let everyone in
        self.login_page = login_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = request.url.path
        if path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        given = request.query_params.get(TOKEN_PARAM)
        if given is not None:
            await self._login(request, given)(scope, receive, send)
            return
        if self._authorised(request):
            await self.app(scope, receive, send)
            return
        await self._refuse(request, "")(scope, receive, send)

    def _authorised(self, request: Request) -> bool:
        assert self.token is not None
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and _same(credential.strip(), self.token):
            return True
        return _same(request.cookies.get(SESSION_COOKIE), session_value(self.token))

    def _login(self, request: Request, given: str) -> Response:
        assert self.token is not None
        if not _same(given, self.token):
            return self._refuse(request, "That token is not the dashboard's.")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_PARAM]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE, session_value(self.token), httponly=True, samesite="lax",
            secure=request.url.scheme == "https", path="/",
        )  # fmt: skip
        return response

    def _refuse(self, request: Request, message: str) -> Response:
        html = self.login_page(request, message)
        return HTMLResponse(html, status_code=401, headers={"www-authenticate": "Bearer"})


class Csrf:
    """Issues and checks the cookie+field pair; one secret per process."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def field_for(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def valid(self, nonce: str | None, field: str | None) -> bool:
        if not nonce or not field or not _NONCE.match(nonce):
            return False
        return _same(field, self.field_for(nonce))

    @staticmethod
    def nonce_of(request: Request) -> str | None:
        """The request's CSRF nonce, if its cookie holds a well-formed one."""
        nonce = request.cookies.get(CSRF_COOKIE)
        return nonce if nonce and _NONCE.match(nonce) else None


class Guard:
    """Sets the CSRF cookie when a request has none, and the security headers on every
    response. The nonce is put in ``scope["state"]`` for the pages' forms."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        nonce = Csrf.nonce_of(request)
        fresh = nonce is None
        if nonce is None:
            nonce = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_nonce"] = nonce
        secure = request.url.scheme == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if fresh:
                    cookie = f"{CSRF_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Strict"
                    headers.append("set-cookie", cookie + ("; Secure" if secure else ""))
            await send(message)

        await self.app(scope, receive, send_with_headers)
