"""RTP senders of `clonewatch call`: one UDP socket and SSRC per stream, G.711 payloads.

Each sender starts its sequence number and timestamp at random values (RFC 3550 5.1)
and marks the first packet (RFC 3551 4.1: start of a talkspurt). The last packet of a
track is padded with silence to a whole 20 ms.
"""

from __future__ import annotations

import asyncio
import secrets

import numpy as np
import numpy.typing as npt

from streamer.g711 import alaw_encode, ulaw_encode
from streamer.rtp import RtpPacket

SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
ENCODERS = {0: ulaw_encode, 8: alaw_encode}


class _Drain(asyncio.DatagramProtocol):
    """Whatever the far end sends to our RTP port (RTCP, echo) is read and dropped."""


class RtpSender:
    """Sends one track as RTP from its own UDP socket; runs on the event loop."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        self.ssrc = secrets.randbits(32)
        self._seq0 = secrets.randbits(16)
        self._ts0 = secrets.randbits(32)
        self._target: tuple[str, int] | None = None
        self._pt = 0

    def connect(self, target: tuple[str, int], payload_type: int) -> None:
        """Send to `target` with `payload_type` (0 PCMU or 8 PCMA)."""
        if payload_type not in ENCODERS:
            raise ValueError(f"payload type {payload_type} is not G.711")
        self._target, self._pt = target, payload_type

    def send_packet(self, track: npt.NDArray[np.int16], k: int) -> int:
        """Send packet `k` (samples k*160..) of `track`; returns 1 if sent, 0 if none."""
        chunk = track[k * SAMPLES_PER_PACKET : (k + 1) * SAMPLES_PER_PACKET]
        if self._target is None or not len(chunk):
            return 0
        if len(chunk) < SAMPLES_PER_PACKET:
            chunk = np.pad(chunk, (0, SAMPLES_PER_PACKET - len(chunk)))
        packet = RtpPacket(
            payload_type=self._pt,
            sequence_number=(self._seq0 + k) & 0xFFFF,
            timestamp=(self._ts0 + k * SAMPLES_PER_PACKET) & 0xFFFFFFFF,
            ssrc=self.ssrc,
            payload=ENCODERS[self._pt](chunk),
            marker=k == 0,
        )
        self._transport.sendto(packet.to_bytes(), self._target)
        return 1

    def close(self) -> None:
        """Close the socket."""
        self._transport.close()


async def open_senders(host: str, count: int) -> list[RtpSender]:
    """`count` senders, each on its own free UDP port of `host`."""
    loop = asyncio.get_running_loop()
    senders = []
    for _ in range(count):
        transport, _ = await loop.create_datagram_endpoint(_Drain, local_addr=(host, 0))
        senders.append(RtpSender(transport))
    return senders
