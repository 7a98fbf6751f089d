"""In-dialog behaviour with real sipp peers: re-INVITE hold/unhold, and a caller that never ACKs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import sipp_scenarios as scen
from tests.integration.sip_harness import run_sipp, running_service, wait_for, write_ulaw_wav

pytestmark = pytest.mark.integration


async def test_hold_suspends_the_rtp_timeout_and_unhold_resumes_audio(tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    write_ulaw_wav(wav, 3.0)
    async with running_service(rtp_timeout_s=1.0) as svc:
        # On hold for 2.5 s, longer than the 1 s RTP timeout.
        scenario = scen.hold_unhold_call(str(wav), talk_ms=1500, hold_ms=2500)
        code, errors = await run_sipp(scenario, tmp_path, svc.port)
        assert code == 0, errors
        (call_id,) = svc.sink.calls
        await wait_for(lambda: call_id in svc.sink.closed)
        assert svc.sink.closed[call_id] == "bye"  # not "rtp-timeout" during the hold
        frames = svc.sink.frames_of(call_id, "caller")
        assert len(frames) >= 100  # audio before the hold and after the unhold
        assert svc.counter("clonewatch_sip_responses_total", method="INVITE", code="200") == 3
        assert svc.calls.pool.in_use == frozenset()


async def test_unacknowledged_200_is_retransmitted_then_the_call_is_ended(tmp_path: Path) -> None:
    messages = tmp_path / "messages.log"
    async with running_service(t1_s=0.05) as svc:
        code, errors = await run_sipp(
            scen.unacknowledged_call(), tmp_path, svc.port, "-trace_msg", "-message_file",
            str(messages),
        )  # fmt: skip
        assert code == 0, errors
        (call_id,) = svc.sink.calls
        await wait_for(lambda: call_id in svc.sink.closed)
        assert svc.sink.closed[call_id] == "error"
        # 64*T1 = 3.2 s with T1 doubling to T2: several retransmissions before giving up.
        received = messages.read_text().split("message received")[1:]
        received_200 = sum(
            1 for m in received if "SIP/2.0 200 OK" in m.split("-----")[0] and "CSeq: 1 INVITE" in m
        )
        assert received_200 >= 4
        assert svc.calls.active_calls == 0
        assert svc.server.dialogs == {}
