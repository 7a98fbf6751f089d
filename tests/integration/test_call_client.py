"""`clonewatch call` against real UDP peers on loopback: a scripted UAS and sipp."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from streamer.call_client import CallFailed, CallOptions, SipCall
from streamer.call_offer import load_recording
from streamer.call_transaction import TransactionFailed
from streamer.g711 import ulaw_decode
from streamer.rtp import parse_rtp
from streamer.sdp import parse_sdp
from streamer.sip_message import SipMessage, parse_message
from streamer.siprec import find_part, parse_metadata, split_multipart
from tests.integration.service import free_port, free_port_range

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


@dataclass
class RtpSink(asyncio.DatagramProtocol):
    packets: list[tuple[float, bytes]] = field(default_factory=list)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.packets.append((time.monotonic(), data))


class Uas(asyncio.DatagramProtocol):
    """A scripted user agent server: answers INVITE with `status`, one RTP port per m-line."""

    def __init__(
        self, status: int = 200, hang_up_after_s: float | None = None, refuse: bool = False
    ) -> None:
        self.status = status
        self.refuse = refuse
        self.acked = asyncio.Event()
        self.transports: list[asyncio.BaseTransport] = []
        self.hang_up_after_s = hang_up_after_s
        self.requests: list[SipMessage] = []
        self.sinks: list[RtpSink] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.bye = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        msg = parse_message(data)
        self.requests.append(msg)
        assert isinstance(addr[0], str)
        peer = (addr[0], addr[1])
        if msg.method == "INVITE":
            task = asyncio.get_running_loop().create_task(self.answer(msg, peer))
            self.tasks.add(task)
        elif msg.method == "ACK":
            self.acked.set()
        elif msg.method == "BYE":
            self.reply(msg, peer, 200, "OK")
            self.bye.set()

    def reply(
        self, req: SipMessage, peer: tuple[str, int], status: int, reason: str, body: str = ""
    ) -> None:
        resp = SipMessage(status=status, reason=reason)
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            value = req.header(name) or ""
            if name == "To" and status > 100:
                value += ";tag=uas1"
            resp.headers.append((name, value))
        resp.headers.append(("Contact", f"<sip:uas@{HOST}:{self.port}>"))
        if body:
            resp.headers.append(("Content-Type", "application/sdp"))
            resp.body = body.encode()
        assert self.transport is not None
        self.transport.sendto(resp.to_bytes(), peer)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def answer(self, invite: SipMessage, peer: tuple[str, int]) -> None:
        self.reply(invite, peer, 100, "Trying")
        if self.status != 200:
            self.reply(invite, peer, self.status, "Busy Here")
            return
        body = invite.body
        content_type = invite.header("Content-Type") or ""
        if content_type.startswith("multipart/"):
            body = find_part(split_multipart(content_type, body), "application/sdp") or b""
        offer = parse_sdp(body)
        loop = asyncio.get_running_loop()
        lines = ["v=0", f"o=uas 1 1 IN IP4 {HOST}", "s=-", f"c=IN IP4 {HOST}", "t=0 0"]
        for _media in offer.media:
            transport, sink = await loop.create_datagram_endpoint(RtpSink, local_addr=(HOST, 0))
            self.sinks.append(sink)
            self.transports.append(transport)
            port = 0 if self.refuse else transport.get_extra_info("sockname")[1]
            lines += [f"m=audio {port} RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=recvonly"]
        self.reply(invite, peer, 200, "OK", "\r\n".join(lines) + "\r\n")
        if self.hang_up_after_s is not None:
            await asyncio.sleep(self.hang_up_after_s)
            bye = SipMessage(
                method="BYE",
                uri="sip:x@" + HOST,
                headers=[
                    ("Via", f"SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bKuasbye"),
                    ("From", (invite.header("To") or "") + ";tag=uas1"),
                    ("To", invite.header("From") or ""),
                    ("Call-ID", invite.call_id),
                    ("CSeq", "1 BYE"),
                ],
            )
            assert self.transport is not None
            self.transport.sendto(bye.to_bytes(), peer)

    def close(self) -> None:
        for transport in [self.transport, *self.transports]:
            if transport is not None:
                transport.close()
        for task in self.tasks:
            task.cancel()


@pytest.fixture
async def uas_factory() -> AsyncIterator[Callable[..., Awaitable[tuple[Uas, tuple[str, int]]]]]:
    started: list[Uas] = []

    async def start(**kwargs: Any) -> tuple[Uas, tuple[str, int]]:
        uas = Uas(**kwargs)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: uas, local_addr=(HOST, 0)
        )
        uas.transport = transport
        started.append(uas)
        return uas, (HOST, uas.port)

    yield start
    for uas in started:
        uas.close()
    await asyncio.sleep(0)  # let the transports finish closing


def write_stereo(path: Path, seconds: float = 1.0) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    left, right = 0.4 * np.sin(2 * np.pi * 500 * t), 0.4 * np.sin(2 * np.pi * 1500 * t)
    sf.write(path, np.stack([left, right], axis=1), 16000)


def dominant_hz(payloads: list[bytes]) -> float:
    pcm = ulaw_decode(b"".join(payloads)).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / 8000)[int(np.argmax(spectrum))])


async def test_sip_call_streams_paced_g711_and_hangs_up(tmp_path: Path, uas_factory: Any) -> None:
    path = tmp_path / "call.wav"
    sf.write(path, 0.4 * np.sin(2 * np.pi * 600 * np.arange(16000) / 16000), 16000)
    uas, target = await uas_factory()
    printed: list[str] = []
    call = SipCall(CallOptions(target), load_recording(path))
    result = await call.run(printed.append)
    assert printed == [result.call_id]
    assert result.packets_sent == 50 and result.streams == 1 and result.ended_by == "local"
    methods = [r.method for r in uas.requests]
    assert methods == ["INVITE", "ACK", "BYE"]
    invite = uas.requests[0]
    assert invite.call_id == result.call_id
    offer = parse_sdp(invite.body)
    assert set(offer.media[0].codecs().values()) >= {"PCMU", "PCMA"}
    packets = [(t, parse_rtp(data)) for t, data in uas.sinks[0].packets]
    assert len(packets) == 50
    seqs = [p.sequence_number for _, p in packets]
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == list(range(50))
    assert [(p.timestamp - packets[0][1].timestamp) & 0xFFFFFFFF for _, p in packets] == [
        160 * i for i in range(50)
    ]
    assert packets[0][1].marker and not packets[1][1].marker
    assert {p.payload_type for _, p in packets} == {0}
    spread = packets[-1][0] - packets[0][0]
    assert 0.9 <= spread < 1.5  # paced at 20 ms, not sent in a burst
    assert abs(dominant_hz([p.payload for _, p in packets]) - 600) < 20


async def test_siprec_call_sends_one_labelled_stream_per_channel(
    tmp_path: Path, uas_factory: Any
) -> None:
    path = tmp_path / "stereo.wav"
    write_stereo(path, 0.5)
    uas, target = await uas_factory()
    result = await SipCall(CallOptions(target, siprec=True), load_recording(path)).run()
    assert result.streams == 2 and result.packets_sent == 50
    invite = uas.requests[0]
    assert invite.header("Require") == "siprec"
    parts = split_multipart(invite.header("Content-Type") or "", invite.body)
    offer = parse_sdp(find_part(parts, "application/sdp") or b"")
    assert [m.attribute("label") for m in offer.media] == ["1", "2"]
    assert [m.attribute("sendonly") for m in offer.media] == ["", ""]
    metadata = parse_metadata(find_part(parts, "application/rs-metadata+xml") or b"")
    assert {label: p.name for label, p in metadata.stream_sender.items()} == {
        "1": "channel 1",
        "2": "channel 2",
    }
    tones = [dominant_hz([parse_rtp(d).payload for _, d in sink.packets]) for sink in uas.sinks]
    assert abs(tones[0] - 500) < 20 and abs(tones[1] - 1500) < 20


async def test_rejected_call_fails_with_the_status_and_acks(
    tmp_path: Path, uas_factory: Any
) -> None:
    path = tmp_path / "call.wav"
    write_stereo(path, 0.2)
    uas, target = await uas_factory(status=486)
    with pytest.raises(TransactionFailed, match="call rejected: 486 Busy Here"):
        await SipCall(CallOptions(target), load_recording(path)).run()
    await asyncio.wait_for(uas.acked.wait(), 2.0)
    assert [r.method for r in uas.requests] == ["INVITE", "ACK"]


async def test_unanswered_call_times_out_after_retransmitting(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    write_stereo(path, 0.2)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((HOST, 0))
    silent.setblocking(False)
    try:
        options = CallOptions(silent.getsockname(), answer_timeout_s=1.2)
        with pytest.raises(TransactionFailed, match="no answer"):
            await SipCall(options, load_recording(path)).run()
        invites = 0
        while True:
            try:
                invites += silent.recv(65535).startswith(b"INVITE")
            except BlockingIOError:
                break
        assert invites >= 2  # Timer A: sent at 0 and 0.5 s
    finally:
        silent.close()


async def test_far_end_bye_ends_the_call_early(tmp_path: Path, uas_factory: Any) -> None:
    path = tmp_path / "long.wav"
    write_stereo(path, 5.0)
    uas, target = await uas_factory(hang_up_after_s=0.3)
    start = time.monotonic()
    result = await SipCall(CallOptions(target), load_recording(path)).run()
    assert result.ended_by == "remote"
    assert time.monotonic() - start < 2.0
    assert result.packets_sent < 100


async def test_answer_refusing_every_stream_is_a_call_failure(
    tmp_path: Path, uas_factory: Any
) -> None:
    path = tmp_path / "call.wav"
    write_stereo(path, 0.2)
    uas, target = await uas_factory(refuse=True)
    with pytest.raises(CallFailed, match="refused every audio stream"):
        await SipCall(CallOptions(target), load_recording(path)).run()


async def test_call_against_sipp_uas(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    write_stereo(path, 0.5)
    port = free_port()
    sipp = await asyncio.create_subprocess_exec(
        "sipp",
        "-sn",
        "uas",
        "-i",
        HOST,
        "-p",
        str(port),
        "-m",
        "1",
        "-mp",
        str(free_port_range(4)[0]),
        "-timeout",
        "20",
        "-nostdin",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        # no wait for sipp to bind: INVITE retransmissions (Timer A) cover a slow start
        result = await SipCall(CallOptions((HOST, port)), load_recording(path)).run()
        assert result.ended_by == "local" and result.packets_sent == 25
        code = await asyncio.wait_for(sipp.wait(), 20)
        assert code == 0  # sipp counts the call successful: INVITE, ACK, BYE as it expects
    finally:
        if sipp.returncode is None:
            sipp.kill()
            await sipp.wait()
