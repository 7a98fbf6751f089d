"""RTP packets (RFC 3550 §5.1): parse, build, and tell RTCP apart (RFC 5761 §4).

The fixed header, then `CC` contributing sources, then an optional extension::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           timestamp                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           synchronization source (SSRC) identifier            |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |            contributing source (CSRC) identifiers             |
    |                             ....                              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  defined by profile (X=1)     |  length (32-bit words)        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                  header extension (length words)              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 payload ...   | padding (P=1) ... | pad count |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

`JitterBuffer` puts packets of one stream back in sequence order (see its docstring for the
capacity, the loss rule and the latency bound).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from streamer.errors import RtpParseError

RTP_VERSION = 2
HEADER_BYTES = 12
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
# RFC 5761 §4: with RTP and RTCP on one port, a second byte of 192..223 is an RTCP packet
# type (SR=200, RR=201, SDES=202, BYE=203, APP=204 are RTP PT 72..76 with the marker set).
RTCP_SECOND_BYTE = range(192, 224)

# RFC 3550 appendix A.1: a jump of more than these many packets is a restart, not loss/reorder.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
LOSS_AFTER_PACKETS = 4  # a missing packet is given up once this many later ones wait

_FIXED = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One parsed RTP packet (version 2), padding removed.

    Attributes:
        payload_type: 7-bit payload type (0 = PCMU, 8 = PCMA, 13 = CN; dynamic 96..127).
        sequence_number: 16-bit, wraps at 65536.
        timestamp: 32-bit, in the payload's clock (8000 Hz for G.711), wraps at 2**32.
        ssrc: Synchronisation source of the sender.
        payload: Codec bytes.
        marker: The M bit (start of a talkspurt for audio, RFC 3551 §4.1).
        csrc: Contributing sources (mixers).
        extension_profile: The 16-bit profile of the header extension, None without one.
        extension: The extension's data (a multiple of 4 bytes).
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""

    def to_bytes(self) -> bytes:
        """Serialise the packet (no padding); the inverse of `parse_rtp`."""
        has_ext = self.extension_profile is not None
        first = (RTP_VERSION << 6) | (0x10 if has_ext else 0) | len(self.csrc)
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [
            _FIXED.pack(first, second, self.sequence_number, self.timestamp, self.ssrc),
            *(struct.pack("!I", c) for c in self.csrc),
        ]
        if self.extension_profile is not None:
            parts.append(_EXTENSION.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        return b"".join(parts)


def is_rtcp(data: bytes) -> bool:
    """Whether a datagram is RTCP rather than RTP (RFC 5761 §4), judged by its second byte."""
    return len(data) >= 2 and data[1] in RTCP_SECOND_BYTE


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP datagram.

    Args:
        data: The UDP payload.

    Returns:
        The packet, with CSRCs, extension and padding taken apart.

    Raises:
        RtpParseError: The datagram is not a well-formed RTP version 2 packet; the message
            says why (e.g. "header 8 < 12 bytes").
    """
    size = len(data)
    if size < HEADER_BYTES:
        raise RtpParseError(f"header {size} < {HEADER_BYTES} bytes")
    first, second, seq, ts, ssrc = _FIXED.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpParseError(f"version {first >> 6} != {RTP_VERSION}")
    offset = HEADER_BYTES + 4 * (first & 0x0F)
    if offset > size:
        raise RtpParseError(f"{first & 0x0F} CSRCs need {offset} > {size} bytes")
    csrc = struct.unpack_from(f"!{first & 0x0F}I", data, HEADER_BYTES) if first & 0x0F else ()
    profile: int | None = None
    extension = b""
    if first & 0x10:
        if offset + 4 > size:
            raise RtpParseError(f"extension header at {offset} past {size} bytes")
        profile, words = _EXTENSION.unpack_from(data, offset)
        end = offset + 4 + 4 * words
        if end > size:
            raise RtpParseError(f"extension of {words} words ends at {end} > {size} bytes")
        extension = bytes(data[offset + 4 : end])
        offset = end
    stop = size
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or offset + padding > size:
            raise RtpParseError(f"padding {padding} invalid for {size - offset} payload bytes")
        stop = size - padding
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=bytes(data[offset:stop]),
        marker=bool(second & 0x80),
        csrc=tuple(csrc),
        extension_profile=profile,
        extension=extension,
    )


def seq_delta(seq: int, ref: int) -> int:
    """Signed distance from `ref` to `seq` in 16-bit sequence space, in [-32768, 32767]."""
    return ((seq - ref + 0x8000) & 0xFFFF) - 0x8000


def ts_delta(ts: int, ref: int) -> int:
    """Signed distance from `ref` to `ts` in 32-bit timestamp space (RFC 3550 §5.1 wrap)."""
    return ((ts - ref + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


@dataclass(slots=True)
class JitterStats:
    """What a `JitterBuffer` saw, counted since it was made (packets)."""

    received: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    reordered: int = 0
    resets: int = 0


@dataclass(slots=True)
class JitterBuffer:
    """A fixed ring that releases one stream's packets in sequence order.

    Rules (all counts are packets):

    - In-order packets are released at once; the buffer adds no delay without loss.
    - A packet that arrives early waits in the ring slot of its sequence number. A missing
      packet is declared lost when `loss_after` later packets are waiting, and the waiting
      ones are released. So a gap holds audio back by at most `loss_after` packet times
      (80 ms at the default 4 and 20 ms ptime) and a packet may arrive up to
      `loss_after - 1` places late and still be played.
    - A packet before the next one to release is "late" (or "duplicate" when the same
      sequence number was already stored, which the ring remembers for `capacity` packets)
      and is dropped. A packet `capacity` or more ahead pushes the head forward: waiting
      packets are released and the skipped ones counted lost.
    - A jump of more than `MAX_DROPOUT` ahead or `MAX_MISORDER` behind is dropped unless
      the next packet follows it, which means the sender restarted its sequence (RFC 3550
      A.1): the buffer then resets. A new SSRC resets it too, after releasing what waits;
      late packets of the SSRC it replaced are dropped (two in sequence switch back).
    - Sequence numbers are extended past 16 bits, so wrap-around needs no special case.

    Memory is `capacity` slots whatever arrives. Not thread-safe; used on the event loop.

    Attributes:
        capacity: Ring size in packets (`[rtp] jitter_packets`).
        loss_after: Waiting packets that make a missing one lost, in [1, capacity - 1].
        stats: Counters since construction.
    """

    capacity: int = 16
    loss_after: int = LOSS_AFTER_PACKETS
    stats: JitterStats = field(default_factory=JitterStats)
    _slots: list[RtpPacket | None] = field(init=False, repr=False)
    _seen: list[int] = field(init=False, repr=False)  # extended seq last stored per slot
    _ssrc: int | None = field(default=None, init=False)
    _head: int = field(default=0, init=False)  # extended seq of the next packet to release
    _highest: int = field(default=0, init=False)
    _waiting: int = field(default=0, init=False)
    _bad_seq: int | None = field(default=None, init=False)
    _prev_ssrc: int | None = field(default=None, init=False)  # the SSRC before a change
    _prev_next_seq: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.capacity < 2:
            raise ValueError(f"capacity {self.capacity} < 2 packets")
        self.loss_after = max(1, min(self.loss_after, self.capacity - 1))
        self._slots = [None] * self.capacity
        self._seen = [-1] * self.capacity

    @property
    def waiting(self) -> int:
        """Packets held back, waiting for a missing one."""
        return self._waiting

    def push(self, packet: RtpPacket) -> list[RtpPacket]:
        """Add one packet; return the packets now released, in sequence order."""
        self.stats.received += 1
        out: list[RtpPacket] = []
        if packet.ssrc != self._ssrc and not self._switch_ssrc(packet, out):
            self.stats.late += 1
            return out
        ext = self._head + seq_delta(packet.sequence_number, self._head)
        delta = ext - self._head
        if delta >= MAX_DROPOUT or delta < -MAX_MISORDER:
            if packet.sequence_number != self._bad_seq:
                self._bad_seq = (packet.sequence_number + 1) % SEQ_MOD
                self.stats.late += 1
                return out
            self.stats.resets += 1
            self._advance(self._highest + 1, out)
            self._start(packet.sequence_number, packet.ssrc)
            ext = self._head
        elif delta < 0 or self._seen[ext % self.capacity] == ext:
            if self._seen[ext % self.capacity] == ext:
                self.stats.duplicate += 1
            else:
                self.stats.late += 1
            return out
        self._store(ext, packet, out)
        return out

    def flush(self) -> list[RtpPacket]:
        """Release every waiting packet in order (at the end of a stream or on hold)."""
        out: list[RtpPacket] = []
        if self._waiting:
            self._advance(self._highest + 1, out)
        return out

    def _switch_ssrc(self, packet: RtpPacket, out: list[RtpPacket]) -> bool:
        """Reset for a new SSRC; False for a straggler of the SSRC just replaced.

        Going back to the previous SSRC takes two sequential packets of it, so a packet
        of the old stream that was overtaken by the new one does not flip the buffer.
        """
        if self._ssrc is None:
            self._start(packet.sequence_number, packet.ssrc)
            return True
        if packet.ssrc == self._prev_ssrc and packet.sequence_number != self._prev_next_seq:
            self._prev_next_seq = (packet.sequence_number + 1) % SEQ_MOD
            return False
        self.stats.resets += 1
        self._advance(self._highest + 1, out)
        previous = self._ssrc
        self._start(packet.sequence_number, packet.ssrc)
        self._prev_ssrc, self._prev_next_seq = previous, None
        return True

    def _start(self, seq: int, ssrc: int) -> None:
        # Extended numbers start one wrap up, so late packets never go negative.
        self._ssrc = ssrc
        self._head = SEQ_MOD + seq
        self._highest = self._head - 1
        self._waiting = 0
        self._bad_seq = None
        self._slots = [None] * self.capacity
        self._seen = [-1] * self.capacity

    def _store(self, ext: int, packet: RtpPacket, out: list[RtpPacket]) -> None:
        if ext >= self._head + self.capacity:
            self._advance(ext - self.capacity + 1, out)
        index = ext % self.capacity
        self._slots[index] = packet
        self._seen[index] = ext
        self._waiting += 1
        if ext < self._highest:
            self.stats.reordered += 1
        else:
            self._highest = ext
        self._release(out)

    def _release(self, out: list[RtpPacket]) -> None:
        slots, capacity = self._slots, self.capacity
        while True:
            while (packet := slots[self._head % capacity]) is not None:
                out.append(packet)
                slots[self._head % capacity] = None
                self._waiting -= 1
                self._head += 1
            if self._waiting < self.loss_after:
                return
            self.stats.lost += 1  # give up on the missing head
            self._head += 1

    def _advance(self, new_head: int, out: list[RtpPacket]) -> None:
        """Move the head to `new_head`, releasing waiting packets and counting holes lost."""
        end = min(new_head, self._head + self.capacity)
        while self._head < end:
            index = self._head % self.capacity
            packet = self._slots[index]
            if packet is None:
                self.stats.lost += 1
            else:
                out.append(packet)
                self._slots[index] = None
                self._waiting -= 1
            self._head += 1
        if new_head > self._head:
            self.stats.lost += new_head - self._head
            self._head = new_head
