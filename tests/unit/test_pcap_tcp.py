"""Capture replay of SIP over TCP (reassembled streams) and of re-INVITEs that move media."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from streamer.pcap_file import Segment
from streamer.pcap_tcp import sip_over_tcp
from streamer.replay import open_source
from tests.pcapwriter import (
    Packet,
    TcpSegment,
    dialog_headers,
    rtp_stream,
    sdp,
    sip,
    tcp_stream,
    tone8k,
    write_pcap,
    write_pcapng,
)
from tests.unit.test_pcap import CALLEE, CALLER, dominant_hz, replay

pytestmark = pytest.mark.unit

Writer = Callable[[Path, list[Packet | TcpSegment]], None]
CALLER_TCP = ("10.0.0.1", 45123)
CALLEE_TCP = ("10.0.0.2", 5060)


def tcp_call(call_id: str, t0: float) -> list[Packet | TcpSegment]:
    """A call signalled over one TCP connection; RTP over UDP both ways."""
    headers = dialog_headers(call_id, "1 INVITE")
    headers["Via"] = headers["Via"].replace("UDP", "TCP")
    invite = sip("INVITE sip:bob@10.0.0.2 SIP/2.0", headers, sdp("10.0.0.1", 40000, [0, 8]))
    ok = sip(
        "SIP/2.0 200 OK",
        {**headers, "To": '"Bob" <sip:bob@example.com>;tag=b2'},
        sdp("10.0.0.2", 30000, [0]),
    )
    ack = sip("ACK sip:bob@10.0.0.2 SIP/2.0", dialog_headers(call_id, "1 ACK", to_tag="b2"))
    bye = sip("BYE sip:bob@10.0.0.2 SIP/2.0", dialog_headers(call_id, "2 BYE", to_tag="b2"))
    outbound = tcp_stream(CALLER_TCP, CALLEE_TCP, [(t0, invite), (t0 + 0.15, ack + bye)], 120)
    inbound = tcp_stream(CALLEE_TCP, CALLER_TCP, [(t0 + 0.1, ok)], 200, isn=7)
    outbound[2], outbound[3] = outbound[3], outbound[2]  # reordered
    outbound.insert(5, outbound[4])  # retransmitted
    overlap = inbound[2]  # a retransmission overlapping the segment before it
    inbound.insert(3, TcpSegment(overlap.ts_s, overlap.src, overlap.dst, overlap.seq - 50,
                                 inbound[1].payload[-50:] + overlap.payload[:30]))  # fmt: skip
    media_t0 = t0 + 0.2
    rtp = rtp_stream(tone8k(400, 1.0), 0, ("10.0.0.1", 40000), ("10.0.0.2", 30000), media_t0)
    rtp += rtp_stream(
        tone8k(1000, 1.0), 0, ("10.0.0.2", 30000), ("10.0.0.1", 40000), media_t0, ssrc=9
    )
    return sorted([*outbound, *inbound, *rtp], key=lambda p: p.ts_s)


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng], ids=["pcap", "pcapng"])
async def test_sip_over_tcp_call_is_replayed(tmp_path: Path, writer: Writer) -> None:
    path = tmp_path / "tcp.cap"
    writer(path, tcp_call("tcp-call@host", 100.0))
    sink = await replay(path)
    assert list(sink.calls) == ["tcp-call@host"]
    labels = {pid: p.label for (_, pid), p in sink.participants.items()}
    assert labels == {"caller": "Alice", "callee": "Bob"}
    assert len(sink.frames_of("tcp-call@host", "caller")) == 50
    assert abs(dominant_hz(sink.frames_of("tcp-call@host", "caller")) - 400) < 20
    assert abs(dominant_hz(sink.frames_of("tcp-call@host", "callee")) - 1000) < 20


def segments(parts: list[tuple[int, bytes]], seq0: int = 1000) -> list[Segment]:
    a, b = ("10.0.0.1", 1), ("10.0.0.2", 2)
    return [Segment(float(i), a, b, seq0 + off, False, data) for i, (off, data) in enumerate(parts)]


def test_tcp_messages_framed_by_content_length_with_keepalives() -> None:
    m1 = sip("OPTIONS sip:x@y SIP/2.0", dialog_headers("c1", "1 OPTIONS"), "hello\r\n\r\nworld")
    m2 = sip("SIP/2.0 200 OK", dialog_headers("c1", "1 OPTIONS"))
    stream = m1 + b"\r\n\r\n" + m2  # a double-CRLF keep-alive between them
    cut = len(m1) - 3  # inside m1's body, which holds a CRLFCRLF of its own
    found = sip_over_tcp(segments([(0, stream[:cut]), (cut, stream[cut:])]))
    assert [d.payload for d in found] == [m1, m2]
    assert [d.ts_s for d in found] == [1.0, 1.0]  # m1 completed only by the 2nd segment


def test_tcp_hole_loses_one_message_and_resyncs_on_the_next() -> None:
    m1 = sip("INVITE sip:x@y SIP/2.0", dialog_headers("c1", "1 INVITE"), "v=0\r\n")
    m2 = sip("BYE sip:x@y SIP/2.0", dialog_headers("c1", "2 BYE"))
    m3 = sip("BYE sip:x@y SIP/2.0", dialog_headers("c1", "3 BYE"))
    stream = m1 + m2 + m3
    lost_from, lost_to = 40, 60  # inside m1's headers: m1 is gone, m2 and m3 are not
    parts = [(0, stream[:lost_from]), (lost_to, stream[lost_to : len(m1) + 10])]
    parts.append((len(m1) + 10, stream[len(m1) + 10 :]))
    found = sip_over_tcp(segments(parts, seq0=2**32 - 30))  # wraps, too
    assert [d.payload for d in found] == [m2, m3]


def test_tcp_garbage_yields_nothing() -> None:
    assert sip_over_tcp(segments([(0, b"\x16\x03\x01 TLS hello" * 20)])) == []


def reinvite_call(call_id: str) -> list[Packet]:
    """Both sides move their RTP port in a re-INVITE half-way through the call."""
    invite = sip("INVITE sip:bob@10.0.0.2 SIP/2.0", dialog_headers(call_id, "1 INVITE"),
                 sdp("10.0.0.1", 40000, [0]))  # fmt: skip
    ok = sip("SIP/2.0 200 OK", dialog_headers(call_id, "1 INVITE", to_tag="b2"),
             sdp("10.0.0.2", 30000, [0]))  # fmt: skip
    in_dialog = dialog_headers(call_id, "2 INVITE", to_tag="b2")
    reinvite = sip("INVITE sip:bob@10.0.0.2 SIP/2.0", in_dialog, sdp("10.0.0.1", 40100, [0]))
    ok2 = sip("SIP/2.0 200 OK", dialog_headers(call_id, "2 INVITE", to_tag="b2"),
              sdp("10.0.0.2", 30100, [8]))  # fmt: skip
    caller, callee = tone8k(500, 2.0), tone8k(1200, 2.0)
    half = 8000
    rtp = rtp_stream(caller[:half], 0, ("10.0.0.1", 40000), ("10.0.0.2", 30000), 1.0)
    rtp += rtp_stream(callee[:half], 0, ("10.0.0.2", 30000), ("10.0.0.1", 40000), 1.0, ssrc=5)
    # after the re-INVITE: new ports, new SSRCs, the callee now sends PCMA
    rtp += rtp_stream(caller[half:], 0, ("10.0.0.1", 40100), ("10.0.0.2", 30100), 2.1, ssrc=6)
    rtp += rtp_stream(callee[half:], 8, ("10.0.0.2", 30100), ("10.0.0.1", 40100), 2.1, ssrc=7)
    signalling = [
        Packet(0.9, CALLER, CALLEE, invite),
        Packet(0.95, CALLEE, CALLER, ok),
        Packet(2.05, CALLER, CALLEE, reinvite),
        Packet(2.08, CALLEE, CALLER, ok2),
    ]
    return sorted([*signalling, *rtp], key=lambda p: p.ts_s)


async def test_reinvite_moving_media_ports_mid_call(tmp_path: Path) -> None:
    path = tmp_path / "reinvite.pcapng"
    write_pcapng(path, reinvite_call("moved@host"))
    sink = await replay(path)
    assert set(sink.participants) == {("moved@host", "caller"), ("moved@host", "callee")}
    caller = sink.frames_of("moved@host", "caller")
    callee = sink.frames_of("moved@host", "callee")
    assert len(caller) >= 99 and len(callee) >= 99  # both halves of both sides
    for frames, hz in ((caller, 500), (callee, 1200)):
        assert abs(dominant_hz(frames[:45]) - hz) < 20
        assert abs(dominant_hz(frames[-45:]) - hz) < 20  # the half after the move


def test_capture_error_counts_tcp_messages(tmp_path: Path) -> None:
    path = tmp_path / "no-call.pcap"
    options = sip("OPTIONS sip:x@y SIP/2.0", dialog_headers("c9", "1 OPTIONS"))
    write_pcap(path, tcp_stream(CALLER_TCP, CALLEE_TCP, [(1.0, options)], 100))
    with pytest.raises(Exception, match="0 UDP datagrams and 1 SIP messages over TCP"):
        open_source(path)
