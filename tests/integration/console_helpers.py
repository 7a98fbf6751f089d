"""Helpers for console tests: a user, a logged-in client, and a call that raises an alert."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from alerts.auth import Role, UserStore
from alerts.types import CallInfo, Ingress, ParticipantInfo
from inference.types import FRAME_BYTES, AudioFrame
from streamer.app import Service
from tests.fakes.audio import speech_like
from tests.fakes.models import write_test_model

PASSWORD = "correct horse battery"
POLL_S = 0.05


def loud_model(directory: Path) -> Path:
    """An energy model under which loud speech scores as synthetic."""
    return write_test_model(directory, window_s=1.0, hop_s=0.5, gain=4.0, ref_rms=0.05)


def add_user(db: Path, name: str = "alice", role: Role = Role.OPERATOR) -> None:
    """Create a console user in the service's database."""
    users = UserStore(db)
    try:
        users.add_user(name, role, PASSWORD)
    finally:
        users.close()


def base_url(service: Service) -> str:
    """The service's HTTP address."""
    return f"http://127.0.0.1:{service.http_port}"


async def login(
    http: aiohttp.ClientSession, service: Service, name: str = "alice", password: str = PASSWORD
) -> dict[str, Any]:
    """Log in; returns /api/me (with the CSRF token)."""
    async with http.post(
        base_url(service) + "/login", json={"name": name, "password": password}
    ) as resp:
        assert resp.status == 200, await resp.text()
    async with http.get(base_url(service) + "/api/me") as resp:
        assert resp.status == 200
        me: dict[str, Any] = await resp.json()
    return me


def play_call(
    service: Service,
    seconds: float = 4.0,
    *,
    line: str = "+15550001111",
    level: float = 0.9,
    call_id: str | None = None,
    end: bool = True,
) -> str:
    """Push a loud speech-like call straight into the pipeline; returns its call id."""
    assert service.analysis is not None
    pipeline = service.analysis.pipeline
    call_id = call_id or f"test-{uuid.uuid4().hex[:8]}"
    pipeline.open_call(CallInfo(call_id, Ingress.SIP, line))
    pipeline.add_participant(ParticipantInfo(call_id, "caller", "sip:caller@example.test"))
    pcm = speech_like(seconds, level=level).tobytes()
    now = time.monotonic()
    for seq, start in enumerate(range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)):
        pipeline.push(
            AudioFrame(call_id, "caller", seq, pcm[start : start + FRAME_BYTES], seq * 0.02, now)
        )
    if end:
        pipeline.close_call(call_id, "hangup")
    return call_id


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout_s: float = 10.0, what: str = "condition"
) -> Any:
    """Poll `check()` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)


async def open_alerts(http: aiohttp.ClientSession, service: Service) -> list[dict[str, Any]]:
    """The stored open alerts."""
    async with http.get(base_url(service) + "/api/alerts?status=open") as resp:
        alerts: list[dict[str, Any]] = (await resp.json())["alerts"]
    return alerts


def client() -> aiohttp.ClientSession:
    """An HTTP client that keeps cookies for 127.0.0.1 (aiohttp refuses IP hosts otherwise)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
