"""Real sipp calls against a SipServer + CallManager on loopback (FakeFrameSink)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from alerts.types import Ingress
from tests.integration import sipp_scenarios as scen
from tests.integration.sip_harness import (
    Service,
    port_is_free,
    rtp_packets,
    run_sipp,
    running_service,
    send_rtp,
    silence_check,
    udp_socket,
    wait_for,
    write_ulaw_wav,
)

pytestmark = pytest.mark.integration

METADATA = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="s1"><sipSessionID>abc</sipSessionID></session>
  <participant participant_id="pA"><nameID aor="sip:+15551110000@example.com">
    <name xml:lang="en">Alice Caller</name></nameID></participant>
  <participant participant_id="pB"><nameID aor="sip:bob@example.com"/></participant>
  <stream stream_id="st1" session_id="s1"><label>96</label></stream>
  <stream stream_id="st2" session_id="s1"><label>97</label></stream>
  <participantstreamassoc participant_id="pA"><send>st1</send><recv>st2</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="pB"><send>st2</send><recv>st1</recv>
  </participantstreamassoc>
</recording>"""


def assert_released(svc: Service, ports: list[int]) -> None:
    assert svc.calls.active_calls == 0
    assert svc.calls.pool.in_use == frozenset()
    assert svc.server.dialogs == {}
    for port in ports:
        assert port_is_free(port), f"RTP port {port} still bound"


def task_names() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()}


def sip_tasks() -> set[str]:
    return {n for n in task_names() if n.startswith(("sip", "rtp"))}


async def test_plain_call_carries_g711_audio(tmp_path: Path) -> None:
    write_ulaw_wav(tmp_path / "speech.wav", 4.0)
    async with running_service() as svc:
        ports: list[int] = []

        async def watch_ports() -> None:
            await wait_for(lambda: len(svc.sink.calls) == 1)
            ports.extend(svc.calls.participants(next(iter(svc.sink.calls))).values())

        watcher = asyncio.create_task(watch_ports())
        code, errors = await run_sipp(scen.plain_call("speech.wav", 2500), tmp_path, svc.port)
        await watcher
        assert code == 0, errors
        (call_id,) = svc.sink.calls
        info = svc.sink.calls[call_id]
        assert info.ingress is Ingress.SIP and info.line == "+15551230000"
        assert svc.sink.participants[(call_id, "caller")].label == "Alice Tester"
        await wait_for(lambda: call_id in svc.sink.closed)
        assert svc.sink.closed[call_id] == "bye"
        frames = svc.sink.frames_of(call_id, "caller")
        assert len(frames) >= 75, len(frames)  # >= 1.5 s of 2.5 s of 20 ms frames
        assert max(silence_check(f.pcm) for f in frames) > 500  # real audio, not fill
        assert [f.seq for f in frames] == list(range(len(frames)))
        assert svc.counter("clonewatch_sip_responses_total", method="INVITE", code="200") == 1
        assert svc.counter("clonewatch_sip_requests_total", method="BYE") == 1
        assert_released(svc, ports)
        await wait_for(lambda: not sip_tasks(), 3.0)


async def test_siprec_call_two_labelled_streams(tmp_path: Path) -> None:
    senders = [udp_socket(), udp_socket()]
    src_ports = (senders[0].getsockname()[1], senders[1].getsockname()[1])
    async with running_service() as svc:

        async def talk() -> list[int]:
            await wait_for(lambda: len(svc.sink.participants) == 2)
            (call_id,) = svc.sink.calls
            ours = svc.calls.participants(call_id)
            await asyncio.gather(
                send_rtp(senders[0], ours["96"], rtp_packets(111, 0, 1.5, seed=1)),
                send_rtp(senders[1], ours["97"], rtp_packets(222, 8, 1.5, seed=2)),
            )
            return list(ours.values())

        talker = asyncio.create_task(talk())
        sipp = run_sipp(scen.siprec_call(src_ports, METADATA, 2500), tmp_path, svc.port)
        code, errors = await sipp
        ports = await talker
        for sock in senders:
            sock.close()
        assert code == 0, errors
        (call_id,) = svc.sink.calls
        assert svc.sink.calls[call_id].ingress is Ingress.SIPREC
        assert svc.sink.calls[call_id].line == "+15551110000"
        assert svc.sink.participants[(call_id, "96")].label == "Alice Caller"
        assert svc.sink.participants[(call_id, "97")].label == "sip:bob@example.com"
        await wait_for(lambda: call_id in svc.sink.closed)
        assert svc.sink.closed[call_id] == "bye"
        for pid in ("96", "97"):
            assert len(svc.sink.frames_of(call_id, pid)) >= 50, pid
        assert_released(svc, ports)
