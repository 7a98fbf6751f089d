"""SIP messages out of the TCP streams of a capture (RFC 3261 18.3: framed by Content-Length).

Each direction of each connection is one byte stream. Its segments are put in sequence
order (sequence numbers unwrapped from the SYN, or from the first segment seen when the
capture starts mid-connection); retransmitted and overlapping bytes are kept once. A
hole (bytes never captured) cuts the stream: what was pending is dropped, and framing
resumes at the next SIP start line after the hole. Each complete message becomes a
`Datagram` stamped with the time of the segment that completed it, so the SIP call
finder treats it like one received over UDP.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from dataclasses import dataclass, field

from streamer.pcap_file import Datagram, Segment

logger = logging.getLogger(__name__)

SEQ_MOD = 1 << 32
MAX_STREAM_BYTES = 1 << 26  # a longer SIP stream is not signalling: the rest is ignored
_CONTENT_LENGTH_RE = re.compile(
    rb"^(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})[ \t]*\r?$", re.IGNORECASE | re.MULTILINE
)
_START_LINE = rb"[A-Z]{2,16} \S+ SIP/2\.0\r\n|SIP/2\.0 [1-6]\d\d "
_START_LINE_RE = re.compile(_START_LINE)
_NEXT_START_LINE_RE = re.compile(rb"\r\n(" + _START_LINE + rb")")

Flow = tuple[tuple[str, int], tuple[str, int]]


@dataclass
class _Stream:
    """One direction of a connection: its bytes in order, and when each part arrived."""

    flow: Flow
    base: int | None = None  # sequence number of byte 0
    data: bytearray = field(default_factory=bytearray)
    ends: list[int] = field(default_factory=list)  # stream offset after each chunk
    times: list[float] = field(default_factory=list)  # capture time of each chunk
    messages: list[Datagram] = field(default_factory=list)
    consumed: int = 0  # bytes of `data` already framed into messages
    resync: bool = False  # after a hole: the next message starts at the next start line

    def time_at(self, end: int) -> float:
        """The capture time of the chunk holding byte `end - 1`."""
        i = bisect_left(self.ends, end)
        return self.times[min(i, len(self.times) - 1)]


def sip_over_tcp(segments: list[Segment]) -> list[Datagram]:
    """Every complete SIP message of the capture's TCP streams, in time order.

    Never raises: a stream that does not frame as SIP simply yields nothing.
    """
    streams: dict[Flow, list[Segment]] = {}
    for segment in segments:
        streams.setdefault((segment.src, segment.dst), []).append(segment)
    messages: list[Datagram] = []
    for flow, flow_segments in streams.items():
        messages.extend(_reassemble(flow, flow_segments))
    messages.sort(key=lambda m: m.ts_s)
    return messages


def _reassemble(flow: Flow, segments: list[Segment]) -> list[Datagram]:
    stream = _Stream(flow)
    syn = next((s for s in segments if s.syn), None)
    first = syn.seq + 1 if syn is not None else segments[0].seq
    ordered = sorted(
        ((s.seq - first) % SEQ_MOD, s) for s in segments if s.payload and not s.syn
    )  # offsets past 2**31 are data from before the start: dropped by the sort order
    for offset, segment in ordered:
        if offset >= SEQ_MOD // 2 or len(stream.data) > MAX_STREAM_BYTES:
            continue
        _add(stream, offset, segment)
    return stream.messages


def _add(stream: _Stream, offset: int, segment: Segment) -> None:
    have = len(stream.data)
    payload = segment.payload
    if offset > have:  # a hole: what was pending is lost; resync after it
        logger.debug("TCP hole of %d bytes in %s", offset - have, stream.flow)
        stream.data.extend(bytes(offset - have))
        stream.consumed = len(stream.data)
        stream.ends.append(len(stream.data))
        stream.times.append(segment.ts_s)
        stream.resync = True
    elif offset < have:  # retransmitted or overlapping: keep the new bytes only
        payload = payload[have - offset :]
        if not payload:
            return
    stream.data.extend(payload)
    stream.ends.append(len(stream.data))
    stream.times.append(segment.ts_s)
    _frame(stream)


def _frame(stream: _Stream) -> None:
    """Cut every complete message from `stream.data[consumed:]`; a partial one waits."""
    data = stream.data
    while True:
        start = _message_start(stream)
        if start is None:
            return
        head_end = data.find(b"\r\n\r\n", start)
        if head_end < 0:
            return
        head_end += 4
        match = _CONTENT_LENGTH_RE.search(data, start, head_end)
        length = int(match.group(1)) if match is not None else 0
        end = head_end + length
        if end > len(data):
            return
        src, dst = stream.flow
        stream.messages.append(Datagram(stream.time_at(end), src, dst, bytes(data[start:end])))
        stream.consumed = end


def _message_start(stream: _Stream) -> int | None:
    """Where the next message starts: after CRLF keep-alives, or at the next start line."""
    data, position = stream.data, stream.consumed
    while data[position : position + 2] == b"\r\n":
        position += 2
    if position >= len(data):
        return None
    if stream.resync:
        if not _START_LINE_RE.match(data, position):
            found = _NEXT_START_LINE_RE.search(data, position)
            if found is None:
                return None
            position = found.start(1)
        stream.resync = False
        stream.consumed = position
    return position
