"""Console login, sessions, CSRF and security headers, as aiohttp handlers and middleware.

- Everything needs a logged-in session except the public routes (health, metrics, WHIP
  with its own bearer check, the login page and its two assets).
- The session cookie is HttpOnly, SameSite=Strict, and Secure when served over TLS.
- A state-changing request (anything but GET/HEAD/OPTIONS) must carry the session's
  CSRF token in `X-CSRF-Token`; the page gets it from `/api/me`, which another site
  cannot read. WebSocket upgrades must come from the console's own origin.
- Failed logins are limited per client address and per user name (`LoginLimiter`):
  past the limit the answer is 429 with `Retry-After`, whatever the password.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from alerts.auth import SESSION_TTL_S, LoginLimiter, Session, UserStore
from alerts.config import ConsoleConfig

logger = logging.getLogger(__name__)

SESSION_KEY = web.RequestKey("console_session", Session)
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_ROUTES = frozenset(
    {"/healthz", "/readyz", "/metrics", "/whip", "/whip/{session_id}", "/login"}
)
PUBLIC_STATIC = frozenset({"login.js", "console.css"})
LOGIN_BODY_BYTES = 4096
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConsoleAuth:
    """Sessions and logins of the console.

    Args:
        config: Cookie name and login limits.
        users: The user and session database (blocking: used off the loop).
        secure: Whether the console is served over TLS (Secure cookies, HSTS).
    """

    def __init__(self, config: ConsoleConfig, users: UserStore, *, secure: bool) -> None:
        self.config = config
        self.users = users
        self.secure = secure
        self.limiter = LoginLimiter(config.login_failures_allowed, config.login_window_s)

    async def session_of(self, request: web.Request) -> Session | None:
        """The session of the request's cookie, or None."""
        token = request.cookies.get(self.config.session_cookie, "")
        if not token or len(token) > 256:
            return None
        return await asyncio.to_thread(self.users.session, token)

    async def whip_auth(self, request: web.Request) -> bool:
        """WHIP's `extra_auth`: a logged-in console session plus its CSRF header."""
        session = await self.session_of(request)
        return session is not None and _csrf_ok(request, session)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Require a session (and CSRF for writes) on every non-public route."""
        if _is_public(request):
            return await handler(request)
        session = await self.session_of(request)
        if session is None:
            if request.method == "GET" and not request.path.startswith("/api/"):
                raise web.HTTPFound("/login")
            raise web.HTTPUnauthorized(text='{"error": "login required"}', content_type=JSON)
        if request.method not in SAFE_METHODS and not _csrf_ok(request, session):
            raise web.HTTPForbidden(
                text='{"error": "missing or wrong CSRF token"}', content_type=JSON
            )
        if request.headers.get("Upgrade", "").lower() == "websocket" and not _same_origin(request):
            raise web.HTTPForbidden(text='{"error": "cross-origin WebSocket"}', content_type=JSON)
        request[SESSION_KEY] = session
        return await handler(request)

    async def login(self, request: web.Request) -> web.Response:
        """POST /login with JSON `{"name", "password"}`: sets the session cookie."""
        name, password = await _credentials(request)
        keys = (f"addr:{request.remote}", f"name:{name}")
        if any(self.limiter.blocked(k) for k in keys):
            retry = str(int(self.limiter.window_s))
            raise web.HTTPTooManyRequests(
                text='{"error": "too many failed logins; try later"}',
                content_type=JSON,
                headers={"Retry-After": retry},
            )
        result = await asyncio.to_thread(self.users.login, name, password)
        if result is None:
            for key in keys:
                self.limiter.failed(key)
            logger.warning("console login failed for %r from %s", name, request.remote)
            raise web.HTTPUnauthorized(
                text='{"error": "wrong name or password"}', content_type=JSON
            )
        for key in keys:
            self.limiter.succeeded(key)
        token, session = result
        logger.info("console login: %s (%s)", session.name, session.role)
        resp = web.json_response({"name": session.name, "role": str(session.role)})
        resp.set_cookie(
            self.config.session_cookie,
            token,
            max_age=SESSION_TTL_S,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure,
        )
        return resp

    async def logout(self, request: web.Request) -> web.Response:
        """POST /logout: ends the session and clears the cookie."""
        token = request.cookies.get(self.config.session_cookie, "")
        if token:
            await asyncio.to_thread(self.users.logout, token)
        resp = web.json_response({"ok": True})
        resp.del_cookie(self.config.session_cookie, path="/")
        return resp

    async def security_headers(self, request: web.Request, resp: web.StreamResponse) -> None:
        """on_response_prepare: CSP without inline scripts, no framing, no sniffing."""
        headers = resp.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/") or request.path == "/login":
            headers.setdefault("Cache-Control", "no-store")
        if self.secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")


JSON = "application/json"


def _is_public(request: web.Request) -> bool:
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        return False
    canonical = resource.canonical
    if canonical in PUBLIC_ROUTES:
        return True
    return canonical == "/static" and request.match_info.get("filename") in PUBLIC_STATIC


def _csrf_ok(request: web.Request, session: Session) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    return bool(sent) and hmac.compare_digest(sent.encode(), session.csrf.encode())


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser; the cookie check already applied
    return origin.split("://", 1)[-1] == request.host


async def read_json_body(request: web.Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object body ({} when empty); 413 past `max_bytes`, 400 if not JSON."""
    if (request.content_length or 0) > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_bytes, request.content_length or 0)
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_bytes, len(raw))
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type=JSON) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be an object"}', content_type=JSON)
    return body


async def _credentials(request: web.Request) -> tuple[str, str]:
    body = await read_json_body(request, LOGIN_BODY_BYTES)
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not 0 < len(name) <= 64:
        raise web.HTTPBadRequest(text='{"error": "name and password required"}', content_type=JSON)
    return name, password[:1024]
