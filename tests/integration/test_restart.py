"""Restart the service on the same store: acknowledged alerts and history are still there."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

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


async def test_restart_keeps_actions_and_history(tmp_path: Path) -> None:
    config = service_config(tmp_path, model=loud_model(tmp_path / "model"))
    add_user(tmp_path / "clonewatch.db")
    async with running_service(config) as service, client() as http:
        me = await login(http, service)
        call_id = play_call(service)
        play_call(service)
        alerts = await wait_for(lambda: _two(open_alerts(http, service)), what="two alerts")
        acked = next(a for a in alerts if a["call_id"] == call_id)
        other = next(a for a in alerts if a["call_id"] != call_id)
        url = f"{base_url(service)}/api/alerts/{acked['alert_id']}/acknowledge"
        async with http.post(url, headers={"X-CSRF-Token": me["csrf"]}) as resp:
            assert (await resp.json())["stored"] is True

    # Same config, same database: a new process's worth of service.
    async with running_service(config) as service, client() as http:
        me = await login(http, service)
        async with http.get(base_url(service) + "/api/alerts") as resp:
            stored = {a["alert_id"]: a for a in (await resp.json())["alerts"]}
        assert stored[acked["alert_id"]]["status"] == "acknowledged"
        assert stored[acked["alert_id"]]["actions"][0]["user"] == "alice"
        assert stored[other["alert_id"]]["status"] == "open"
        async with http.get(base_url(service) + "/api/history/calls") as resp:
            calls = (await resp.json())["calls"]
        assert {c["call_id"] for c in calls} >= {call_id, other["call_id"]}
        path = f"/api/calls/{call_id}/participants/caller/timeline"
        async with http.get(base_url(service) + path) as resp:
            assert len((await resp.json())["points"]) >= 2
        # An alert raised before the restart can still be acted on.
        url = f"{base_url(service)}/api/alerts/{other['alert_id']}/dismiss"
        body = {"reason": "test line"}
        async with http.post(url, json=body, headers={"X-CSRF-Token": me["csrf"]}) as resp:
            assert resp.status == 200 and (await resp.json())["stored"] is True
        assert await open_alerts(http, service) == []


async def _two(alerts: Awaitable[list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    found = await alerts
    return found if len(found) == 2 else None
