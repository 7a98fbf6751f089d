"""The whole service end to end: real sipp calls in, verdict events and alerts out.

The tiny "energy" test model scores loud speech as synthetic and quiet speech as human,
so one test call can exercise every verdict path without the trained detector.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamer.g711 import alaw_encode, ulaw_encode
from tests.fakes.audio import speech_like
from tests.fakes.models import write_test_model
from tests.integration import sipp_scenarios as scen
from tests.integration.service import read_events, running_service, service_config
from tests.integration.sip_harness import (
    port_is_free,
    run_sipp,
    send_rtp,
    udp_socket,
    wait_for,
    write_ulaw_wav,
)
from tests.integration.test_sip_sipp import METADATA

pytestmark = pytest.mark.integration

THRESHOLDS = {"threshold": 0.5, "thresholds": {"eer": 0.5, "fpr_1pct": 0.8}}


def _model(tmp_path: Path) -> Path:
    # RMS 0.02 is the 50 % point: the test speech (RMS ~0.06) scores ~0.9, a tenth of it ~0.1.
    return write_test_model(
        tmp_path / "model", window_s=1.0, hop_s=0.5, ref_rms=0.02, manifest_overrides=THRESHOLDS
    )


def _types(events: list[dict[str, Any]], call_id: str) -> list[str]:
    return [e["type"] for e in events if e["call_id"] == call_id]


def _metric(service: Any, name: str, **labels: str) -> float:
    value = service.metrics.registry.get_sample_value(name, labels or None)
    return float(value or 0.0)


async def test_plain_sip_call_is_scored_and_raises_one_alert(tmp_path: Path) -> None:
    events_path = tmp_path / "events.jsonl"
    wav = tmp_path / "speech.wav"
    write_ulaw_wav(wav, 6.0)
    config = service_config(tmp_path, _model(tmp_path))
    async with running_service(config, events_path) as service:
        code, errors = await run_sipp(scen.plain_call(str(wav), 5000), tmp_path, config.sip.port)
        assert code == 0, errors
        await wait_for(lambda: "call.ended" in {e["type"] for e in read_events(events_path)})
        assert _metric(service, "clonewatch_windows_scored_total") >= 4
        assert _metric(service, "clonewatch_calls_active", ingress="sip") == 0
        history = await service.store.calls()
    events = read_events(events_path)
    (call_id,) = {e["call_id"] for e in events}
    types = _types(events, call_id)
    assert types[:2] == ["call.started", "participant.joined"]
    assert types[-1] == "call.ended"
    assert types.count("alert.raised") == 1
    assert "participant.score" in types
    verdicts = [e["verdict"] for e in events if e["type"] == "participant.verdict"]
    assert verdicts[-1] == "synthetic"
    alert = next(e for e in events if e["type"] == "alert.raised")
    assert alert["ingress"] == "sip"
    assert alert["line"] == "+15551230000"
    assert alert["participant_id"] == "caller"
    assert alert["score"] >= 0.8
    assert 0 < alert["media_s"] < 5.0
    assert next(e for e in events if e["type"] == "call.ended")["reason"] == "bye"
    assert [c["call_id"] for c in history] == [call_id]


def _packets(ssrc: int, pt: int, seconds: float, level: float) -> list[bytes]:
    pcm = speech_like(seconds, 8000, seed=ssrc, level=level)
    encode = alaw_encode if pt == 8 else ulaw_encode
    return [
        struct.pack("!BBHII", 0x80, pt, i, i * 160, ssrc) + encode(pcm[i * 160 : (i + 1) * 160])
        for i in range(len(pcm) // 160)
    ]


async def test_siprec_participants_get_their_own_verdicts(tmp_path: Path) -> None:
    events_path = tmp_path / "events.jsonl"
    senders = [udp_socket(), udp_socket()]
    src_ports = (senders[0].getsockname()[1], senders[1].getsockname()[1])
    config = service_config(tmp_path, _model(tmp_path))
    async with running_service(config, events_path) as service:
        calls = service.calls
        assert calls is not None

        async def talk() -> list[int]:
            await wait_for(lambda: bool(read_events(events_path)))
            call_id = read_events(events_path)[0]["call_id"]
            await wait_for(lambda: len(calls.participants(call_id)) == 2)
            ours = calls.participants(call_id)
            await asyncio.gather(
                send_rtp(senders[0], ours["96"], _packets(96, 0, 4.0, level=0.3)),
                send_rtp(senders[1], ours["97"], _packets(97, 8, 4.0, level=0.03)),
            )
            return list(ours.values())

        talker = asyncio.create_task(talk())
        code, errors = await run_sipp(
            scen.siprec_call(src_ports, METADATA, 4500), tmp_path, config.sip.port
        )
        ports = await talker
        for sock in senders:
            sock.close()
        assert code == 0, errors
        await wait_for(lambda: "call.ended" in {e["type"] for e in read_events(events_path)})
        assert all(port_is_free(p) for p in ports)
    events = read_events(events_path)
    joined = {e["participant_id"]: e for e in events if e["type"] == "participant.joined"}
    assert set(joined) == {"96", "97"}
    assert joined["96"]["ingress"] == "siprec"
    last: dict[str, str] = {}
    for e in events:
        if e["type"] == "participant.verdict":
            last[e["participant_id"]] = e["verdict"]
    assert last == {"96": "synthetic", "97": "human"}
    alerts = [e for e in events if e["type"] == "alert.raised"]
    assert [a["participant_id"] for a in alerts] == ["96"]
    scores = np.array(
        [e["score"] for e in events if e.get("participant_id") == "97" and "score" in e]
    )
    assert scores.max() < 0.5
