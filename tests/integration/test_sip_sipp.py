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
    PCMU_SDP,
    Service,
    invite,
    port_is_free,
    rtp_packets,
    run_sipp,
    running_service,
    send_rtp,
    silence_check,
    sip_exchange,
    tcp_exchange,
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


ONLY_BOB_SDP = PCMU_SDP + "a=label:97\r\na=sendonly\r\n"


def siprec_invite(call_id: str, sdp: str) -> bytes:
    """A raw SIPREC INVITE: multipart/mixed with `sdp` and METADATA."""
    body = (
        f"--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
        "--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n"
        f"{METADATA}\r\n--b--\r\n"
    )
    return invite(call_id, body).replace(
        b"Content-Type: application/sdp", b"Content-Type: multipart/mixed;boundary=b", 1
    )


async def test_siprec_ignored_participant_is_declined_and_not_scored(tmp_path: Path) -> None:
    sender = udp_socket()
    async with running_service(siprec_ignore_aors=["<sip:Bob@example.com>"]) as svc:

        async def talk() -> int:
            await wait_for(lambda: len(svc.sink.participants) == 1)
            (call_id,) = svc.sink.calls
            ours = svc.calls.participants(call_id)
            assert list(ours) == ["96"]
            await send_rtp(sender, ours["96"], rtp_packets(111, 0, 1.5, seed=1))
            return ours["96"]

        talker = asyncio.create_task(talk())
        # the answer declines Bob's stream (label 97, the second m-line) with port 0
        answer_has = r"m=audio [1-9][0-9]* RTP/AVP 0.*m=audio 0 RTP/AVP 8"
        scenario = scen.siprec_call((sender.getsockname()[1], 9), METADATA, 2500, answer_has)
        code, errors = await run_sipp(scenario, tmp_path, svc.port)
        port = await talker
        sender.close()
        assert code == 0, errors
        (call_id,) = svc.sink.calls
        assert list(svc.sink.participants) == [(call_id, "96")]
        assert svc.sink.participants[(call_id, "96")].label == "Alice Caller"
        await wait_for(lambda: call_id in svc.sink.closed)
        assert svc.sink.closed[call_id] == "bye"
        assert len(svc.sink.frames_of(call_id, "96")) >= 50
        assert_released(svc, [port])
        # a session that records only Bob is declined as a whole, and not as bad input
        reply = await sip_exchange(svc.port, siprec_invite("only-bob", ONLY_BOB_SDP))
        assert reply.startswith("SIP/2.0 488 "), reply[:80]
        assert "siprec_ignore_aors" in reply.splitlines()[0]
        labels = {"ingress": "siprec", "reason": "ignored"}
        assert svc.counter("clonewatch_calls_rejected_total", **labels) == 1
        assert svc.counter("clonewatch_decode_errors_total", stage="sdp") == 0
        assert svc.calls.active_calls == 0


async def test_cancel_before_answer(tmp_path: Path) -> None:
    async with running_service(answer_delay_ms=5000) as svc:
        code, errors = await run_sipp(scen.cancelled_call(), tmp_path, svc.port)
        assert code == 0, errors
        (call_id,) = svc.sink.calls
        await wait_for(lambda: call_id in svc.sink.closed)
        assert svc.sink.closed[call_id] == "cancel"
        assert svc.counter("clonewatch_sip_responses_total", method="INVITE", code="487") == 1
        assert svc.counter("clonewatch_sip_responses_total", method="CANCEL", code="200") == 1
        assert svc.counter("clonewatch_sip_responses_total", method="INVITE", code="200") == 0
        await wait_for(lambda: svc.calls.active_calls == 0 and not svc.server.dialogs)
        assert svc.calls.pool.in_use == frozenset()


async def test_silent_call_ends_on_rtp_timeout_with_our_bye(tmp_path: Path) -> None:
    async with running_service(rtp_timeout_s=1.0) as svc:
        code, errors = await run_sipp(scen.silent_call(), tmp_path, svc.port)
        assert code == 0, errors  # sipp received our BYE and answered it
        (call_id,) = svc.sink.calls
        await wait_for(lambda: call_id in svc.sink.closed)
        assert svc.sink.closed[call_id] == "rtp-timeout"
        assert svc.counter("clonewatch_sip_requests_total", method="BYE") == 1
        assert_released(svc, [])
        await wait_for(lambda: not sip_tasks(), 3.0)


async def test_several_calls_at_once(tmp_path: Path) -> None:
    write_ulaw_wav(tmp_path / "speech.wav", 4.0, seed=3)
    async with running_service() as svc:
        extra = ("-m", "4", "-l", "4", "-r", "20")
        scenario = scen.plain_call("speech.wav", 2000)
        code, errors = await run_sipp(scenario, tmp_path, svc.port, *extra)
        assert code == 0, errors
        assert len(svc.sink.calls) == 4
        await wait_for(lambda: len(svc.sink.closed) == 4)
        assert set(svc.sink.closed.values()) == {"bye"}
        for call_id in svc.sink.calls:
            assert len(svc.sink.frames_of(call_id, "caller")) >= 50, call_id
        assert_released(svc, [])


async def test_max_calls_answers_503_with_retry_after() -> None:
    async with running_service(max_calls=1, answer_delay_ms=5000, retry_after_s=7) as svc:
        first = invite("first", PCMU_SDP)
        assert (await sip_exchange(svc.port, first)).startswith("SIP/2.0 180 ")
        reply = await sip_exchange(svc.port, invite("over-limit", PCMU_SDP))
        assert reply.startswith("SIP/2.0 503 ")
        assert "Retry-After: 7" in reply
        assert svc.counter("clonewatch_calls_rejected_total", ingress="sip", reason="busy") == 1
        cancel = first.replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
        assert (await sip_exchange(svc.port, cancel)).startswith("SIP/2.0 200 ")
        await wait_for(lambda: svc.sink.closed.get("first") == "cancel")
        assert set(svc.sink.calls) == {"first"}


BAD_DATAGRAMS = [
    (b"INVITE sip:x@127.0.0.1 SIP/3.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKa\r\n"
     b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: bad1\r\nCSeq: 1 INVITE\r\n\r\n", "400"),
    (b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKb\r\n"
     b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: bad2\r\nCSeq: one INVITE\r\n"
     b"Content-Length: 0\r\n\r\n", "400"),
    (b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKc\r\n"
     b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: bad3\r\nCSeq: 1 INVITE\r\n"
     b"Broken header line\r\nContent-Length: 0\r\n\r\n", "400"),
    (invite("x" * 300, PCMU_SDP), "400"),
    (invite("noaudio", PCMU_SDP.replace("m=audio 40000 RTP/AVP 0", "m=video 40000 RTP/AVP 96")),
     "488"),
    (invite("g729", PCMU_SDP.replace("RTP/AVP 0", "RTP/AVP 18")), "488"),
    (invite("options", "").replace(b"INVITE", b"OPTIONS"), "200"),
    (invite("register", "").replace(b"INVITE", b"REGISTER"), "405"),
    (invite("foo", "").replace(b"INVITE", b"FOO"), "501"),
    (invite("bye-unknown", "").replace(b"INVITE", b"BYE").replace(b"py1", b"py1"), "481"),
]  # fmt: skip


async def test_bad_input_gets_clear_answers_and_spares_a_good_call(tmp_path: Path) -> None:
    write_ulaw_wav(tmp_path / "speech.wav", 5.0, seed=4)
    async with running_service(max_message_bytes=4096) as svc:
        good = asyncio.create_task(
            run_sipp(scen.plain_call("speech.wav", 3000), tmp_path, svc.port)
        )
        await wait_for(lambda: len(svc.sink.calls) == 1)
        (good_id,) = svc.sink.calls
        rtp_port = svc.calls.participants(good_id)["caller"]
        for data, code in BAD_DATAGRAMS:
            reply = await sip_exchange(svc.port, data)
            assert reply.startswith(f"SIP/2.0 {code} "), (data[:60], reply[:80])
        # nothing to answer: garbage, an oversized datagram, random bytes to RTP
        sizes_before = svc.server.oversized_total
        noise = os.urandom(3000)
        assert await sip_exchange(svc.port, noise, timeout_s=0.3) == ""
        assert await sip_exchange(svc.port, invite("big", "a" * 6000), timeout_s=0.3) == ""
        assert svc.server.oversized_total == sizes_before + 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
            for _ in range(20):
                rtp.sendto(os.urandom(172), ("127.0.0.1", rtp_port))
        # TCP without Content-Length: 400, and the connection is closed
        reply, closed = await tcp_exchange(
            svc.port, invite("tcp-nolen", PCMU_SDP, transport="TCP", content_length=False)
        )
        assert reply.startswith("SIP/2.0 400 Missing Content-Length"), reply[:80]
        assert closed
        good_code, errors = await good
        assert good_code == 0, errors
        await wait_for(lambda: good_id in svc.sink.closed)
        assert svc.sink.closed[good_id] == "bye"
        assert len(svc.sink.frames_of(good_id, "caller")) >= 100
        assert set(svc.sink.calls) == {good_id}  # no bad request opened a call
        assert svc.counter("clonewatch_decode_errors_total", stage="sip") >= 6
        assert svc.counter("clonewatch_calls_rejected_total", ingress="sip", reason="sdp") == 2
        assert_released(svc, [rtp_port])


async def test_tcp_call_and_options(tmp_path: Path) -> None:
    async with running_service() as svc:
        reply, closed = await tcp_exchange(
            svc.port, invite("opt-tcp", "", transport="TCP").replace(b"INVITE", b"OPTIONS"),
            timeout_s=0.5,
        )  # fmt: skip
        assert reply.startswith("SIP/2.0 200 OK") and not closed
        assert "transport=tcp" in reply
