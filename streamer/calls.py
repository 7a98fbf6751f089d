"""The SIP side's session handler: turns accepted offers into calls on the FrameSink.

For each accepted INVITE, `CallManager.accept` opens the call on the sink, adds one
participant per audio stream, opens one RTP stream per participant and returns the SDP
answer. Re-INVITEs update the media in place (`update`); `end` releases everything and
always calls `sink.close_call(call_id, reason)` exactly once.

Identity (DESIGN.md words):
- plain SIP: one participant "caller", labelled with the From display name or URI;
  `line` is the user part of the To URI (else of the Request-URI).
- SIPREC: one participant per labelled stream, `participant_id` = its `a=label`, labelled
  from the metadata (name, else AOR); `line` is the AOR user part of the first
  participant in the metadata (the recorded party an SRC lists first), else as for SIP.

Hold (RFC 3264 8.4): a stream is held when its peer will not send (`recvonly`,
`inactive`, or the null address 0.0.0.0), and for plain SIP also on `sendonly`, the
usual hold offer of a phone (music on hold is not the caller's voice). For SIPREC,
`sendonly` is the normal direction of a recording stream, so it is not hold.

RTP timeout: a call ends with "rtp-timeout" when every one of its streams has timed
out; the SIP server is told first (`set_hangup`) so it sends BYE to the peer.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from alerts.metrics import Metrics
from alerts.types import CallInfo, ParticipantInfo
from inference.types import FrameSink
from streamer.calls_media import MediaPlan, SessionOffer, plan_media
from streamer.config import RtpConfig, SipConfig
from streamer.rtp_session import RtpPortPool, RtpStream, open_rtp_stream
from streamer.sdp import AudioStreamOffer, build_answer

logger = logging.getLogger(__name__)

__all__ = ["CallManager", "CallState", "SessionOffer"]

END_REASONS = ("bye", "cancel", "rtp-timeout", "error", "shutdown")
CLOSE_TIMEOUT_S = 2.0  # per stream, when a call ends


class CallState(enum.Enum):
    """Where a call stands."""

    SETUP = "setup"
    ACTIVE = "active"
    ENDED = "ended"


@dataclass
class _Call:
    info: CallInfo
    session_id: int
    version: int = 0
    state: CallState = CallState.SETUP
    streams: dict[str, RtpStream] = field(default_factory=dict)  # by participant_id
    labels: dict[str, str] = field(default_factory=dict)  # participant_id -> label
    timed_out: set[str] = field(default_factory=set)


class CallManager:
    """Owns every SIP/SIPREC call's media and its lifecycle on the FrameSink.

    All methods run on the event loop. One call's failure never touches another's.
    """

    def __init__(self, sip: SipConfig, rtp: RtpConfig, sink: FrameSink, metrics: Metrics) -> None:
        self._sip = sip
        self._rtp = rtp
        self._sink = sink
        self._metrics = metrics
        self.pool = RtpPortPool(rtp.port_min, rtp.port_max)
        self._calls: dict[str, _Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._hangup: Callable[[str], None] = lambda call_id: None

    def set_hangup(self, hangup: Callable[[str], None]) -> None:
        """Register who ends the signalling when media ends a call (the SIP server's BYE)."""
        self._hangup = hangup

    @property
    def active_calls(self) -> int:
        """Calls open now (set up or active)."""
        return len(self._calls)

    def has_call(self, call_id: str) -> bool:
        """True while `call_id` is open."""
        return call_id in self._calls

    def participants(self, call_id: str) -> dict[str, int]:
        """participant_id -> our RTP port, for an open call (empty when unknown)."""
        call = self._calls.get(call_id)
        return {} if call is None else {pid: s.port for pid, s in call.streams.items()}

    async def accept(self, offer: SessionOffer) -> str:
        """Open a call for an INVITE and return the SDP answer.

        Raises:
            SdpError: the offer is malformed or has nothing acceptable; nothing was opened.
            Exception: opening the media failed; the call was closed with "error".
        """
        # raises SdpError before anything is opened
        plan = plan_media(offer, self._sip.siprec_ignore_aors)
        if offer.call_id in self._calls:
            raise RuntimeError(f"call {offer.call_id!r} is already open")
        call = _Call(CallInfo(offer.call_id, plan.ingress, plan.line), secrets.randbelow(2**31))
        self._calls[offer.call_id] = call
        try:
            self._sink.open_call(call.info)
            answer = await self._apply(call, plan, offer.local_host)
        except BaseException:
            await self.end(offer.call_id, "error")
            raise
        call.state = CallState.ACTIVE
        return answer

    async def update(self, call_id: str, offer: SessionOffer) -> str:
        """Apply a re-INVITE's offer in place and return the new answer.

        Raises:
            SdpError: the new offer is unacceptable; the call keeps its old media.
            KeyError: no such call.
        """
        call = self._calls[call_id]
        plan = plan_media(offer, self._sip.siprec_ignore_aors)
        return await self._apply(call, plan, offer.local_host)

    async def _apply(self, call: _Call, plan: MediaPlan, host: str) -> str:
        accepted: dict[int, tuple[AudioStreamOffer, int]] = {}
        for stream_plan in plan.streams:
            pid = stream_plan.participant_id
            label = stream_plan.label
            if pid not in call.streams:
                call.streams[pid] = await self._open_stream(call, pid)
            if call.labels.get(pid) != label:  # new participant, or metadata update
                call.labels[pid] = label
                self._sink.add_participant(ParticipantInfo(call.info.call_id, pid, label))
            stream = call.streams[pid]
            offer = stream_plan.offer
            address = None if offer.address is None else (offer.address, offer.port)
            stream.set_remote(address, offer.payload_types)
            stream.set_hold(stream_plan.held)
            call.timed_out.discard(pid)
            accepted[offer.index] = (offer, stream.port)
        call.version += 1
        return build_answer(plan.sdp, accepted, host, call.session_id, call.version)

    async def _open_stream(self, call: _Call, participant_id: str) -> RtpStream:
        call_id = call.info.call_id
        return await open_rtp_stream(
            self.pool,
            self._sip.host,
            call_id=call_id,
            participant_id=participant_id,
            sink=self._sink,
            metrics=self._metrics,
            ingress=call.info.ingress,
            jitter_packets=self._rtp.jitter_packets,
            timeout_s=self._sip.rtp_timeout_s,
            on_timeout=lambda: self._on_timeout(call_id, participant_id),
        )

    def _on_timeout(self, call_id: str, participant_id: str) -> None:
        call = self._calls.get(call_id)
        if call is None or call.state is CallState.ENDED:
            return
        call.timed_out.add(participant_id)
        if call.timed_out < set(call.streams):
            return
        logger.warning("RTP timeout, ending call", extra={"call_id": call_id, "stage": "sip"})
        try:
            self._hangup(call_id)
        except Exception:
            logger.exception("hangup failed", extra={"call_id": call_id, "stage": "sip"})
        self._spawn(self.end(call_id, "rtp-timeout"), f"sip-end:{call_id}")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def end(self, call_id: str, reason: str) -> None:
        """End a call: close its RTP streams (ports released), then `sink.close_call`.

        Idempotent: ending an unknown or ended call does nothing.
        """
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        call.state = CallState.ENDED
        try:
            for pid, stream in list(call.streams.items()):
                await self._close_stream(call_id, pid, stream)
        finally:
            call.streams.clear()
            try:
                self._sink.close_call(call_id, reason)
            except Exception:
                logger.exception("sink.close_call failed", extra={"call_id": call_id})

    async def _close_stream(self, call_id: str, pid: str, stream: RtpStream) -> None:
        try:
            await asyncio.wait_for(stream.aclose(), CLOSE_TIMEOUT_S)
        except (Exception, TimeoutError):
            logger.exception(
                "closing RTP stream %s failed", pid, extra={"call_id": call_id, "stage": "sip"}
            )

    async def aclose(self) -> None:
        """End every call with "shutdown" and wait for pending work."""
        for call_id in list(self._calls):
            await self.end(call_id, "shutdown")
        if self._tasks:  # pending ends release ports: let them finish, then cancel the rest
            _, pending = await asyncio.wait(list(self._tasks), timeout=CLOSE_TIMEOUT_S)
            for task in pending:
                task.cancel()
