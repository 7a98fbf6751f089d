"""The operator console's HTTP API against the whole service, in-process on loopback."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamer.app import Service
from tests.integration.console_helpers import (
    PASSWORD,
    add_user,
    base_url,
    client,
    login,
    loud_model,
    open_alerts,
    play_call,
    wait_for,
)
from tests.integration.service import running_service, service_config

pytestmark = pytest.mark.integration


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    config = service_config(
        tmp_path, model=loud_model(tmp_path / "model"), console={"login_failures_allowed": 3}
    )
    add_user(tmp_path / "clonewatch.db")
    async with running_service(config) as svc:
        yield svc


async def _alert(http: aiohttp.ClientSession, service: Service, **kw: Any) -> dict[str, Any]:
    play_call(service, **kw)
    alerts = await wait_for(lambda: open_alerts(http, service), what="an alert")
    return alerts[0]  # type: ignore[no-any-return]


async def test_login_required_and_wrong_password_refused(service: Service) -> None:
    url = base_url(service)
    async with client() as http:
        async with http.get(url + "/", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/login"
        async with http.get(url + "/api/calls") as resp:
            assert resp.status == 401
        async with http.get(url + "/healthz") as resp:
            assert resp.status == 200
        bad = {"name": "alice", "password": "wrong password!"}
        async with http.post(url + "/login", json=bad) as resp:
            assert resp.status == 401
        async with http.get(url + "/api/me") as resp:
            assert resp.status == 401
        async with http.post(url + "/login", json={"name": "alice", "password": PASSWORD}) as resp:
            assert resp.status == 200
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert "Secure" not in cookie  # plain HTTP in this test
        async with http.get(url + "/api/me") as resp:
            me = await resp.json()
            assert me["name"] == "alice" and me["role"] == "operator" and me["csrf"]
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert resp.headers["X-Frame-Options"] == "DENY"
        async with http.get(url + "/") as resp:
            assert resp.status == 200 and "<script src=" in await resp.text()


async def test_login_rate_limited(service: Service) -> None:
    url = base_url(service)
    async with client() as http:
        for _ in range(3):
            async with http.post(url + "/login", json={"name": "alice", "password": "x"}) as r:
                assert r.status == 401
        # Blocked now, even with the right password.
        async with http.post(url + "/login", json={"name": "alice", "password": PASSWORD}) as r:
            assert r.status == 429
            assert int(r.headers["Retry-After"]) > 0


async def test_csrf_enforced(service: Service) -> None:
    url = base_url(service)
    async with client() as http:
        me = await login(http, service)
        alert = await _alert(http, service)
        ack = f"{url}/api/alerts/{alert['alert_id']}/acknowledge"
        async with http.post(ack) as resp:
            assert resp.status == 403
        async with http.post(ack, headers={"X-CSRF-Token": "forged"}) as resp:
            assert resp.status == 403
        async with http.post(url + "/logout") as resp:
            assert resp.status == 403
        assert (await open_alerts(http, service))[0]["alert_id"] == alert["alert_id"]
        async with http.post(ack, headers={"X-CSRF-Token": me["csrf"]}) as resp:
            assert resp.status == 200
        async with http.post(url + "/logout", headers={"X-CSRF-Token": me["csrf"]}) as resp:
            assert resp.status == 200
        async with http.get(url + "/api/me") as resp:
            assert resp.status == 401


async def test_actions_recorded_with_user_and_history_filters(service: Service) -> None:
    url = base_url(service)
    async with client() as http:
        me = await login(http, service)
        csrf = {"X-CSRF-Token": me["csrf"]}
        alert = await _alert(http, service, line="+15550002222")
        base = f"{url}/api/alerts/{alert['alert_id']}"
        async with http.post(base + "/dismiss", json={}, headers=csrf) as resp:
            assert resp.status == 400  # a reason is required
        async with http.post(base + "/acknowledge", headers=csrf) as resp:
            body = await resp.json()
            assert resp.status == 200 and body["stored"] is True
            assert body["event"]["user"] == "alice"
        async with http.post(
            base + "/escalate", json={"note": "caller asked for money"}, headers=csrf
        ) as resp:
            assert resp.status == 200
        async with http.post(f"{url}/api/alerts/{'0' * 32}/acknowledge", headers=csrf) as resp:
            assert resp.status == 404
        async with http.get(url + "/api/alerts?status=escalated") as resp:
            (stored,) = (await resp.json())["alerts"]
        assert [(a["action"], a["user"]) for a in stored["actions"]] == [
            ("acknowledged", "alice"),
            ("escalated", "alice"),
        ]
        assert stored["actions"][1]["note"] == "caller asked for money"
        assert all(a["ts"] for a in stored["actions"])

        play_call(service, line="+15550003333", level=0.01)  # quiet: no alert
        history = url + "/api/history/calls"

        async def two_calls() -> list[dict[str, Any]]:
            async with http.get(history) as resp:
                calls: list[dict[str, Any]] = (await resp.json())["calls"]
            return calls if len(calls) == 2 and all(c["ended"] for c in calls) else []

        await wait_for(two_calls, what="two stored calls")
        async with http.get(history, params={"line": "+15550002222"}) as resp:
            (call,) = (await resp.json())["calls"]
            assert call["verdict"] == "synthetic"
        async with http.get(history, params={"verdict": "synthetic"}) as resp:
            assert [c["line"] for c in (await resp.json())["calls"]] == ["+15550002222"]
        async with http.get(history, params={"since": "2999-01-01T00:00:00Z"}) as resp:
            assert (await resp.json())["calls"] == []
        async with http.get(history, params={"until": "2999-01-01T00:00:00Z"}) as resp:
            assert len((await resp.json())["calls"]) == 2
        async with http.get(history, params={"verdict": "robot"}) as resp:
            assert resp.status == 400
        timeline = f"{url}/api/calls/{call['call_id']}/participants/caller/timeline"
        async with http.get(timeline) as resp:
            data = await resp.json()
        assert data["live"] is False and len(data["points"]) >= 2
        assert data["thresholds"]["synthetic"] > data["thresholds"]["suspect"]
        assert any(v["verdict"] == "synthetic" for v in data["verdict_changes"])


async def _read_events(ws: aiohttp.ClientWebSocketResponse, want: str) -> list[dict[str, Any]]:
    """Messages until an event of type `want` arrives (bounded by the receive timeout)."""
    seen: list[dict[str, Any]] = []
    while not any(e.get("type") == want for e in seen):
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        seen.extend(data if isinstance(data, list) else [data])
    return seen


async def test_live_feed_catches_up_after_reconnect(service: Service) -> None:
    url = base_url(service)
    ws_url = url.replace("http", "ws") + "/api/live"
    async with client() as http:
        await login(http, service)
        async with http.get(url + "/api/calls") as resp:
            snap = await resp.json()
        params: dict[str, str | int] = {"after": snap["cursor"], "boot": snap["boot"]}
        async with http.ws_connect(ws_url, params=params) as ws:
            (hello,) = await _read_events(ws, "hello")
            assert hello["resync"] is False
        # Disconnected while a call raises an alert.
        call_id = play_call(service)
        await wait_for(lambda: open_alerts(http, service), what="an alert")
        async with http.ws_connect(ws_url, params=params) as ws:
            events = await _read_events(ws, "alert.raised")
        assert events[0] == {**events[0], "type": "hello", "resync": False}
        raised = [e for e in events if e.get("type") == "alert.raised"]
        assert raised[0]["call_id"] == call_id and raised[0]["seq"] > snap["cursor"]
        assert [e["type"] for e in events[1:3]] == ["call.started", "participant.joined"]
        # A cursor from another process (a restart): resync, and catch up from the store.
        stale: dict[str, str | int] = {
            "after": 1,
            "boot": "not-this-process",
            "since": "2000-01-01T00:00:00Z",
        }
        async with http.ws_connect(ws_url, params=stale) as ws:
            events = await _read_events(ws, "alert.raised")
        assert events[0]["resync"] is True
        assert any(e.get("replay") and e["call_id"] == call_id for e in events[1:])


async def test_hostile_input_gets_4xx_and_service_stays_up(service: Service) -> None:
    url = base_url(service)
    async with client() as http:
        async with http.post(url + "/login", data=io.BytesIO(b"x" * (2 * 1024 * 1024))) as resp:
            assert resp.status == 413
        async with http.post(url + "/login", data=b"{not json") as resp:
            assert resp.status == 400
        async with http.post(url + "/login", json=["alice", PASSWORD]) as resp:
            assert resp.status == 400
        me = await login(http, service)
        csrf = {"X-CSRF-Token": me["csrf"]}
        for path in (
            "/static/../alerts/auth.py",
            "/static/%2e%2e/auth.py",
            "/static/..%2fauth.py",
            "/static/%2e%2e%2f%2e%2e%2fetc/passwd",
            "/api/calls/..%2F..%2Fetc/participants/x/timeline",
            "/api/history/calls/%00",
        ):
            async with http.get(url + path) as resp:
                assert 400 <= resp.status < 500, path
                assert "hash_password" not in await resp.text()
        for query in ("limit=abc", "limit=100000", "since=yesterday", "status=bogus"):
            async with http.get(f"{url}/api/alerts?{query}") as resp:
                assert resp.status == 400, query
        action = f"{url}/api/alerts/{'a' * 32}/dismiss"
        async with http.post(action, data=b"[" * 100_000, headers=csrf) as resp:
            assert resp.status == 413
        async with http.post(action, data=b"{bad", headers=csrf) as resp:
            assert resp.status == 400
        async with http.post(f"{url}/api/alerts/..%2F..%2Fx/acknowledge", headers=csrf) as resp:
            assert resp.status == 404
        async with http.get(url + "/api/live", params={"after": "x"}) as resp:
            assert resp.status == 400
        async with http.get(url + "/healthz") as resp:
            assert resp.status == 200
        async with http.get(url + "/api/calls") as resp:
            assert resp.status == 200
