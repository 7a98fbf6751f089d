"""Webhook delivery to a real aiohttp receiver: signature, payload, retries, dead letter."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from alerts.config import WebhookConfig
from alerts.delivery import SinkRunner
from alerts.events import Event, EventBus, EventType
from alerts.metrics import Metrics
from alerts.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSink
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

SECRET = "webhook-test-secret"


class Receiver:
    """A webhook receiver on loopback that checks signatures; can fail on purpose."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.received: list[dict[str, Any]] = []
        self.deliveries: list[str] = []
        self.tries = 0
        self.bad_signatures = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.tries += 1
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), expected):
            self.bad_signatures += 1
            return web.Response(status=401)
        assert abs(int(request.headers[TIMESTAMP_HEADER]) - time.time()) < 60
        self.deliveries.append(request.headers["X-Clonewatch-Delivery"])
        if self.tries <= self.fail_first:
            return web.Response(status=503)
        self.received.append(json.loads(body))
        return web.Response(status=204)

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def _config(url: str, tmp_path: Path, **kw: Any) -> WebhookConfig:
    values: dict[str, Any] = {
        "url": url,
        "secret": SecretStr(SECRET),
        "backoff_s": 0.05,
        "backoff_max_s": 0.4,
        "timeout_s": 2.0,
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
    }
    values.update(kw)
    return WebhookConfig(**values)


def _alert(n: int = 0) -> Event:
    return Event(
        type=EventType.ALERT_RAISED,
        call_id=f"call-{n}",
        participant_id="caller",
        line="+1555",
        ingress="sip",
        score=0.97,
        verdict="synthetic",
        alert_id=f"{n:032x}",
    )


async def test_service_alert_reaches_webhook_signed(tmp_path: Path, receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.port}/hook"
    config = service_config(
        tmp_path,
        model=loud_model(tmp_path / "model"),
        webhook={"url": url, "dead_letter_path": str(tmp_path / "dead.jsonl")},
    )
    config = config.model_copy(
        update={"webhook": config.webhook.model_copy(update={"secret": SecretStr(SECRET)})}
    )
    add_user(tmp_path / "clonewatch.db")
    async with running_service(config) as service, client() as http:
        me = await login(http, service)
        call_id = play_call(service)
        (alert,) = await wait_for(lambda: open_alerts(http, service), what="an alert")
        await wait_for(lambda: _async(len(receiver.received) >= 1), what="the webhook")
        raised = receiver.received[0]
        assert raised["type"] == "alert.raised" and raised["call_id"] == call_id
        assert raised["alert_id"] == alert["alert_id"] and raised["verdict"] == "synthetic"
        assert raised["score"] >= 0.8 and raised["ts"].endswith("Z") and raised["line"]
        ack = f"{base_url(service)}/api/alerts/{alert['alert_id']}/acknowledge"
        async with http.post(ack, headers={"X-CSRF-Token": me["csrf"]}) as resp:
            assert resp.status == 200
        await wait_for(lambda: _async(len(receiver.received) >= 2), what="the ack webhook")
        assert receiver.received[1]["type"] == "alert.acknowledged"
        assert receiver.received[1]["user"] == "alice"
    assert {e["type"] for e in receiver.received} == {"alert.raised", "alert.acknowledged"}
    assert receiver.bad_signatures == 0
    assert not (tmp_path / "dead.jsonl").exists()


async def _async(value: Any) -> Any:
    return value


async def test_retries_reach_a_receiver_that_comes_back(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    receiver = Receiver(fail_first=1)  # down (refused), then 503 once, then fine
    bus, metrics = EventBus(), Metrics()
    sink = WebhookSink(_config(f"http://127.0.0.1:{port}/hook", tmp_path, max_attempts=10), metrics)
    runner = SinkRunner(sink, bus, metrics)
    runner.start()
    try:
        bus.publish(_alert(1))
        await wait_for(
            lambda: _async(metrics.sink_failures_total.labels("webhook")._value.get() >= 1),
            what="a refused try",
        )
        await receiver.start(port)
        await wait_for(lambda: _async(receiver.received), what="the retried delivery")
    finally:
        await runner.aclose()
        await receiver.stop()
    assert receiver.received[0]["alert_id"] == f"{1:032x}"
    assert receiver.tries == 2  # the 503 and the success, both signed and checked
    assert len(set(receiver.deliveries)) == 1  # one delivery id across the retries
    assert not (tmp_path / "dead.jsonl").exists()


async def test_dead_letter_after_last_try_and_other_sinks_not_delayed(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    bus, metrics = EventBus(), Metrics()
    sink = WebhookSink(_config(f"http://127.0.0.1:{port}/hook", tmp_path, max_attempts=3), metrics)
    runner = SinkRunner(sink, bus, metrics)
    other = bus.subscribe("other")
    runner.start()
    try:
        started = time.monotonic()
        for n in range(3):
            bus.publish(_alert(n))
        for _ in range(3):  # another consumer gets every event at once
            await asyncio.wait_for(other.queue.get(), 1.0)
        assert time.monotonic() - started < 1.0
        dead = tmp_path / "dead.jsonl"

        async def three_dead() -> bool:
            return dead.exists() and len(dead.read_text().splitlines()) == 3

        await wait_for(three_dead, what="three dead letters")
    finally:
        await runner.aclose()
    records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted(r["event"]["call_id"] for r in records) == ["call-0", "call-1", "call-2"]
    assert all(r["tries"] == 3 and r["error"] for r in records)
    assert SECRET not in dead.read_text()
    assert metrics.sink_failures_total.labels("webhook")._value.get() == 9


async def test_secret_never_logged_nor_dead_lettered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    receiver = Receiver(fail_first=1)  # one retried try, then a delivery
    await receiver.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens here
    bus, metrics = EventBus(), Metrics()
    good = WebhookSink(_config(f"http://127.0.0.1:{receiver.port}/hook", tmp_path), metrics)
    bad = WebhookSink(
        _config(f"http://127.0.0.1:{dead_port}/hook", tmp_path, max_attempts=2), metrics, "bad"
    )
    runners = [SinkRunner(good, bus, metrics), SinkRunner(bad, bus, metrics)]
    for runner in runners:
        runner.start()
    dead = tmp_path / "dead.jsonl"
    try:
        bus.publish(_alert(7))
        await wait_for(lambda: _async(receiver.received and dead.exists()), what="both outcomes")
    finally:
        for runner in runners:
            await runner.aclose()
        await receiver.stop()
    assert receiver.tries == 2 and receiver.bad_signatures == 0
    assert "webhook gave up" in caplog.text  # the failure was logged ...
    assert SECRET not in caplog.text  # ... without the secret
    assert SECRET not in dead.read_text()
    assert SECRET not in repr(good.__dict__)  # the config's repr masks it
