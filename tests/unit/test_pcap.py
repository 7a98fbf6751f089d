"""Replay of pcap/pcapng captures: SIP calls found, RTP paired, reordered and decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.types import AudioFrame
from streamer.errors import AudioFileError
from streamer.g711 import alaw_decode, alaw_encode, ulaw_decode
from streamer.pcap_rtp import decode_stream
from streamer.replay import open_source, replay_source
from streamer.rtp import RtpPacket
from tests.fakes.sinks import FakeFrameSink
from tests.pcapwriter import (
    Packet,
    dialog_headers,
    rtp_stream,
    sdp,
    sip,
    tone8k,
    write_pcap,
    write_pcapng,
)

pytestmark = pytest.mark.unit

CALLER = ("10.0.0.1", 5060)
CALLEE = ("10.0.0.2", 5060)


def dominant_hz(frames: list[AudioFrame]) -> float:
    pcm = np.frombuffer(b"".join(f.pcm for f in frames), "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / 16000)[int(np.argmax(spectrum))])


def call_packets(
    call_id: str,
    t0: float,
    caller_hz: float = 400,
    callee_hz: float = 1000,
    callee_pt: int = 0,
    seconds: float = 1.0,
) -> list[Packet]:
    """One SIP call: INVITE (PCMU+PCMA offer), 200 (answer), ACK, RTP both ways, BYE."""
    offer = sdp("10.0.0.1", 40000, [0, 8, 101])
    answer = sdp("10.0.0.2", 30000, [8, 101] if callee_pt != 18 else [8, 18])
    invite = sip("INVITE sip:bob@10.0.0.2 SIP/2.0", dialog_headers(call_id, "1 INVITE"), offer)
    ok = sip("SIP/2.0 200 OK", dialog_headers(call_id, "1 INVITE", to_tag="b2"), answer)
    ack = sip("ACK sip:bob@10.0.0.2 SIP/2.0", dialog_headers(call_id, "1 ACK", to_tag="b2"))
    bye = sip("BYE sip:bob@10.0.0.2 SIP/2.0", dialog_headers(call_id, "2 BYE", to_tag="b2"))
    media_t0 = t0 + 0.2
    caller_rtp = rtp_stream(
        tone8k(caller_hz, seconds), 8, ("10.0.0.1", 40000), ("10.0.0.2", 30000), media_t0
    )
    callee_rtp = rtp_stream(
        tone8k(callee_hz, seconds),
        callee_pt,
        ("10.0.0.2", 30000),
        ("10.0.0.1", 40000),
        media_t0 + 0.005,
        ssrc=0x9999,
    )
    # reorder two caller packets, duplicate one, lose one callee packet
    caller_rtp[5], caller_rtp[6] = caller_rtp[6], caller_rtp[5]
    caller_rtp.insert(10, caller_rtp[9])
    del callee_rtp[20]
    media = sorted(caller_rtp + callee_rtp, key=lambda p: p.ts_s)
    end = media_t0 + seconds + 0.1
    return [
        Packet(t0, CALLER, CALLEE, invite),
        Packet(t0 + 0.1, CALLEE, CALLER, ok),
        Packet(t0 + 0.15, CALLER, CALLEE, ack),
        *media,
        Packet(end, CALLER, CALLEE, bye),
    ]


async def replay(path: Path) -> FakeFrameSink:
    sink = FakeFrameSink()
    await replay_source(open_source(path), sink, realtime=False)
    return sink


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng], ids=["pcap", "pcapng"])
async def test_capture_call_becomes_caller_and_callee(tmp_path: Path, writer: object) -> None:
    path = tmp_path / "call.cap"
    assert callable(writer)
    writer(path, call_packets("call-one@host", 1000.0))
    sink = await replay(path)
    assert list(sink.calls) == ["call-one@host"]
    assert sink.calls["call-one@host"].ingress == "replay"
    labels = {pid: p.label for (_, pid), p in sink.participants.items()}
    assert labels == {"caller": "Alice", "callee": "Bob"}
    caller = sink.frames_of("call-one@host", "caller")
    callee = sink.frames_of("call-one@host", "callee")
    assert len(caller) == 50
    assert len(callee) == 50  # the lost packet is silence, not a shift
    assert [f.seq for f in caller] == list(range(50))
    assert abs(dominant_hz(caller) - 400) < 20
    assert abs(dominant_hz(callee) - 1000) < 20
    energy = [np.abs(np.frombuffer(f.pcm, "<i2")).mean() for f in callee]
    assert energy[20] < 0.3 * np.median(energy)  # packet 20 was lost
    assert sink.closed == {"call-one@host": "eof"}


async def test_many_calls_in_one_capture_reusing_ports(tmp_path: Path) -> None:
    path = tmp_path / "two.pcap"
    first = call_packets("first@host", 1000.0, caller_hz=300, callee_hz=700)
    second = call_packets("second@host", 1005.0, caller_hz=1500, callee_hz=2500)
    write_pcap(path, first + second)
    source = open_source(path)
    assert [c.info.call_id for c in source.calls] == ["first@host", "second@host"]
    assert source.calls[1].offset_s == pytest.approx(5.0, abs=0.01)
    sink = await replay(path)
    assert abs(dominant_hz(sink.frames_of("first@host", "caller")) - 300) < 20
    assert abs(dominant_hz(sink.frames_of("first@host", "callee")) - 700) < 20
    assert abs(dominant_hz(sink.frames_of("second@host", "caller")) - 1500) < 20
    assert abs(dominant_hz(sink.frames_of("second@host", "callee")) - 2500) < 20
    assert len(sink.frames_of("second@host", "caller")) == 50


async def test_unsupported_codec_is_an_error_for_that_stream_only(tmp_path: Path) -> None:
    path = tmp_path / "g729.pcap"
    write_pcap(path, call_packets("g729@host", 1000.0, callee_pt=18))
    sink = FakeFrameSink()
    with pytest.raises(
        AudioFileError,
        match=r"g729.pcap: call g729@host participant callee: "
        r"unsupported codec G729",
    ):
        await replay_source(open_source(path), sink, realtime=False)
    assert len(sink.frames_of("g729@host", "caller")) == 50
    assert sink.frames_of("g729@host", "callee") == []
    assert sink.closed == {"g729@host": "error"}


async def test_fragmented_invite_is_reassembled(tmp_path: Path) -> None:
    path = tmp_path / "frag.pcap"
    packets = call_packets("frag@host", 1000.0)
    write_pcap(path, packets, mtu_payload=200)  # every SIP message spans fragments
    sink = await replay(path)
    assert len(sink.frames_of("frag@host", "caller")) == 50


async def test_siprec_capture_names_streams_by_label_and_metadata(tmp_path: Path) -> None:
    call_id = "rec@src"
    offer_sdp = (
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n"
        "m=audio 40002 RTP/AVP 0\r\na=label:2\r\na=sendonly\r\n"
    )
    metadata = (
        '<?xml version="1.0"?><recording xmlns="urn:ietf:params:xml:ns:recording:1">'
        '<participant participant_id="p1"><nameID aor="sip:alice@x"><name>Alice</name></nameID>'
        '</participant><participant participant_id="p2"><nameID aor="sip:bob@x">'
        "<name>Bob</name></nameID></participant>"
        '<stream stream_id="s1"><label>1</label></stream><stream stream_id="s2"><label>2</label>'
        '</stream><participantstreamassoc participant_id="p1"><send>s1</send>'
        '</participantstreamassoc><participantstreamassoc participant_id="p2"><send>s2</send>'
        "</participantstreamassoc></recording>"
    )
    body = (
        f"--xx\r\nContent-Type: application/sdp\r\n\r\n{offer_sdp}\r\n"
        f"--xx\r\nContent-Type: application/rs-metadata+xml\r\n\r\n{metadata}\r\n--xx--\r\n"
    )
    answer = (
        "v=0\r\no=- 2 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
        "m=audio 30000 RTP/AVP 0\r\na=label:1\r\na=recvonly\r\n"
        "m=audio 30002 RTP/AVP 0\r\na=label:2\r\na=recvonly\r\n"
    )
    headers = dialog_headers(call_id, "1 INVITE")
    invite = sip("INVITE sip:srs@10.0.0.2 SIP/2.0", headers, body, 'multipart/mixed;boundary="xx"')
    ok = sip("SIP/2.0 200 OK", dialog_headers(call_id, "1 INVITE", to_tag="t"), answer)
    rtp1 = rtp_stream(tone8k(500, 1.0), 0, ("10.0.0.1", 40000), ("10.0.0.2", 30000), 1.0)
    rtp2 = rtp_stream(tone8k(900, 1.0), 0, ("10.0.0.1", 40002), ("10.0.0.2", 30002), 1.0, 7)
    path = tmp_path / "siprec.pcapng"
    write_pcapng(
        path,
        [Packet(0.5, CALLER, CALLEE, invite), Packet(0.6, CALLEE, CALLER, ok), *rtp1, *rtp2],
    )
    sink = await replay(path)
    labels = {pid: p.label for (_, pid), p in sink.participants.items()}
    assert labels == {"1": "Alice", "2": "Bob"}
    assert abs(dominant_hz(sink.frames_of(call_id, "1")) - 500) < 20
    assert abs(dominant_hz(sink.frames_of(call_id, "2")) - 900) < 20


def test_capture_without_sip_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rtp-only.pcap"
    write_pcap(path, rtp_stream(tone8k(400, 0.2), 0, ("10.0.0.1", 1), ("10.0.0.2", 2), 0.0))
    with pytest.raises(AudioFileError, match="rtp-only.pcap: no SIP call with SDP"):
        open_source(path)


def test_corrupt_capture_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.pcap"
    write_pcap(path, call_packets("x@y", 0.0))
    data = bytearray(path.read_bytes())
    data[24 + 8 : 24 + 12] = (0x7FFFFFFF).to_bytes(4, "little")  # absurd record length
    path.write_bytes(bytes(data))
    with pytest.raises(AudioFileError, match="bad.pcap: corrupt record"):
        open_source(path)


async def test_capture_cut_off_mid_record_keeps_earlier_packets(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    write_pcap(path, call_packets("cut@host", 0.0))
    path.write_bytes(path.read_bytes()[:-30])
    sink = await replay(path)
    assert len(sink.frames_of("cut@host", "caller")) == 50


def test_decode_stream_reorders_dedupes_and_fills_gaps() -> None:
    pcm = (np.arange(800) * 37 % 20000 - 10000).astype(np.int16)
    packets = [
        RtpPacket(
            8, (65534 + i) & 0xFFFF, 5000 + 160 * i, 1, alaw_encode(pcm[i * 160 : i * 160 + 160])
        )
        for i in range(5)
    ]
    shuffled = [packets[1], packets[0], packets[0], packets[4], packets[3]]  # 2 is lost
    track, unsupported = decode_stream(
        [(i * 0.02, p) for i, p in enumerate(shuffled)], {8: "PCMA"}, {"PCMA": alaw_decode}
    )
    expected = alaw_decode(alaw_encode(pcm))
    expected[320:480] = 0
    assert unsupported == set()
    np.testing.assert_array_equal(track, expected)


def test_decode_stream_skips_comfort_noise_and_reports_unknown_codecs() -> None:
    silence = bytes([0xFF]) * 160
    packets = [
        (0.0, RtpPacket(0, 1, 0, 1, silence)),
        (0.02, RtpPacket(13, 2, 160, 1, b"\x40")),
        (0.04, RtpPacket(0, 3, 320, 1, silence)),
        (0.06, RtpPacket(97, 4, 480, 1, b"opus")),
    ]
    track, unsupported = decode_stream(packets, {97: "OPUS"}, {"PCMU": ulaw_decode})
    assert len(track) == 480
    assert unsupported == {"OPUS"}
