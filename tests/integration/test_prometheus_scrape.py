"""A real Prometheus scrapes a running clonewatch while a SIP call (sipp) is played in.

The service runs with a tiny test model (`tests/fakes/models.py`) and free loopback ports;
Prometheus (`/usr/bin/prometheus`) scrapes its `/metrics` every second and loads the
shipped alert rules. The test then asks Prometheus, through its HTTP API, for the series
the call must have produced, and evaluates every dashboard query against the live data.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from aiohttp import ClientSession

from streamer.app import Service
from streamer.config import AppConfig
from tests.fakes.audio import speech_like
from tests.fakes.models import write_test_model
from tests.integration.service import free_port, free_port_range
from tests.prometheus_server import PrometheusServer, Vector, run_prometheus
from tests.promql import dashboard_exprs, rules, substitute_grafana_vars

pytestmark = pytest.mark.integration

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
CALL_AUDIO_S = 5.0
SIPP_TIMEOUT_S = 30.0

# A UAC that offers PCMU, streams a WAV file as RTP once answered, then hangs up.
SCENARIO = """<?xml version="1.0" encoding="UTF-8"?>
<scenario name="clonewatch metrics call">
  <send retrans="500"><![CDATA[
INVITE sip:monitor@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:monitor@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendonly
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:monitor@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:monitor@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec rtp_stream="AUDIO_FILE,1,0"/></action></nop>
  <pause milliseconds="PAUSE_MS"/>
  <send retrans="500"><![CDATA[
BYE sip:monitor@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:monitor@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def _config(tmp_path: Path) -> AppConfig:
    model = write_test_model(tmp_path / "models", window_s=1.0, hop_s=0.5, ref_rms=0.05)
    rtp_min = random.randrange(30000, 39000, 2)
    return AppConfig.model_validate(
        {
            "sip": {"host": "127.0.0.1", "port": 0, "advertised_host": "127.0.0.1"},
            "rtp": {"port_min": rtp_min, "port_max": rtp_min + 99},
            "http": {"host": "127.0.0.1", "port": 0},
            "model": {"path": str(model), "providers": ["CPUExecutionProvider"]},
            "store": {"path": str(tmp_path / "clonewatch.db")},
            "events": {"log": False, "jsonl_path": str(tmp_path / "events.jsonl")},
        }
    )


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    svc = Service(_config(tmp_path))
    await svc.start()
    try:
        yield svc
    finally:
        await svc.aclose()


@pytest.fixture
async def prometheus(service: Service, tmp_path: Path) -> AsyncIterator[PrometheusServer]:
    async with run_prometheus(tmp_path / "prometheus", f"127.0.0.1:{service.http_port}") as prom:
        yield prom


async def _play_call(tmp_path: Path, sip_port: int) -> None:
    """One sipp call to the service: INVITE, CALL_AUDIO_S of PCMU speech, BYE."""
    rate = 8000
    audio = speech_like(CALL_AUDIO_S, rate).astype(np.float32) / 32768.0
    wav = tmp_path / "call.wav"
    sf.write(str(wav), audio, rate, subtype="ULAW")
    scenario = tmp_path / "call.xml"
    pause_ms = int(CALL_AUDIO_S * 1000) + 500
    scenario.write_text(SCENARIO.replace("AUDIO_FILE", str(wav)).replace("PAUSE_MS", str(pause_ms)))
    args = [f"127.0.0.1:{sip_port}", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1"]
    media_base, _ = free_port_range(4)  # sipp binds audio and video RTP and RTCP from here
    args += ["-p", str(free_port()), "-mp", str(media_base), "-nostdin", "-timeout", "25s"]
    args += ["-trace_err", "-error_file", str(tmp_path / "sipp-errors.log")]
    proc = await asyncio.create_subprocess_exec(
        SIPP, *args, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), SIPP_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    errors = tmp_path / "sipp-errors.log"
    detail = errors.read_text(errors="replace") if errors.exists() else out.decode()[-2000:]
    assert proc.returncode == 0, f"sipp exited {proc.returncode}:\n{detail}"


async def _rule_health(prom: PrometheusServer, names: set[str]) -> dict[str, str]:
    """Poll /api/v1/rules until every alert rule was evaluated once (bounded)."""
    deadline = time.monotonic() + 20.0
    while True:
        data = await prom.api("rules", type="alert")
        health = {r["name"]: r["health"] for g in data["groups"] for r in g["rules"]}
        if set(health) == names and "unknown" not in health.values():
            return health
        if time.monotonic() > deadline:
            return health
        await asyncio.sleep(0.25)


def _value(result: Vector) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def _one_above(threshold: float) -> Callable[[Vector], bool]:
    return lambda r: len(r) == 1 and float(r[0]["value"][1]) > threshold


async def test_health_endpoints(service: Service) -> None:
    async with ClientSession() as http:
        base = f"http://127.0.0.1:{service.http_port}"
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["ready"] is True


async def test_prometheus_scrapes_service_during_a_call(
    service: Service, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    prom = prometheus
    assert _value(await prom.wait_for('up{job="clonewatch"} == 1')) == 1.0
    info = await prom.wait_for("clonewatch_model_info")
    assert info[0]["metric"]["name"] == "test-model"
    assert info[0]["metric"]["version"] == "0.0-test"
    assert info[0]["metric"]["provider"] == "CPUExecutionProvider"
    assert _value(await prom.wait_for("process_resident_memory_bytes")) > 10e6
    await prom.wait_for("process_cpu_seconds_total")

    assert service.sip is not None
    await _play_call(tmp_path, service.sip.udp_port)

    calls = await prom.wait_for('clonewatch_calls_total{ingress="sip"}', _one_above(0.5))
    assert _value(calls) == 1.0
    await prom.wait_for('clonewatch_sip_requests_total{method="INVITE"}', _one_above(0.5))
    await prom.wait_for('clonewatch_sip_requests_total{method="BYE"}', _one_above(0.5))
    received = await prom.wait_for('clonewatch_rtp_packets_total{ingress="sip"}', _one_above(100))
    assert _value(received) <= CALL_AUDIO_S / 0.02 + 5  # 20 ms packets, none invented
    audio = await prom.wait_for('clonewatch_audio_seconds_total{ingress="sip"}', _one_above(2.0))
    assert _value(audio) <= CALL_AUDIO_S + 1.0
    await prom.wait_for("clonewatch_speech_seconds_total", _one_above(0.5))
    await prom.wait_for("clonewatch_windows_scored_total", _one_above(0.5))
    await prom.wait_for("clonewatch_score_latency_seconds_count", _one_above(0.5))
    await prom.wait_for("sum(clonewatch_calls_active)", lambda r: _value(r) == 0.0)


async def test_dashboard_and_rules_evaluate_on_live_data(prometheus: PrometheusServer) -> None:
    prom = prometheus
    await prom.wait_for('up{job="clonewatch"} == 1')
    for _, expr in dashboard_exprs():
        await prom.query(substitute_grafana_vars(expr))  # raises on a query error
    # Panels built on always-present series show data at once.
    model = substitute_grafana_vars(
        next(e for w, e in dashboard_exprs() if w.startswith("panel 'Model'"))
    )
    assert len(await prom.wait_for(model)) == 1
    names = {r["alert"] for r in rules()}
    health = await _rule_health(prom, names)
    assert set(health) == names
    assert set(health.values()) == {"ok"}, health
    firing = await prom.api("alerts")
    assert [a for a in firing["alerts"] if a["state"] == "firing"] == []
