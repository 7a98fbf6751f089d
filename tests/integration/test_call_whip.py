"""`clonewatch call FILE --whip URL` against the running service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.fakes.audio import speech_like
from tests.integration.service import read_events, running_service, service_config

pytestmark = pytest.mark.integration

TOKEN = "whip-test-token"


async def _call(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamer", "call", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_whip_call_is_scored_as_a_webrtc_call(tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    sf.write(wav, speech_like(4.0, 48000), 48000)
    events_path = tmp_path / "events.jsonl"
    config = service_config(tmp_path, whip={"tokens": [TOKEN]})
    async with running_service(config, events_path) as service:
        url = f"http://127.0.0.1:{service.http_port}/whip"
        code, out, err = await _call(str(wav), "--whip", url, "--token", TOKEN)
        assert code == 0, err
        call_id = out.strip().splitlines()[0]
        assert call_id.startswith("webrtc-")
        code, _, err = await _call(str(wav), "--whip", url, "--token", "wrong")
        assert code == 1 and "401" in err
        for _ in range(100):
            if any(e["type"] == "call.ended" for e in read_events(events_path)):
                break
            await asyncio.sleep(0.05)
        scored = service.metrics.registry.get_sample_value("clonewatch_windows_scored_total")
    events = [e for e in read_events(events_path) if e["call_id"] == call_id]
    types = [e["type"] for e in events]
    assert types[0] == "call.started" and types[-1] == "call.ended"
    assert events[0]["ingress"] == "webrtc"
    assert "participant.score" in types
    assert (scored or 0) >= 3
    assert json.dumps(events)  # events are JSON all the way
