"""A lean SIP/RTP load generator, run in its own process(es), apart from the service.

One worker process places many calls: SIP over one UDP socket (INVITE, ACK, BYE, built
from the same pieces as `clonewatch call`), then one plain non-blocking UDP socket per
RTP stream. A single ticker sends every stream's 20 ms G.711 packet on an absolute
schedule, so a worker costs one wake-up per 20 ms however many calls it carries (the
per-call pacing of `SipCall` would cost one wake-up per call per packet). How late the
ticker ran is reported, so a run where the generator itself fell behind is visible.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from streamer.call_offer import audio_sdp, siprec_body, siprec_metadata
from streamer.call_transaction import CallerDialog, invite_transaction, request_transaction
from streamer.errors import IngressError, SdpError, SipParseError
from streamer.g711 import ulaw_encode
from streamer.sdp import parse_sdp
from streamer.sip_dialog import new_tag
from streamer.sip_headers import parse_name_addr
from streamer.sip_message import SipMessage, parse_message

PACKET_S = 0.02
SAMPLES = 160  # 20 ms at 8 kHz
PT_PCMU = 0
ANSWER_TIMEOUT_S = 10.0
BYE_TIMEOUT_S = 4.0
_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What one worker process does.

    Attributes:
        target: The service's SIP (host, port).
        calls: Calls this worker places.
        streams: RTP streams per call: 1 plain SIP, 2 SIPREC.
        start_at: `time.time()` of the first INVITE; calls are spread over `ramp_s`.
        ramp_s: Seconds over which the calls are placed.
        end_at: `time.time()` at which every call hangs up.
        speech: Path of the 8 kHz speech WAV to loop.
        seed: Where each stream starts in the speech differs per seed.
    """

    target: tuple[str, int]
    calls: int
    streams: int
    start_at: float
    ramp_s: float
    end_at: float
    speech: str
    seed: int


@dataclass(slots=True)
class _Stream:
    sock: socket.socket
    target: tuple[str, int] = ("", 0)
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    seq0: int = field(default_factory=lambda: secrets.randbits(16))
    ts0: int = field(default_factory=lambda: secrets.randbits(32))
    offset: int = 0
    k0: int = 0  # ticker tick of this stream's first packet


class _SipSocket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.calls: dict[str, asyncio.Queue[SipMessage]] = {}
        self.acks: dict[str, SipMessage] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, int]) -> None:
        try:
            msg = parse_message(data)
        except SipParseError:
            return
        queue = self.calls.get(msg.call_id)
        if queue is None:
            return
        if msg.is_request:  # the service hung up (RTP timeout, shutdown): say OK
            self.reply(msg, addr)
            return
        ack = self.acks.get(msg.call_id)
        if msg.status >= 200 and msg.cseq[1] == "INVITE" and ack is not None:
            self.send(ack, addr)  # a retransmitted 2xx: our ACK was lost
            return
        queue.put_nowait(msg)

    def send(self, msg: SipMessage, target: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(msg.to_bytes(), target)

    def reply(self, request: SipMessage, addr: tuple[Any, int]) -> None:
        response = SipMessage(status=200, reason="OK")
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            value = request.header(name)
            if value is not None:
                response.headers.append((name, value))
        self.send(response, (str(addr[0]), int(addr[1])))


class Worker:
    """Places `spec.calls` calls and streams speech on them until `spec.end_at`."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.host = spec.target[0]
        track, _ = sf.read(spec.speech, dtype="int16")
        track = np.asarray(track, np.int16)
        usable = len(track) // SAMPLES * SAMPLES
        self.payload = ulaw_encode(track[:usable])
        self.packets = usable // SAMPLES
        self.rng = np.random.default_rng(spec.seed)
        self.sip = _SipSocket()
        self.sip_port = 0
        self.active: list[_Stream] = []
        self.counts = {"established": 0, "rejected": 0, "failed": 0, "packets_sent": 0}
        self.reasons: dict[str, int] = {}
        self.lags: list[float] = []
        self.t0 = 0.0

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self.sip, local_addr=(self.host, 0)
        )
        self.sip_port = int(transport.get_extra_info("sockname")[1])
        await asyncio.sleep(max(0.0, self.spec.start_at - time.time()))
        self.t0 = loop.time()
        ticker = asyncio.create_task(self._tick(), name="loadgen:ticker")
        gap = self.spec.ramp_s / max(1, self.spec.calls)
        tasks = []
        for i in range(self.spec.calls):
            await asyncio.sleep(max(0.0, self.t0 + i * gap - loop.time()))
            tasks.append(asyncio.create_task(self._call(), name=f"loadgen:call{i}"))
        await asyncio.gather(*tasks)
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        transport.close()
        return self._report()

    def _report(self) -> dict[str, Any]:
        lags = sorted(self.lags) or [0.0]
        return {
            **self.counts,
            "failures": self.reasons,
            "ticker_lag_p99_ms": round(lags[int(len(lags) * 0.99)] * 1000, 2),
            "ticker_lag_max_ms": round(lags[-1] * 1000, 2),
        }

    async def _tick(self) -> None:
        """Every 20 ms, one packet per active stream; late ticks are caught up at once."""
        loop = asyncio.get_running_loop()
        k = 0
        while True:
            due = self.t0 + k * PACKET_S
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lags.append(max(0.0, loop.time() - due))
            for stream in self.active:
                self._send(stream, k)
            k += 1

    def _send(self, stream: _Stream, k: int) -> None:
        n = k - stream.k0
        i = (stream.offset + n) % self.packets
        header = _HEADER.pack(
            0x80,
            PT_PCMU | (0x80 if n == 0 else 0),
            (stream.seq0 + n) & 0xFFFF,
            (stream.ts0 + n * SAMPLES) & 0xFFFFFFFF,
            stream.ssrc,
        )
        try:
            stream.sock.sendto(
                header + self.payload[i * SAMPLES : (i + 1) * SAMPLES], stream.target
            )
            self.counts["packets_sent"] += 1
        except BlockingIOError:  # socket buffer full: the kernel would drop it anyway
            self.reasons["send_buffer_full"] = self.reasons.get("send_buffer_full", 0) + 1

    async def _call(self) -> None:
        call_id = f"{uuid.uuid4().hex}@{self.host}"
        streams = [self._socket() for _ in range(self.spec.streams)]
        queue: asyncio.Queue[SipMessage] = asyncio.Queue()
        self.sip.calls[call_id] = queue
        try:
            ok = await self._invite(call_id, tag := new_tag(), streams, queue)
        except IngressError as exc:
            key = "rejected" if " 503 " in f" {exc} " else "failed"
            self.counts[key] += 1
            self.reasons[str(exc)[:60]] = self.reasons.get(str(exc)[:60], 0) + 1
            self._close(call_id, streams)
            return
        self.counts["established"] += 1
        self._start_streams(ok, streams)
        await asyncio.sleep(max(0.0, self.spec.end_at - time.time()))
        for stream in streams:
            if stream in self.active:
                self.active.remove(stream)
        await self._bye(call_id, tag, ok, queue)
        self._close(call_id, streams)

    def _send_sip(self, msg: SipMessage) -> None:
        self.sip.send(msg, self.spec.target)

    def _socket(self) -> _Stream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.host, 0))
        sock.setblocking(False)
        return _Stream(sock)

    def _close(self, call_id: str, streams: list[_Stream]) -> None:
        self.sip.calls.pop(call_id, None)
        self.sip.acks.pop(call_id, None)
        for stream in streams:
            stream.sock.close()

    def _dialog(self, call_id: str, tag: str) -> CallerDialog:
        return CallerDialog(self.host, self.sip_port, "loadgen", tag, call_id)

    async def _invite(
        self, call_id: str, tag: str, streams: list[_Stream], queue: asyncio.Queue[SipMessage]
    ) -> SipMessage:
        host, port = self.spec.target
        uri = f"sip:monitor@{host}:{port}"
        invite = self._dialog(call_id, tag).request("INVITE", 1, f"<{uri}>", uri)
        contact = f"<sip:loadgen@{self.host}:{self.sip_port}>"
        ports = [s.sock.getsockname()[1] for s in streams]
        siprec = self.spec.streams > 1
        sdp = audio_sdp(self.host, ports, "PCMU", secrets.randbelow(2**31), siprec)
        if siprec:
            labels = tuple(f"channel {i + 1}" for i in range(len(streams)))
            content_type, invite.body = siprec_body(sdp, siprec_metadata(call_id, labels, host))
            invite.headers += [("Contact", f"{contact};+sip.src"), ("Require", "siprec")]
        else:
            content_type, invite.body = "application/sdp", sdp.encode()
            invite.headers.append(("Contact", contact))
        invite.headers.append(("Content-Type", content_type))
        ok = await invite_transaction(invite, self._send_sip, queue, ANSWER_TIMEOUT_S)
        contact_uri = ok.header("Contact")
        target_uri = parse_name_addr(contact_uri).uri if contact_uri else uri
        ack = self._dialog(call_id, tag).request("ACK", 1, ok.header("To") or "", target_uri)
        self.sip.acks[call_id] = ack
        self._send_sip(ack)
        return ok

    def _start_streams(self, ok: SipMessage, streams: list[_Stream]) -> None:
        try:
            sdp = parse_sdp(ok.body)
        except SdpError:
            self.reasons["bad answer"] = self.reasons.get("bad answer", 0) + 1
            return
        k_now = int((asyncio.get_running_loop().time() - self.t0) / PACKET_S) + 1
        for stream, media in zip(streams, sdp.media, strict=False):
            address = media.connection or sdp.connection or self.host
            if address in ("0.0.0.0", "::"):
                address = self.host
            stream.target = (address, media.port)
            stream.offset = int(self.rng.integers(self.packets))
            stream.k0 = k_now
            self.active.append(stream)

    async def _bye(
        self, call_id: str, tag: str, ok: SipMessage, queue: asyncio.Queue[SipMessage]
    ) -> None:
        ack = self.sip.acks[call_id]
        bye = self._dialog(call_id, tag).request("BYE", 2, ok.header("To") or "", ack.uri)
        if await request_transaction(bye, self._send_sip, queue, BYE_TIMEOUT_S) is None:
            self.reasons["no BYE answer"] = self.reasons.get("no BYE answer", 0) + 1


def worker_main(spec: WorkerSpec, results: Any) -> None:
    """Process entry point: run the worker (on uvloop where installed), send its report."""
    try:
        import uvloop

        report = uvloop.run(Worker(spec).run())
    except ImportError:
        report = asyncio.run(Worker(spec).run())
    results.put(report)
