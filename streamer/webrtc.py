"""WebRTC ingress over WHIP (RFC 9725), with aiortc.

    POST   /whip             SDP offer in, 201 Created + SDP answer + Location out
    DELETE /whip/{session}   ends the session (404 when unknown)
    PATCH  /whip/{session}   trickle ICE and ICE restarts are not supported: 405

Each WHIP session is one call (`ingress: webrtc`); each received audio track is one
participant. Opus arrives decoded by aiortc (48 kHz); PyAV's resampler brings it to the
model's 16 kHz mono, and the frame assembler cuts it into the 20 ms frames every ingress
delivers. No trickle ICE: aiortc gathers all host (and configured STUN/TURN) candidates
before the answer is sent, which WHIP clients accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import av
import numpy as np
from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from alerts.metrics import Metrics
from alerts.types import CallInfo, Ingress, ParticipantInfo
from inference.types import SAMPLE_RATE_HZ, FrameSink
from streamer.config import WhipConfig
from streamer.resample import FrameAssembler

logger = logging.getLogger(__name__)

WHIP_PATH = "/whip"
SDP_TYPE = "application/sdp"
MAX_OFFER_BYTES = 64 * 1024
CLOSE_TIMEOUT_S = 5.0

# A second way in besides bearer tokens (the console's logged-in session, for its test page).
RequestCheck = Callable[[web.Request], Awaitable[bool]]


@dataclass(eq=False)
class WhipSession:
    """One WHIP peer: its peer connection, reader tasks and call id."""

    session_id: str
    call_id: str
    pc: RTCPeerConnection
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    tracks: int = 0
    closing: bool = False


class WhipIngress:
    """Serves the WHIP resource and turns each received audio track into AudioFrames."""

    def __init__(
        self,
        config: WhipConfig,
        sink: FrameSink,
        metrics: Metrics,
        *,
        line: str = "whip",
        extra_auth: RequestCheck | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.metrics = metrics
        self.line = line
        self.extra_auth = extra_auth
        self.sessions: dict[str, WhipSession] = {}

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes of the WHIP endpoint and its session resources."""
        return [
            web.post(WHIP_PATH, self.handle_post),
            web.options(WHIP_PATH, self.handle_options),
            web.delete(WHIP_PATH + "/{session_id}", self.handle_delete),
            web.patch(WHIP_PATH + "/{session_id}", self.handle_patch),
        ]

    async def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            # Compare against every token so timing does not tell which one is close.
            matches = [hmac.compare_digest(token.encode(), t.encode()) for t in self.config.tokens]
            if any(matches):
                return True
        return self.extra_auth is not None and await self.extra_auth(request)

    async def _require_auth(self, request: web.Request) -> None:
        if not self.config.tokens and self.extra_auth is None:
            raise web.HTTPServiceUnavailable(text="WHIP is disabled: no tokens configured\n")
        if not await self._authorized(request):
            raise web.HTTPUnauthorized(
                text="missing or wrong bearer token\n",
                headers={"WWW-Authenticate": 'Bearer realm="clonewatch"'},
            )

    async def handle_options(self, request: web.Request) -> web.Response:
        """Advertise what the endpoint accepts."""
        return web.Response(status=204, headers={"Accept-Post": SDP_TYPE, "Allow": "OPTIONS, POST"})

    async def handle_post(self, request: web.Request) -> web.Response:
        """Accept an SDP offer; answer 201 with the SDP answer and the session's Location."""
        await self._require_auth(request)
        if request.content_type != SDP_TYPE:
            raise web.HTTPUnsupportedMediaType(text=f"Content-Type must be {SDP_TYPE}\n")
        if (request.content_length or 0) > MAX_OFFER_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_OFFER_BYTES, request.content_length or 0)
        offer = await request.text()
        _check_offer(offer)
        if len(self.sessions) >= self.config.max_sessions:
            self.metrics.calls_rejected_total.labels(Ingress.WEBRTC, "capacity").inc()
            raise web.HTTPServiceUnavailable(
                text="too many sessions\n", headers={"Retry-After": "30"}
            )
        session = await self._open_session(offer)
        location = f"{WHIP_PATH}/{session.session_id}"
        answer = session.pc.localDescription.sdp
        return web.Response(
            status=201,
            text=answer,
            content_type=SDP_TYPE,
            headers={
                "Location": location,
                "ETag": f'"{session.session_id}"',
                "X-Clonewatch-Call-Id": session.call_id,
            },
        )

    async def handle_delete(self, request: web.Request) -> web.Response:
        """End a session; 404 for one that does not exist (or already ended)."""
        await self._require_auth(request)
        session = self.sessions.get(request.match_info["session_id"])
        if session is None:
            raise web.HTTPNotFound(text="no such WHIP session\n")
        await self._close(session, "hangup")
        return web.Response(status=200)

    async def handle_patch(self, request: web.Request) -> web.Response:
        """Trickle ICE and ICE restarts are not supported (RFC 9725 lets servers refuse)."""
        await self._require_auth(request)
        if request.match_info["session_id"] not in self.sessions:
            raise web.HTTPNotFound(text="no such WHIP session\n")
        raise web.HTTPMethodNotAllowed("PATCH", ["DELETE"])

    async def _open_session(self, offer: str) -> WhipSession:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers()))
        session = WhipSession(secrets.token_urlsafe(16), f"webrtc-{secrets.token_hex(6)}", pc)
        self.sessions[session.session_id] = session
        self.sink.open_call(CallInfo(session.call_id, Ingress.WEBRTC, self.line))
        pc.on("track", lambda track: self._on_track(session, track))
        pc.on("connectionstatechange", lambda: self._on_state(session))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, AssertionError) as exc:  # aiortc raises both for bad SDP
            await self._close(session, "error")
            raise web.HTTPBadRequest(text=f"unusable SDP offer: {exc}\n") from None
        watchdog = asyncio.create_task(self._watch(session), name=f"webrtc-watch:{session.call_id}")
        session.tasks.add(watchdog)
        logger.info("WHIP session opened", extra={"call_id": session.call_id, "stage": "webrtc"})
        return session

    async def _watch(self, session: WhipSession) -> None:
        """End a session whose peer never connects or never sends a track."""
        await asyncio.sleep(self.config.media_timeout_s)
        if session.tracks == 0 or session.pc.connectionState != "connected":
            self._close_soon(session, "media-timeout")

    def _ice_servers(self) -> list[RTCIceServer]:
        servers = [RTCIceServer(urls=url) for url in self.config.stun_urls]
        servers += [
            RTCIceServer(
                urls=url,
                username=self.config.turn_username or None,
                credential=self.config.turn_password or None,
            )
            for url in self.config.turn_urls
        ]
        return servers

    def _on_track(self, session: WhipSession, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        participant_id = f"track{session.tracks}"
        session.tracks += 1
        self.sink.add_participant(ParticipantInfo(session.call_id, participant_id, track.id))
        task = asyncio.create_task(
            self._read_track(session, track, participant_id),
            name=f"webrtc:{session.call_id}:{participant_id}",
        )
        session.tasks.add(task)

    def _on_state(self, session: WhipSession) -> None:
        if session.pc.connectionState in ("failed", "closed"):
            self._close_soon(session, f"ice-{session.pc.connectionState}")

    def _close_soon(self, session: WhipSession, reason: str) -> None:
        if not session.closing:
            task = asyncio.create_task(
                self._close(session, reason), name=f"webrtc-close:{session.call_id}"
            )
            session.tasks.add(task)

    async def _read_track(
        self, session: WhipSession, track: MediaStreamTrack, participant_id: str
    ) -> None:
        """Pull decoded audio from one track until it ends or goes quiet, then end the call."""
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        assembler = FrameAssembler(session.call_id, participant_id)
        reason = "hangup"
        try:
            while True:
                frame = await asyncio.wait_for(track.recv(), self.config.media_timeout_s)
                if not isinstance(frame, av.AudioFrame):
                    continue
                now = time.monotonic()
                for out in resampler.resample(frame):
                    pcm = np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1)
                    for audio in assembler.push(pcm, now):
                        self.sink.push(audio)
        except MediaStreamError:
            pass
        except TimeoutError:
            reason = "media-timeout"
        for audio in assembler.flush(time.monotonic()):
            self.sink.push(audio)
        self._close_soon(session, reason)

    async def _close(self, session: WhipSession, reason: str) -> None:
        if session.closing:
            return
        session.closing = True
        self.sessions.pop(session.session_id, None)
        current = asyncio.current_task()
        readers = [t for t in session.tasks if t is not current]
        for task in readers:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.pc.close(), CLOSE_TIMEOUT_S)
        await asyncio.gather(*readers, return_exceptions=True)
        self.sink.close_call(session.call_id, reason)
        logger.info("WHIP session closed (%s)", reason, extra={"call_id": session.call_id})

    async def aclose(self) -> None:
        """Close every session (service shutdown)."""
        await asyncio.gather(*(self._close(s, "shutdown") for s in list(self.sessions.values())))


def _check_offer(offer: str) -> None:
    """Reject what is plainly not an audio offer before building a peer connection."""
    if not offer.startswith("v=0"):
        raise web.HTTPBadRequest(text="body is not an SDP offer (must start with v=0)\n")
    if not any(line.startswith("m=audio") for line in offer.splitlines()):
        raise web.HTTPBadRequest(text="offer has no audio stream\n")
