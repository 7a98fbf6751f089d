"""`clonewatch call FILE --sip HOST:PORT [--siprec]`: place a recording as a live call.

A minimal SIP user agent client over UDP (RFC 3261): INVITE with an SDP offer (PCMU and
PCMA), retransmitted on Timer A until a provisional or final response; ACK for the 2xx;
the recording sent as G.711 RTP paced at 20 ms to the address and port of the answer;
BYE at the end (or 200 to the far end's BYE, which ends the call early). With `--siprec`
the INVITE is a SIPREC recording session (RFC 7866): one labelled stream per channel and
RFC 7865 metadata, one RTP stream per channel. Route sets (Record-Route) are not kept:
in-dialog requests go straight to the target, which is what a lab or staging setup needs.

Everything runs on the event loop; the recording is read on an executor thread.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from streamer.call_offer import (
    PAYLOAD_TYPES,
    Recording,
    audio_sdp,
    load_recording,
    siprec_body,
    siprec_metadata,
)
from streamer.call_rtp import RtpSender, open_senders
from streamer.call_transaction import CallerDialog, invite_transaction, request_transaction
from streamer.errors import IngressError, SdpError, SipParseError
from streamer.sdp import SessionDescription, parse_sdp
from streamer.sip_dialog import new_tag
from streamer.sip_headers import parse_name_addr
from streamer.sip_message import SipMessage, parse_message

logger = logging.getLogger(__name__)

DEFAULT_SIP_PORT = 5060
ANSWER_TIMEOUT_S = 15.0  # no final response by then: give up
BYE_TIMEOUT_S = 4.0
PACKET_S = 0.02
USER_AGENT = "clonewatch-call"
SIP_QUEUE_MESSAGES = 64


class CallFailed(IngressError):
    """The call could not be placed or ended (no answer, rejected, unusable answer)."""


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How to place the call.

    Attributes:
        target: (host, port) of the SIP service.
        siprec: Send a SIPREC recording session, one stream per channel.
        codec: Preferred codec, "PCMU" or "PCMA" (both are offered).
        from_user: User part of the From URI.
        to_user: User part of the Request-URI and To (the monitored line).
        answer_timeout_s: Seconds to wait for a final response to the INVITE.
    """

    target: tuple[str, int]
    siprec: bool = False
    codec: str = "PCMU"
    from_user: str = "clonewatch-call"
    to_user: str = "monitor"
    answer_timeout_s: float = ANSWER_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class CallResult:
    """What happened: the call id, RTP packets sent per stream, and who hung up."""

    call_id: str
    packets_sent: int
    streams: int
    ended_by: str  # "local" (our BYE) or "remote" (the far end's BYE)


def parse_hostport(text: str) -> tuple[str, int]:
    """`host:port`, `host`, `[v6]:port` -> (host, port); the port defaults to 5060."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host or (port and not port.isdigit()) or int(port or DEFAULT_SIP_PORT) > 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port or DEFAULT_SIP_PORT)


def local_host_for(target: tuple[str, int]) -> str:
    """The local address that routes to `target` (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(target)
        return str(probe.getsockname()[0])


class _SipSocket(asyncio.DatagramProtocol):
    """Our SIP UDP socket: parsed messages into a bounded queue (a flood is dropped)."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[SipMessage] = asyncio.Queue(SIP_QUEUE_MESSAGES)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the selector loop's datagram transport does not subclass DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            self.messages.put_nowait(parse_message(data))
        except SipParseError as exc:
            logger.warning("unparsable SIP from %s: %s", addr, exc, extra={"stage": "call"})
        except asyncio.QueueFull:
            logger.warning("SIP queue full; message dropped", extra={"stage": "call"})


class SipCall:
    """One outgoing call: INVITE, ACK, paced RTP, BYE. Use `run` once."""

    def __init__(self, options: CallOptions, recording: Recording) -> None:
        self._options = options
        self._recording = recording
        self._host = local_host_for(options.target)
        self.call_id = f"{uuid.uuid4().hex}@{self._host}"
        self._tag = new_tag()
        self._sip = _SipSocket()
        self._port = 0
        self._responses: asyncio.Queue[SipMessage] = asyncio.Queue(SIP_QUEUE_MESSAGES)
        self._remote_bye = asyncio.Event()
        self._last_ok: SipMessage | None = None
        self._ack: SipMessage | None = None

    @property
    def _uri(self) -> str:
        host, port = self._options.target
        host = f"[{host}]" if ":" in host else host
        return f"sip:{self._options.to_user}@{host}:{port}"

    async def run(self, on_call_id: Callable[[str], None] | None = None) -> CallResult:
        """Place the call and stream the recording; returns when the call has ended.

        Raises:
            CallFailed: No answer, rejected, or an answer without a usable stream.
        """
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self._sip, local_addr=(self._host, 0)
        )
        self._port = int(transport.get_extra_info("sockname")[1])
        tracks = self._tracks()
        senders = await open_senders(self._host, len(tracks))
        dispatcher = asyncio.create_task(self._dispatch(), name=f"call-sip:{self.call_id}")
        try:
            if on_call_id is not None:
                on_call_id(self.call_id)
            ok = await self._invite([s.port for s in senders])
            targets = self._answered(ok, len(senders))
            sent = await self._stream(senders, tracks, targets)
            if not self._remote_bye.is_set():
                await self._bye(ok)
            ended = "remote" if self._remote_bye.is_set() else "local"
            return CallResult(self.call_id, sent, len(tracks), ended)
        finally:
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)
            for sender in senders:
                sender.close()
            transport.close()

    def _tracks(self) -> list[npt.NDArray[np.int16]]:
        if self._options.siprec:
            return list(self._recording.tracks)
        return [self._recording.mono()]

    @property
    def _dialog(self) -> CallerDialog:
        user = self._options.from_user
        return CallerDialog(self._host, self._port, user, self._tag, self.call_id, USER_AGENT)

    def _send(self, msg: SipMessage) -> None:
        assert self._sip.transport is not None
        self._sip.transport.sendto(msg.to_bytes(), self._options.target)

    def _invite_message(self, ports: list[int]) -> SipMessage:
        invite = self._dialog.request("INVITE", 1, f"<{self._uri}>", self._uri)
        host = f"[{self._host}]" if ":" in self._host else self._host
        contact = f"<sip:{self._options.from_user}@{host}:{self._port}>"
        sdp = audio_sdp(
            self._host, ports, self._options.codec, secrets.randbelow(2**31), self._options.siprec
        )
        if self._options.siprec:
            metadata = siprec_metadata(self.call_id, self._recording.labels, self._host)
            content_type, invite.body = siprec_body(sdp, metadata)
            invite.headers += [("Contact", f"{contact};+sip.src"), ("Require", "siprec")]
        else:
            content_type, invite.body = "application/sdp", sdp.encode("utf-8")
            invite.headers.append(("Contact", contact))
        invite.headers.append(("Content-Type", content_type))
        return invite

    async def _invite(self, ports: list[int]) -> SipMessage:
        """Send the INVITE (Timer A retransmissions) and return the 2xx."""
        invite = self._invite_message(ports)
        ok = await invite_transaction(
            invite, self._send, self._responses, self._options.answer_timeout_s
        )
        self._last_ok = ok
        self._ack = self._ack_for(ok)
        self._send(self._ack)
        return ok

    def _ack_for(self, ok: SipMessage) -> SipMessage:
        contact = ok.header("Contact")
        uri = parse_name_addr(contact).uri if contact else self._uri
        return self._dialog.request("ACK", 1, ok.header("To") or "", uri)

    def _answered(self, ok: SipMessage, streams: int) -> list[tuple[tuple[str, int], int] | None]:
        """Per offered stream: ((address, port), payload type) of the answer, None if refused."""
        try:
            sdp = parse_sdp(ok.body)
        except SdpError as exc:
            raise CallFailed(f"the 200 OK has no usable SDP answer: {exc}") from exc
        targets = [_answer_target(sdp, i, self._options) for i in range(streams)]
        if not any(targets):
            raise CallFailed("the answer refused every audio stream")
        return targets

    async def _stream(
        self,
        senders: list[RtpSender],
        tracks: list[npt.NDArray[np.int16]],
        targets: list[tuple[tuple[str, int], int] | None],
    ) -> int:
        """Send every track as 20 ms packets on an absolute schedule; returns packets sent."""
        loop = asyncio.get_running_loop()
        for sender, target in zip(senders, targets, strict=True):
            if target is not None:
                sender.connect(*target)
        packets = max(-(-len(t) // 160) for t in tracks)
        start = loop.time()
        sent = 0
        for k in range(packets):
            if self._remote_bye.is_set():
                break
            delay = start + k * PACKET_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for sender, track in zip(senders, tracks, strict=True):
                sent += sender.send_packet(track, k)
        return sent

    async def _bye(self, ok: SipMessage) -> None:
        assert self._ack is not None
        bye = self._dialog.request("BYE", 2, ok.header("To") or "", self._ack.uri)
        status = await request_transaction(bye, self._send, self._responses, BYE_TIMEOUT_S)
        if status is None:
            logger.warning("no response to BYE", extra={"call_id": self.call_id, "stage": "call"})

    async def _dispatch(self) -> None:
        """Route responses to the transaction waiting; answer the far end's requests."""
        while True:
            msg = await self._sip.messages.get()
            if msg.call_id != self.call_id:
                continue
            if not msg.is_request:
                if msg.status >= 200 and msg.cseq[1] == "INVITE" and self._ack is not None:
                    self._send(self._ack)  # a retransmitted 2xx: our ACK was lost
                    continue
                self._responses.put_nowait(msg)
            elif msg.method in ("BYE", "CANCEL"):
                self._answer(msg, 200)
                self._remote_bye.set()
            elif msg.method != "ACK":
                self._answer(msg, 405)

    def _answer(self, request: SipMessage, status: int) -> None:
        response = SipMessage(status=status, reason="OK" if status == 200 else "Not Allowed")
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            value = request.header(name)
            if value is not None:
                response.headers.append((name, value))
        self._send(response)


def _answer_target(
    sdp: SessionDescription, index: int, options: CallOptions
) -> tuple[tuple[str, int], int] | None:
    if index >= len(sdp.media) or sdp.media[index].port == 0:
        return None
    media = sdp.media[index]
    codecs = media.codecs()
    usable = [pt for pt in codecs if codecs[pt] in PAYLOAD_TYPES]
    if not usable:
        return None
    preferred = [pt for pt in usable if codecs[pt] == options.codec]
    address = media.connection or sdp.connection or options.target[0]
    if address in ("0.0.0.0", "::"):
        address = options.target[0]
    return (address, media.port), (preferred or usable)[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `call` subcommand's arguments."""
    parser.add_argument("file", type=Path, help="recording to play (WAV, FLAC, OGG, MP3)")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--sip", metavar="HOST:PORT", help="place a SIP call to this service")
    how.add_argument("--whip", metavar="URL", help="place a WebRTC call (WHIP)")
    parser.add_argument("--siprec", action="store_true", help="SIPREC, one stream per channel")
    parser.add_argument("--token", help="bearer token for --whip")
    parser.add_argument("--codec", choices=sorted(PAYLOAD_TYPES), default="PCMU")
    parser.add_argument("--to", default="monitor", help="user part of the called URI (the line)")


async def run_call(args: argparse.Namespace) -> int:
    """Run `clonewatch call`: prints the call id first; returns the exit status.

    Failures (unreadable file, no answer, rejected) are printed to stderr as one line and
    give status 1; a bad argument gives 2.
    """
    try:
        if args.whip:
            from streamer.whip_client import place_whip_call

            await place_whip_call(args.file, args.whip, args.token)
            return 0
        return await _run_sip_call(args)
    except ValueError as exc:
        print(f"clonewatch call: {exc}", file=sys.stderr)
        return 2
    except (IngressError, OSError) as exc:
        print(f"clonewatch call: {exc}", file=sys.stderr)
        return 1


async def _run_sip_call(args: argparse.Namespace) -> int:
    options = CallOptions(
        target=parse_hostport(args.sip), siprec=args.siprec, codec=args.codec, to_user=args.to
    )
    loop = asyncio.get_running_loop()
    recording = await loop.run_in_executor(None, load_recording, args.file)
    call = SipCall(options, recording)
    result = await call.run(lambda call_id: print(call_id, flush=True))
    logger.info(
        "call ended (%s hung up): %d RTP packets on %d streams",
        result.ended_by,
        result.packets_sent,
        result.streams,
        extra={"call_id": result.call_id, "stage": "call"},
    )
    return 0
