"""A SipServer + CallManager on loopback with a FakeFrameSink, and sipp/RTP helpers."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from alerts.metrics import Metrics
from streamer.calls import CallManager
from streamer.config import RtpConfig, SipConfig
from streamer.g711 import alaw_encode, ulaw_encode
from streamer.sip import SipServer
from tests.fakes.audio import speech_like
from tests.fakes.sinks import FakeFrameSink
from tests.integration.service import free_port, free_port_range

SIPP = "/usr/bin/sipp"


@dataclass
class Service:
    server: SipServer
    calls: CallManager
    sink: FakeFrameSink
    metrics: Metrics

    @property
    def port(self) -> int:
        return self.server.udp_port

    def counter(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@asynccontextmanager
async def running_service(
    t1_s: float = 0.5, sink: FakeFrameSink | None = None, **sip: object
) -> AsyncIterator[Service]:
    port_min, port_max = free_port_range()
    sip_config = SipConfig.model_validate({"host": "127.0.0.1", "port": 0, **sip})
    rtp_config = RtpConfig(port_min=port_min, port_max=port_max, jitter_packets=8)
    metrics = Metrics()
    sink = sink if sink is not None else FakeFrameSink()
    calls = CallManager(sip_config, rtp_config, sink, metrics)
    server = SipServer(sip_config, calls, metrics, timer_t1_s=t1_s)
    await server.start()
    try:
        yield Service(server, calls, sink, metrics)
    finally:
        await server.aclose()
        await calls.aclose()


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll `predicate` until true (bounded), failing the test on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def write_ulaw_wav(path: Path, duration_s: float, seed: int = 0) -> None:
    """A speech-like signal as an 8 kHz mu-law WAV, the format sipp's rtp_stream plays."""
    pcm = speech_like(duration_s, 8000, seed=seed)
    sf.write(path, pcm, 8000, subtype="ULAW", format="WAV")


async def run_sipp(
    scenario: str, tmp_path: Path, port: int, *extra: str, transport: str = "u1"
) -> tuple[int, str]:
    """Run one sipp scenario against 127.0.0.1:port; returns (exit code, its messages)."""
    scen = tmp_path / f"scen{random.randrange(1 << 30)}.xml"
    scen.write_text(scenario)
    rtp_base, _ = free_port_range(4)  # sipp binds audio and video RTP and RTCP from here
    args = [
        f"127.0.0.1:{port}", "-sf", str(scen), "-i", "127.0.0.1", "-t", transport,
        "-m", "1", "-timeout", "20s", "-timeout_error", "-nostdin",
        "-mi", "127.0.0.1", "-mp", str(rtp_base), "-p", str(free_port()),
        "-trace_err", "-error_file", str(scen) + ".err",
        *extra,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        SIPP, *args, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    errors = await asyncio.to_thread(_read_if_exists, Path(str(scen) + ".err"))
    return proc.returncode or 0, stderr.decode(errors="replace") + errors


def _read_if_exists(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def rtp_packets(ssrc: int, pt: int, seconds: float, seed: int) -> list[bytes]:
    """G.711 RTP packets (20 ms each, PT 0 mu-law or 8 A-law) of a speech-like signal."""
    pcm = speech_like(seconds, 8000, seed=seed)
    encode = alaw_encode if pt == 8 else ulaw_encode
    packets = []
    for i in range(len(pcm) // 160):
        header = struct.pack("!BBHII", 0x80, pt, i & 0xFFFF, i * 160, ssrc)
        packets.append(header + encode(pcm[i * 160 : (i + 1) * 160]))
    return packets


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def send_rtp(sock: socket.socket, port: int, packets: list[bytes]) -> None:
    """Send packets to 127.0.0.1:port paced at 20 ms."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, packet in enumerate(packets):
        sock.sendto(packet, ("127.0.0.1", port))
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))


def answer_ports(sdp: str) -> list[int]:
    return [int(line.split()[1]) for line in sdp.splitlines() if line.startswith("m=audio")]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def silence_check(pcm: bytes) -> float:
    return float(np.abs(np.frombuffer(pcm, dtype=np.int16)).mean())


PCMU_SDP = (
    "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n"
)


def invite(call_id: str, sdp: str, *, transport: str = "UDP", content_length: bool = True) -> bytes:
    """A raw INVITE from a Python peer (port 9 in Via: responses go to the source)."""
    lines = [
        "INVITE sip:+15550001111@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{random.randrange(1 << 40)};rport",
        "From: <sip:py@127.0.0.1>;tag=py1",
        "To: <sip:+15550001111@127.0.0.1>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        "Contact: <sip:py@127.0.0.1:9>",
        "Max-Forwards: 70",
        "Content-Type: application/sdp",
    ]
    if content_length:
        lines.append(f"Content-Length: {len(sdp)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + sdp).encode()


async def sip_exchange(port: int, data: bytes, *, timeout_s: float = 2.0) -> str:
    """Send one datagram; return the first non-100 response (or "" on timeout)."""
    loop = asyncio.get_running_loop()
    sock = udp_socket()
    try:
        sock.sendto(data, ("127.0.0.1", port))
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            try:
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65536), deadline - loop.time())
            except TimeoutError:
                break
            text = reply.decode(errors="replace")
            if not text.startswith("SIP/2.0 100 "):
                return text
        return ""
    finally:
        sock.close()


async def tcp_exchange(port: int, data: bytes, *, timeout_s: float = 2.0) -> tuple[str, bool]:
    """Send bytes over TCP; return (what came back, whether the server closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks: list[bytes] = []
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), timeout_s)
                if not chunk:
                    return b"".join(chunks).decode(errors="replace"), True
                chunks.append(chunk)
        except TimeoutError:
            return b"".join(chunks).decode(errors="replace"), False
    finally:
        writer.close()
