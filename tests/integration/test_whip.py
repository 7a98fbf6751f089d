"""WHIP ingress with real aiortc peers over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest
from aiohttp import ClientSession, web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from alerts.metrics import Metrics
from streamer.config import WhipConfig
from streamer.webrtc import WhipIngress
from tests.fakes.audio import speech_like
from tests.fakes.sinks import FakeFrameSink
from tests.turn_server import TurnServer, run_turn_server

pytestmark = pytest.mark.integration

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sdp"}
RATE = 48000
PTIME_S = 0.02


class SpeechTrack(MediaStreamTrack):
    """Sends a generated speech-like signal at 48 kHz, paced in real time like a microphone."""

    kind = "audio"

    def __init__(self, seconds: float = 30.0) -> None:
        super().__init__()
        self.samples = speech_like(seconds, RATE)
        self.pos = 0
        self.start = 0.0

    async def recv(self) -> av.AudioFrame:
        n = int(RATE * PTIME_S)
        if self.start == 0.0:
            self.start = time.monotonic()
        due = self.start + self.pos / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        chunk = self.samples[self.pos : self.pos + n]
        if len(chunk) < n:
            chunk = np.zeros(n, np.int16)
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.pos
        frame.time_base = fractions.Fraction(1, RATE)
        self.pos += n
        return frame


@pytest.fixture
async def whip() -> AsyncIterator[tuple[WhipIngress, FakeFrameSink, str]]:
    config = WhipConfig(tokens=(TOKEN,), max_sessions=20, media_timeout_s=3.0)
    async with serve_whip(config) as served:
        yield served


@contextlib.asynccontextmanager
async def serve_whip(config: WhipConfig) -> AsyncIterator[tuple[WhipIngress, FakeFrameSink, str]]:
    """A WHIP ingress on a loopback HTTP port, frames into a fake sink."""
    sink = FakeFrameSink()
    ingress = WhipIngress(config, sink, Metrics())
    app = web.Application()
    app.add_routes(ingress.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield ingress, sink, f"http://127.0.0.1:{port}"
    await ingress.aclose()
    await runner.cleanup()


async def _offer(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


async def _publish(http: ClientSession, base: str) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    pc.addTrack(SpeechTrack())
    async with http.post(f"{base}/whip", data=await _offer(pc), headers=AUTH) as resp:
        assert resp.status == 201, await resp.text()
        assert resp.content_type == "application/sdp"
        location = resp.headers["Location"]
        answer = await resp.text()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return pc, location


async def _until(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_publish_streams_audio_then_delete_ends_call(whip) -> None:  # type: ignore[no-untyped-def]
    ingress, sink, base = whip
    async with ClientSession() as http:
        pc, location = await _publish(http, base)
        call_id = next(iter(sink.calls))
        await _until(lambda: len(sink.frames) >= 100)  # two seconds of audio
        frames = sink.frames_of(call_id, "track0")
        assert [f.seq for f in frames] == list(range(len(frames)))
        pcm = np.frombuffer(b"".join(f.pcm for f in frames[-50:]), np.int16)
        assert np.abs(pcm).max() > 1000  # the speech arrived, not silence
        async with http.delete(base + location, headers=AUTH) as resp:
            assert resp.status == 200
        assert sink.closed == {call_id: "hangup"}
        async with http.delete(base + location, headers=AUTH) as resp:
            assert resp.status == 404
        await pc.close()
    assert ingress.sessions == {}


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Content-Type": "application/sdp"}, "v=0\r\n", 401),
        ({**AUTH, "Authorization": "Bearer wrong"}, "v=0\r\n", 401),
        ({**AUTH, "Content-Type": "text/plain"}, "v=0\r\n", 415),
        (AUTH, "not sdp at all", 400),
        (
            AUTH,
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            400,
        ),
        (AUTH, "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\ngarbage\r\n", 400),
    ],
)
async def test_bad_requests_get_whip_status_codes(whip, headers, body, status) -> None:  # type: ignore[no-untyped-def]
    ingress, sink, base = whip
    async with ClientSession() as http, http.post(f"{base}/whip", data=body, headers=headers) as r:
        assert r.status == status
    assert ingress.sessions == {}
    assert set(sink.calls) == set(sink.closed)  # any call opened was also ended


async def test_patch_is_refused_and_unknown_session_is_404(whip) -> None:  # type: ignore[no-untyped-def]
    _, _, base = whip
    async with ClientSession() as http:
        async with http.patch(f"{base}/whip/nope", headers=AUTH) as resp:
            assert resp.status == 404
        pc, location = await _publish(http, base)
        async with http.patch(base + location, headers=AUTH) as resp:
            assert resp.status == 405
        await pc.close()


async def test_ten_peers_then_all_closed_leave_nothing_behind(whip) -> None:  # type: ignore[no-untyped-def]
    ingress, sink, base = whip
    tasks_before = len(asyncio.all_tasks())
    sockets_before = _open_sockets()
    async with ClientSession() as http:
        peers = await asyncio.gather(*(_publish(http, base) for _ in range(10)))
        assert _open_sockets() > sockets_before + 10  # ICE transports of both sides
        await _until(lambda: len({f.call_id for f in sink.frames}) == 10, timeout_s=20.0)
        for pc, _ in peers:
            await pc.close()  # peers go away without DELETE: ICE/media loss must clean up
        await _until(lambda: len(sink.closed) == 10, timeout_s=15.0)
    assert ingress.sessions == {}
    assert set(sink.closed.values()) <= {"hangup", "ice-closed", "ice-failed", "media-timeout"}
    await _until(lambda: len(asyncio.all_tasks()) <= tasks_before, timeout_s=5.0)
    await _until(lambda: _open_sockets() <= sockets_before, timeout_s=5.0)  # no port left bound


def _open_sockets() -> int:
    """Sockets this process holds (ICE ports of the peer connections among them)."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if "socket:" in _readlink(fd))


def _readlink(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return ""


class StallingTrack(SpeechTrack):
    """Sends one second of speech, then stops sending without closing (a frozen client)."""

    async def recv(self) -> av.AudioFrame:
        if self.pos >= RATE:
            await asyncio.Event().wait()  # never resolves: no more media, no BYE
        return await super().recv()


async def test_peer_that_stops_sending_is_closed_after_the_media_timeout(whip) -> None:  # type: ignore[no-untyped-def]
    ingress, sink, base = whip
    pc = RTCPeerConnection()
    pc.addTrack(StallingTrack())
    async with ClientSession() as http:
        async with http.post(f"{base}/whip", data=await _offer(pc), headers=AUTH) as resp:
            assert resp.status == 201
            answer = await resp.text()
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await _until(lambda: len(sink.frames) >= 25)
        (call_id,) = sink.calls
        await _until(lambda: call_id in sink.closed, timeout_s=10.0)  # media_timeout_s = 3
    assert sink.closed[call_id] == "media-timeout"
    assert ingress.sessions == {}
    await pc.close()


def test_ice_servers_come_from_the_config() -> None:
    config = WhipConfig(
        tokens=(TOKEN,),
        stun_urls=("stun:stun.example.net:3478",),
        turn_urls=("turn:turn.example.net:3478?transport=udp",),
        turn_username="user",
        turn_password="secret",
    )
    servers = WhipIngress(config, FakeFrameSink(), Metrics())._ice_servers()
    assert [(s.urls, s.username, s.credential) for s in servers] == [
        ("stun:stun.example.net:3478", None, None),
        ("turn:turn.example.net:3478?transport=udp", "user", "secret"),
    ]


def _relay_ports(sdp: str) -> set[int]:
    """Ports of the relayed ICE candidates in an SDP (RFC 8839 candidate lines)."""
    fields = [line.split() for line in sdp.splitlines() if line.startswith("a=candidate:")]
    return {int(f[5]) for f in fields if f[6:8] == ["typ", "relay"]}


def _turn_config(turn: TurnServer, password: str) -> WhipConfig:
    return WhipConfig(
        tokens=(TOKEN,),
        turn_urls=(turn.url,),
        turn_username=turn.username,
        turn_password=password,
    )


async def test_answer_offers_a_relay_from_the_configured_turn_server(tmp_path: Path) -> None:
    async with (
        run_turn_server(tmp_path) as turn,
        serve_whip(_turn_config(turn, turn.password)) as (_, sink, base),
        ClientSession() as http,
    ):
        pc = RTCPeerConnection()
        pc.addTrack(SpeechTrack())
        async with http.post(f"{base}/whip", data=await _offer(pc), headers=AUTH) as resp:
            assert resp.status == 201
            answer = await resp.text()
        relays = _relay_ports(answer)
        assert relays and relays <= set(turn.relay_ports)  # allocated by coturn, authenticated
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await _until(lambda: len(sink.frames) >= 25)
        await pc.close()


async def test_wrong_turn_password_leaves_no_relay_but_the_call_works_and_is_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    wrong = "not-the-turn-password-9c2d"
    async with (
        run_turn_server(tmp_path) as turn,
        serve_whip(_turn_config(turn, wrong)) as (_, sink, base),
        ClientSession() as http,
    ):
        pc, _ = await _publish(http, base)
        assert pc.remoteDescription is not None
        assert _relay_ports(pc.remoteDescription.sdp) == set()
        await _until(lambda: len(sink.frames) >= 25)  # host candidates still connect
        await pc.close()
    assert wrong not in caplog.text
