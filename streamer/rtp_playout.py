"""Playout of one RTP audio stream: jitter buffer -> G.711 decode -> 16 kHz -> 20 ms frames.

Pure and synchronous (no sockets, no loop), so it is tested with constructed packets;
`streamer.rtp_session.RtpStream` feeds it from a UDP socket on the event loop.

Media time follows the RTP timestamp (RFC 3550 §5.1): the audio of each played packet is
placed where its timestamp says, and any hole before it (lost packets, comfort noise,
DTMF, silence suppression) becomes zeros, so frames stay continuous whatever the ptime.
A new SSRC, a hold (while it lasts and once after), or a hole longer than
`MAX_GAP_FILL_S` re-anchors the timeline instead: audio goes on from the current media
time without filling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.types import FrameSink
from streamer.g711 import alaw_decode, ulaw_decode
from streamer.resample import FrameAssembler, Resampler
from streamer.rtp import JitterBuffer, JitterStats, RtpPacket, ts_delta

G711_CLOCK_HZ = 8000  # RFC 3551 §4.5.14: PCMU/PCMA are sampled at 8000 Hz
MAX_GAP_FILL_S = 10.0  # holes up to this long become silence; longer ones re-anchor
JITTER_GAIN = 1 / 16  # RFC 3550 §6.4.1 / A.8 interarrival jitter smoothing
# RFC 3551 §6 static payload types; SDP rtpmap lines replace these through set_payload_types.
STATIC_PAYLOAD_TYPES: Mapping[int, str] = {0: "PCMU", 8: "PCMA", 13: "CN"}
DECODERS: Mapping[str, Callable[[bytes], npt.NDArray[np.int16]]] = {
    "PCMU": ulaw_decode,
    "PCMA": alaw_decode,
}
IGNORED_ENCODINGS = frozenset({"CN", "TELEPHONE-EVENT"})  # RFC 3389, RFC 4733: not speech


@dataclass(frozen=True, slots=True)
class RtpStats:
    """Counters of one RTP stream since it opened (packets, except `jitter_s`).

    Attributes:
        received: RTP packets parsed from the expected source.
        lost: Sequence numbers never received (played as silence).
        late: Packets that came after their place was played, or wildly out of sequence.
        duplicate: Packets whose sequence number was already received.
        reordered: Packets that arrived out of order but in time to be played.
        unknown_source: Datagrams from an address other than the expected one.
        decode_errors: Malformed datagrams (not RTP, truncated, bad padding).
        jitter_s: RFC 3550 interarrival jitter estimate, in seconds.
        ignored: Comfort noise and telephone-event packets (not errors, not played).
        unsupported: Packets of a payload type the SDP did not offer.
        rtcp: RTCP packets (accepted and ignored).
        resets: Jitter buffer resets (SSRC change or sequence restart).
    """

    received: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    reordered: int = 0
    unknown_source: int = 0
    decode_errors: int = 0
    jitter_s: float = 0.0
    ignored: int = 0
    unsupported: int = 0
    rtcp: int = 0
    resets: int = 0


class RtpPlayout:
    """Turns one participant's RTP packets into 20 ms frames pushed to a `FrameSink`.

    Args:
        assembler: Numbers and cuts the frames (names the call and participant).
        sink: Receives every frame, in order; called on the caller's thread.
        jitter: The reorder buffer for this stream.
    """

    def __init__(self, assembler: FrameAssembler, sink: FrameSink, jitter: JitterBuffer) -> None:
        self.assembler = assembler
        self.sink = sink
        self.jitter = jitter
        self.ignored = 0
        self.unsupported = 0
        self.discontinuities = 0
        self.held = False  # on hold: play what comes, but fill no gaps
        self._resampler = Resampler(G711_CLOCK_HZ)
        self._decoders: dict[int, Callable[[bytes], npt.NDArray[np.int16]]] = {}
        self._ignored_types: set[int] = set()
        self._next_ts: int | None = None
        self._ssrc: int | None = None
        self._reanchor = True
        self._max_gap = int(MAX_GAP_FILL_S * G711_CLOCK_HZ)
        self._jitter_ts = 0.0  # in timestamp units
        self._last_arrival: tuple[int, float, int] | None = None  # (ssrc, arrival_s, ts)
        self.set_payload_types(STATIC_PAYLOAD_TYPES)

    @property
    def jitter_s(self) -> float:
        """RFC 3550 interarrival jitter of the audio packets, in seconds."""
        return self._jitter_ts / G711_CLOCK_HZ

    @property
    def stats(self) -> JitterStats:
        """The jitter buffer's counters (received, lost, late, duplicate, ...)."""
        return self.jitter.stats

    def set_payload_types(self, payload_types: Mapping[int, str]) -> None:
        """Use the SDP's payload type -> upper-case encoding name map ("PCMU", "CN", ...)."""
        self._decoders = {}
        self._ignored_types = set()
        for pt, name in payload_types.items():
            encoding = name.upper()
            if encoding in DECODERS:
                self._decoders[pt] = DECODERS[encoding]
            elif encoding in IGNORED_ENCODINGS:
                self._ignored_types.add(pt)

    def reanchor(self) -> None:
        """Place the next packet right after the audio played so far (no silence fill)."""
        self._reanchor = True

    def receive(self, packet: RtpPacket, arrival_s: float) -> None:
        """Take one packet from the expected source; push any frames it completes.

        Args:
            packet: The parsed packet.
            arrival_s: `time.monotonic()` when it arrived.
        """
        if packet.payload_type in self._decoders:
            self._update_jitter(packet, arrival_s)
        released = self.jitter.push(packet)
        if released:
            self._play(released, arrival_s, last=False)

    def flush(self, arrival_s: float) -> None:
        """Play what the buffer holds, drain the resampler and pad the last frame."""
        self._play(self.jitter.flush(), arrival_s, last=True)
        for frame in self.assembler.flush(arrival_s):
            self.sink.push(frame)

    def _update_jitter(self, packet: RtpPacket, arrival_s: float) -> None:
        last = self._last_arrival
        self._last_arrival = (packet.ssrc, arrival_s, packet.timestamp)
        if last is None or last[0] != packet.ssrc:
            return
        d = (arrival_s - last[1]) * G711_CLOCK_HZ - ts_delta(packet.timestamp, last[2])
        self._jitter_ts += (abs(d) - self._jitter_ts) * JITTER_GAIN

    def _play(self, packets: list[RtpPacket], arrival_s: float, *, last: bool) -> None:
        pieces: list[npt.NDArray[np.int16]] = []
        for packet in packets:
            decode = self._decoders.get(packet.payload_type)
            if decode is None:
                if packet.payload_type in self._ignored_types:
                    self.ignored += 1
                else:
                    self.unsupported += 1
                continue
            samples = decode(packet.payload)
            gap = self._place(packet, len(samples))
            if gap:
                pieces.append(np.zeros(gap, dtype=np.int16))
            pieces.append(samples)
        if not pieces and not last:
            return
        pcm = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
        for frame in self.assembler.push(self._resampler.process(pcm, last=last), arrival_s):
            self.sink.push(frame)

    def _place(self, packet: RtpPacket, samples: int) -> int:
        """Return how many zero samples go before this packet; advance the timeline."""
        gap = 0
        if self._reanchor or self.held or packet.ssrc != self._ssrc or self._next_ts is None:
            self._reanchor = False
            self._ssrc = packet.ssrc
        else:
            gap = ts_delta(packet.timestamp, self._next_ts)
            if gap > self._max_gap:
                self.discontinuities += 1
                gap = 0
            elif gap < 0:  # overlaps what was played: play it anyway, keep time moving
                gap = 0
        self._next_ts = (packet.timestamp + samples) & 0xFFFF_FFFF
        return gap
