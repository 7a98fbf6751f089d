"""The console's JSON API: live calls, timelines, history, alerts and operator actions.

    GET  /api/me                         user, role, CSRF token, window length
    GET  /api/calls                      active calls + the live feed cursor (one instant)
    GET  /api/calls/{call}/participants/{p}/timeline   live windows, or stored points
    GET  /api/history/calls              ?line=&verdict=&since=&until=&limit=
    GET  /api/history/calls/{call}       one stored call with verdict changes and alerts
    GET  /api/alerts                     ?status=&line=&since=&limit=
    GET  /api/events                     ?after_id=&since=&limit=  (store catch-up)
    GET  /api/whip/{session}             the call id of a WHIP session (test-call page)
    POST /api/alerts/{alert}/acknowledge | dismiss {"reason"} | escalate {"note"}
                                         (an escalated alert: dismiss is supervisors' only)

Every query value is checked (400 on a bad one); every value reaches SQL as a bound
parameter (see `alerts.store`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from alerts.auth import Role
from alerts.console_auth import JSON, SESSION_KEY, read_json_body
from alerts.console_live import LiveFeed, parse_time
from alerts.events import Event
from alerts.scoring import VerdictBoard
from alerts.store import QUERY_LIMIT, Store
from alerts.types import Verdict

logger = logging.getLogger(__name__)

ACTION_BODY_BYTES = 16 * 1024
TEXT_MAX_CHARS = 1000  # reasons and notes
ALERT_ID = re.compile(r"^[0-9a-f]{32}$")
ID_MAX_CHARS = 200
STATUSES = frozenset({"open", "acknowledged", "dismissed", "escalated"})
VERDICTS = frozenset(str(v) for v in Verdict)
STORE_POLL_S = 0.05


class ConsoleApi:
    """Handlers of the JSON API.

    Args:
        board: Live calls and alert actions.
        store: History and catch-up.
        feed: The live feed (its cursor goes with each snapshot).
        window_s: Length of a scored window (to draw speech regions).
        whip_call: Maps a WHIP session id to its call id (None when unknown).
        store_timeout_s: How long an action waits to be on disk before answering.
    """

    def __init__(
        self,
        board: VerdictBoard,
        store: Store,
        feed: LiveFeed,
        *,
        window_s: float,
        whip_call: Callable[[str], str | None] | None,
        store_timeout_s: float,
    ) -> None:
        self.board = board
        self.store = store
        self.feed = feed
        self.window_s = window_s
        self.whip_call = whip_call
        self.store_timeout_s = store_timeout_s

    def routes(self) -> list[web.RouteDef]:
        """The API's routes."""
        return [
            web.get("/api/me", self.me),
            web.get("/api/calls", self.calls),
            web.get("/api/calls/{call_id}/participants/{participant_id}/timeline", self.timeline),
            web.get("/api/history/calls", self.history),
            web.get("/api/history/calls/{call_id}", self.history_call),
            web.get("/api/alerts", self.alerts),
            web.get("/api/events", self.events),
            web.get("/api/whip/{session_id}", self.whip_session),
            web.post("/api/alerts/{alert_id}/{action}", self.act),
        ]

    async def me(self, request: web.Request) -> web.Response:
        """Who is logged in, and the CSRF token for their writes."""
        session = request[SESSION_KEY]
        return web.json_response(
            {
                "name": session.name,
                "role": str(session.role),
                "csrf": session.csrf,
                "window_s": self.window_s,
            }
        )

    async def calls(self, request: web.Request) -> web.Response:
        """The active calls; `cursor`/`boot` let the live feed continue from this instant."""
        snapshot = self.board.snapshot()  # no await between these two lines
        return web.json_response(
            {"calls": snapshot, "cursor": self.feed.cursor, "boot": self.feed.boot}
        )

    async def timeline(self, request: web.Request) -> web.Response:
        """A participant's scores: live windows while the call runs, else stored points."""
        call_id = _ident(request.match_info["call_id"])
        participant_id = _ident(request.match_info["participant_id"])
        try:
            windows = self.board.timeline(call_id, participant_id)
        except KeyError:
            windows = None
        points = await self.store.timeline(call_id, participant_id)
        if windows is None and not points:
            raise web.HTTPNotFound(text='{"error": "no such participant"}', content_type=JSON)
        stored = await self.store.call(call_id)
        line = stored["line"] if stored else ""
        thresholds = self.board.thresholds_for(line or "")
        return web.json_response(
            {
                "live": windows is not None,
                "windows": windows or [],
                "points": points,
                "window_s": self.window_s,
                "thresholds": {"suspect": thresholds.suspect, "synthetic": thresholds.synthetic},
                "verdict_changes": [
                    v
                    for v in (stored or {}).get("verdict_changes", [])
                    if v["participant_id"] == participant_id
                ],
            }
        )

    async def history(self, request: web.Request) -> web.Response:
        """Past and present calls, newest first, filtered by line, verdict and time."""
        q = request.query
        verdict = q.get("verdict") or None
        if verdict is not None and verdict not in VERDICTS:
            raise web.HTTPBadRequest(text=f"verdict must be one of {sorted(VERDICTS)}\n")
        calls = await self.store.calls(
            line=_opt_ident(q.get("line")),
            verdict=verdict,
            since=_opt_time(q.get("since"), "since"),
            until=_opt_time(q.get("until"), "until"),
            limit=_limit(q.get("limit")),
        )
        return web.json_response({"calls": calls})

    async def history_call(self, request: web.Request) -> web.Response:
        """One stored call with participants, verdict changes and alerts."""
        call = await self.store.call(_ident(request.match_info["call_id"]))
        if call is None:
            raise web.HTTPNotFound(text='{"error": "no such call"}', content_type=JSON)
        return web.json_response(call)

    async def alerts(self, request: web.Request) -> web.Response:
        """Alerts, newest first, with their actions."""
        q = request.query
        status = q.get("status") or None
        if status is not None and status not in STATUSES:
            raise web.HTTPBadRequest(text=f"status must be one of {sorted(STATUSES)}\n")
        alerts = await self.store.alerts(
            status=status,
            line=_opt_ident(q.get("line")),
            since=_opt_time(q.get("since"), "since"),
            limit=_limit(q.get("limit")),
        )
        return web.json_response({"alerts": alerts})

    async def events(self, request: web.Request) -> web.Response:
        """Stored events after an event id or from a time (the REST form of catch-up)."""
        q = request.query
        try:
            after = int(q["after_id"]) if "after_id" in q else None
        except ValueError:
            raise web.HTTPBadRequest(text="after_id must be an integer\n") from None
        events = await self.store.events_since(
            after_id=after,
            since_ts=_opt_time(q.get("since"), "since"),
            limit=_limit(q.get("limit")),
        )
        return web.json_response({"events": events})

    async def whip_session(self, request: web.Request) -> web.Response:
        """The call id of one of the WHIP sessions (so the test page can follow its score)."""
        call_id = self.whip_call(request.match_info["session_id"]) if self.whip_call else None
        if call_id is None:
            raise web.HTTPNotFound(text='{"error": "no such WHIP session"}', content_type=JSON)
        return web.json_response({"call_id": call_id})

    async def act(self, request: web.Request) -> web.Response:
        """Acknowledge, dismiss (with a reason) or escalate (with a note) an alert.

        Roles: once an alert has been escalated, only a supervisor may dismiss it as a
        false alarm (403 for an operator); anyone may still acknowledge or re-escalate it.
        """
        alert_id = request.match_info["alert_id"]
        action = request.match_info["action"]
        if not ALERT_ID.match(alert_id) or action not in ("acknowledge", "dismiss", "escalate"):
            raise web.HTTPNotFound(text='{"error": "no such alert action"}', content_type=JSON)
        body = await read_json_body(request, ACTION_BODY_BYTES)
        session = request[SESSION_KEY]
        user = session.name
        try:
            if action == "dismiss" and session.role != Role.SUPERVISOR:
                await self._refuse_if_escalated(alert_id)
            if action == "acknowledge":
                event = self.board.acknowledge(alert_id, user)
            elif action == "dismiss":
                event = self.board.dismiss(alert_id, user, _text(body, "reason"))
            else:
                event = self.board.escalate(alert_id, user, _text(body, "note"))
        except KeyError:
            raise web.HTTPNotFound(text='{"error": "no such alert"}', content_type=JSON) from None
        logger.info(
            "alert %s %s by %s", alert_id, event.type, user, extra={"call_id": event.call_id}
        )
        stored = await self._wait_stored(event)
        return web.json_response({"event": event.to_dict(), "stored": stored})

    async def _refuse_if_escalated(self, alert_id: str) -> None:
        """403 when the alert was ever escalated (that decision is a supervisor's)."""
        await self.store.flush()
        stored = await self._stored_alert(self.board.alert(alert_id).call_id, alert_id)
        if stored and any(a["action"] == "escalated" for a in stored["actions"]):
            raise web.HTTPForbidden(
                text='{"error": "only a supervisor may dismiss an escalated alert"}',
                content_type=JSON,
            )

    async def _stored_alert(self, call_id: str, alert_id: str) -> dict[str, Any] | None:
        call = await self.store.call(call_id)
        for alert in (call or {}).get("alerts", []):
            if alert["alert_id"] == alert_id:
                return alert  # type: ignore[no-any-return]
        return None

    async def _wait_stored(self, event: Event) -> bool:
        """Wait (bounded) until the store holds the action, so an answer means it is on disk."""
        deadline = time.monotonic() + self.store_timeout_s
        action = str(event.type).removeprefix("alert.")
        while time.monotonic() < deadline:
            await self.store.flush()
            alert = await self._stored_alert(event.call_id, event.alert_id or "")
            if alert and any(
                a["ts"] == event.ts and a["action"] == action for a in alert["actions"]
            ):
                return True
            await asyncio.sleep(STORE_POLL_S)
        logger.warning("action not stored in time", extra={"call_id": event.call_id})
        return False


def _ident(value: str) -> str:
    if not value or len(value) > ID_MAX_CHARS or not value.isprintable():
        raise web.HTTPBadRequest(text="bad identifier\n")
    return value


def _opt_ident(value: str | None) -> str | None:
    return _ident(value) if value else None


def _opt_time(value: str | None, key: str) -> str | None:
    return parse_time(value, key) if value else None


def _limit(value: str | None) -> int:
    if not value:
        return 100
    try:
        limit = int(value)
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be an integer\n") from None
    if not 1 <= limit <= QUERY_LIMIT:
        raise web.HTTPBadRequest(text=f"limit must be 1..{QUERY_LIMIT}\n")
    return limit


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise web.HTTPBadRequest(text=f'{{"error": "{key} required"}}', content_type=JSON)
    if len(value) > TEXT_MAX_CHARS:
        raise web.HTTPBadRequest(text=f'{{"error": "{key} too long"}}', content_type=JSON)
    return value.strip()
