"""The operator console and the test-call page in a real browser (Debian's Chromium)."""

from __future__ import annotations

import asyncio
import re
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from alerts.auth import Role
from streamer.app import Service
from tests.fakes.audio import speech_like
from tests.integration.console_helpers import PASSWORD, add_user, base_url, loud_model, play_call
from tests.integration.service import running_service, service_config

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
TIMEOUT_MS = 15_000


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    config = service_config(tmp_path, model=loud_model(tmp_path / "model"))
    add_user(tmp_path / "clonewatch.db", "alice", Role.OPERATOR)
    async with running_service(config) as svc:
        yield svc


async def _browser(extra_args: list[str] | None = None) -> tuple[object, Browser]:
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS + (extra_args or []))
    return pw, browser


async def _login(page: Page, service: Service, password: str = PASSWORD) -> None:
    await page.goto(base_url(service) + "/login")
    await page.fill("#name", "alice")
    await page.fill("#password", password)
    await page.click("#login-button")


async def test_console_shows_call_alert_timeline_and_acknowledges(
    service: Service, tmp_path: Path
) -> None:
    OUTPUT.mkdir(exist_ok=True)
    pw, browser = await _browser()
    try:
        page = await browser.new_page(viewport={"width": 1400, "height": 850})
        page.set_default_timeout(TIMEOUT_MS)
        await _login(page, service, "not the password")
        await expect(page.locator("#login-error")).to_contain_text("Wrong name or password")
        assert page.url.endswith("/login")
        await _login(page, service)
        await page.wait_for_url(base_url(service) + "/")
        await expect(page.locator("#conn")).to_contain_text("live")

        quiet = play_call(service, line="+15550000001", level=0.01, end=False)
        wav = tmp_path / "cloned.wav"
        _write_wav(wav, seconds=12.0, rate=16000)
        assert service.sip is not None
        caller = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "streamer",
            "call",
            str(wav),
            "--sip",
            f"127.0.0.1:{service.sip.udp_port}",
            "--to",
            "15550000911",
        )
        try:
            row = page.locator('tr[data-verdict="synthetic"]')
            await expect(row).to_have_count(1)
            call_id = await row.get_attribute("data-call-id") or ""
            await expect(row).to_contain_text("sip")
            await expect(page.locator(f'tr[data-call-id="{quiet}"]')).to_be_visible()
            banner = page.locator("#banner")
            await expect(banner).to_be_visible()
            await expect(banner).to_contain_text("SYNTHETIC VOICE DETECTED")

            await row.click()
            await expect(page.locator("#timeline-panel")).to_be_visible()
            await expect(page.locator("#timeline-title")).to_contain_text(call_id)
            await expect(page.locator("#timeline")).not_to_have_attribute("data-points", "0")
            await page.screenshot(path=str(OUTPUT / "console-alert.png"))
            await _acknowledge(page, service, call_id)
        finally:
            if caller.returncode is None:
                caller.kill()
            await caller.wait()
    finally:
        await browser.close()
        await pw.stop()  # type: ignore[attr-defined]


async def _acknowledge(page: Page, service: Service, call_id: str) -> None:
    """Acknowledge the open alert in the alerts list; check the page and the store."""
    await page.locator("li.alert.s-open").locator("button.ack").click()
    await expect(page.locator("li.alert.s-acknowledged")).to_contain_text("acknowledged by alice")
    await expect(page.locator("#banner")).to_be_hidden()
    await page.screenshot(path=str(OUTPUT / "console-acknowledged.png"))
    stored = await service.store.alerts(status="acknowledged")
    assert [(a["call_id"], a["actions"][0]["user"]) for a in stored] == [(call_id, "alice")]


def _write_wav(path: Path, seconds: float, rate: int) -> None:
    samples = speech_like(seconds, rate, level=0.9)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.tobytes())


async def test_test_call_page_scores_the_browser_microphone(
    service: Service, tmp_path: Path
) -> None:
    OUTPUT.mkdir(exist_ok=True)
    wav = tmp_path / "voice.wav"
    _write_wav(wav, 12.0, 48000)
    fake_media = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    pw, browser = await _browser(fake_media)
    try:
        context = await browser.new_context()
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        await _login(page, service)
        await page.wait_for_url(base_url(service) + "/")
        await page.goto(base_url(service) + "/test-call")
        await page.click("#start")
        await expect(page.locator("#status")).to_contain_text("live")
        call_id = (await page.locator("#call-id").text_content()) or ""
        assert call_id.startswith("webrtc-")
        windows = page.locator("#windows")
        await expect(windows).not_to_have_text("0")
        await expect(windows).not_to_have_text("1")
        await page.screenshot(path=str(OUTPUT / "test-call.png"))
        await page.click("#stop")
        await expect(page.locator("#status")).to_contain_text(re.compile("hung up|ended"))
    finally:
        await browser.close()
        await pw.stop()  # type: ignore[attr-defined]
    await service.store.flush()
    stored = await service.store.call(call_id)
    assert stored is not None and stored["ingress"] == "webrtc"
    points = await service.store.timeline(call_id, stored["participants"][0]["participant_id"])
    assert len(points) >= 2  # windows of the browser's audio were scored
