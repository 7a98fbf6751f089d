"""Roles: once an alert is escalated, only a supervisor may dismiss it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerts.auth import Role
from streamer.app import Service
from tests.integration.console_helpers import (
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


async def _post(
    http: aiohttp.ClientSession, service: Service, me: dict[str, Any], path: str, body: Any
) -> tuple[int, dict[str, Any]]:
    url = base_url(service) + path
    async with http.post(url, json=body, headers={"X-CSRF-Token": me["csrf"]}) as resp:
        return resp.status, await resp.json()


async def test_only_a_supervisor_dismisses_an_escalated_alert(tmp_path: Path) -> None:
    config = service_config(tmp_path, model=loud_model(tmp_path / "model"))
    db = tmp_path / "clonewatch.db"
    add_user(db, "alice", Role.OPERATOR)
    add_user(db, "carol", Role.OPERATOR)
    add_user(db, "sam", Role.SUPERVISOR)
    async with running_service(config) as service:
        async with client() as alice_http, client() as carol_http, client() as sam_http:
            alice = await login(alice_http, service, "alice")
            carol = await login(carol_http, service, "carol")
            sam = await login(sam_http, service, "sam")
            assert (alice["role"], sam["role"]) == ("operator", "supervisor")
            play_call(service, line="+15550000001")
            play_call(service, line="+15550000002")
            alerts = await wait_for(lambda: _n_alerts(alice_http, service, 2), what="two alerts")
            escalated, plain = sorted(alerts, key=lambda a: str(a["line"]))
            base = "/api/alerts/{}/{}"
            path = base.format(escalated["alert_id"], "escalate")
            assert (await _post(alice_http, service, alice, path, {"note": "sounds cloned"}))[
                0
            ] == 200

            dismiss = base.format(escalated["alert_id"], "dismiss")
            for http, me in ((alice_http, alice), (carol_http, carol)):
                status, body = await _post(http, service, me, dismiss, {"reason": "my call"})
                assert status == 403 and "supervisor" in body["error"]
            ack = base.format(escalated["alert_id"], "acknowledge")
            assert (await _post(carol_http, service, carol, ack, {}))[0] == 200
            status, _ = await _post(carol_http, service, carol, dismiss, {"reason": "still"})
            assert status == 403  # acknowledging does not undo the escalation
            status, body = await _post(sam_http, service, sam, dismiss, {"reason": "test line"})
            assert status == 200 and body["stored"] is True

            # An alert nobody escalated is any operator's to dismiss.
            path = base.format(plain["alert_id"], "dismiss")
            assert (await _post(carol_http, service, carol, path, {"reason": "drill"}))[0] == 200

        stored = {a["alert_id"]: a for a in await service.store.alerts()}
        actions = [(x["action"], x["user"]) for x in stored[escalated["alert_id"]]["actions"]]
        assert actions == [("escalated", "alice"), ("acknowledged", "carol"), ("dismissed", "sam")]
        assert stored[plain["alert_id"]]["status"] == "dismissed"


async def _n_alerts(
    http: aiohttp.ClientSession, service: Service, n: int
) -> list[dict[str, Any]] | None:
    found = await open_alerts(http, service)
    return found if len(found) == n else None
