"""The operator console: pages, JSON API and live feed on the service's aiohttp app.

    /                live calls, alerts and timelines     (static/index.html)
    /history         past calls and alerts, filterable    (static/history.html)
    /test-call       speak into the microphone via WHIP   (static/test-call.html)
    /login           the only page without a session      (static/login.html)
    /static/...      the pages' JS and CSS (no CDN, no build step)
    /api/...         JSON API (`alerts.console_api`), /api/live WebSocket (`console_live`)

The root builds one `Console` and calls `console.setup(app)` once; `whip_auth` is the
WHIP ingress's `extra_auth`, so a logged-in operator's test call needs no bearer token.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from alerts.auth import UserStore
from alerts.config import ConsoleConfig
from alerts.console_api import ConsoleApi
from alerts.console_auth import ConsoleAuth
from alerts.console_live import LiveFeed
from alerts.events import EventBus
from alerts.scoring import AlertRecord, VerdictBoard
from alerts.store import QUERY_LIMIT, Store

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
PAGES = {"/": "index.html", "/history": "history.html", "/test-call": "test-call.html"}


class Console:
    """The operator console, built by the composition root.

    Args:
        config: Console settings.
        board: The verdict board (live calls, alert actions).
        store: The SQLite history.
        users: Console users and sessions.
        bus: The event bus (the live feed listens to it).
        window_s: Length of a scored window, for drawing speech regions.
        secure: Whether HTTP is served over TLS.
        whip_call: Maps a WHIP session id to its call id, for the test-call page.
    """

    def __init__(
        self,
        config: ConsoleConfig,
        board: VerdictBoard,
        store: Store,
        users: UserStore,
        bus: EventBus,
        *,
        window_s: float,
        secure: bool,
        whip_call: Callable[[str], str | None] | None = None,
    ) -> None:
        self.board = board
        self.store = store
        self.users = users
        self.auth = ConsoleAuth(config, users, secure=secure)
        self.feed = LiveFeed(bus, store, config.replay_events, config.live_queue_events)
        self.api = ConsoleApi(
            board,
            store,
            self.feed,
            window_s=window_s,
            whip_call=whip_call,
            store_timeout_s=config.action_store_timeout_s,
        )

    async def whip_auth(self, request: web.Request) -> bool:
        """WHIP's `extra_auth`: a console session with its CSRF header may open a call."""
        return await self.auth.whip_auth(request)

    async def restore_alerts(self) -> int:
        """Make the latest stored alerts actionable again after a restart; how many."""
        alerts = await self.store.alerts(limit=QUERY_LIMIT)
        for a in reversed(alerts):  # oldest first, so the newest stay remembered
            self.board.restore_alert(
                AlertRecord(
                    a["alert_id"],
                    a["call_id"],
                    a["participant_id"] or "",
                    a["line"] or "",
                    a["ingress"] or "",
                    a["media_s"] or 0.0,
                    a["score"],
                )
            )
        if alerts:
            logger.info(
                "restored %d alerts from the store", len(alerts), extra={"stage": "console"}
            )
        return len(alerts)

    def setup(self, app: web.Application) -> None:
        """Add the console's routes, middleware and shutdown hooks to `app`."""
        app.middlewares.append(self.auth.middleware)
        app.on_response_prepare.append(self.auth.security_headers)
        app.on_shutdown.append(self.feed.shutdown)
        app.on_cleanup.append(self._cleanup)
        app.router.add_get("/login", _page("login.html"))
        app.router.add_post("/login", self.auth.login)
        app.router.add_post("/logout", self.auth.logout)
        for path, name in PAGES.items():
            app.router.add_get(path, _page(name))
        app.router.add_get("/api/live", self.feed.handle)
        app.add_routes(self.api.routes())
        app.router.add_static("/static", STATIC_DIR, show_index=False, follow_symlinks=False)

    async def _cleanup(self, app: web.Application) -> None:
        await asyncio.to_thread(self.users.close)


def _page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    path = STATIC_DIR / name

    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-store"})

    return handler


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext | None:
    """A TLS server context from PEM files, or None when both paths are empty."""
    if not cert and not key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
