"""UDP datagrams out of pcap and pcapng captures (the container half of `streamer.pcap`).

Formats: classic pcap (both byte orders, micro- and nanosecond timestamps) and pcapng
(section header, interface description and enhanced/simple packet blocks; other blocks
are skipped). Link types: Ethernet (with 802.1Q/802.1ad tags), Linux cooked capture v1 and
v2, raw IP, and BSD loopback. Network: IPv4 (fragments reassembled) and IPv6 (extension
headers skipped); transport: UDP datagrams, and TCP segments (for SIP over TCP, whose
streams `streamer.pcap_tcp` reassembles).

A capture cut off in its last record, as a killed tcpdump leaves it, keeps the packets
before the cut; the cut is logged. Anything else malformed in the container raises
`AudioFileError`; a malformed packet inside is skipped.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streamer.errors import AudioFileError

logger = logging.getLogger(__name__)

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)
IPPROTO_UDP = 17
IPPROTO_TCP = 6
IPV6_EXTENSION_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 1
PCAPNG_SPB = 3
PCAPNG_EPB = 6
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
MAX_BLOCK_BYTES = 1 << 24  # a larger block length is corruption, not a packet


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram of a capture.

    Attributes:
        ts_s: Capture time, seconds since the epoch.
        src: (address, port) it came from.
        dst: (address, port) it went to.
        payload: The UDP payload.
    """

    ts_s: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment of a capture.

    Attributes:
        ts_s: Capture time, seconds since the epoch.
        src: (address, port) it came from.
        dst: (address, port) it went to.
        seq: The sequence number of its first payload byte (of the SYN when `syn`).
        syn: The SYN flag: `seq + 1` is where the stream's bytes start.
        payload: The TCP payload (may be empty).
    """

    ts_s: float
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    syn: bool
    payload: bytes


def read_datagrams(path: Path) -> list[Datagram]:
    """Every UDP datagram of a pcap or pcapng file, in capture order (blocking).

    Raises:
        AudioFileError: Not a capture, or a malformed container; the message names the file.
    """
    return read_capture(path)[0]


def read_capture(path: Path) -> tuple[list[Datagram], list[Segment]]:
    """Every UDP datagram and every TCP segment of a capture, in capture order (blocking).

    Raises:
        AudioFileError: Not a capture, or a malformed container; the message names the file.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(data) < 4:
        raise AudioFileError(f"{path}: not a capture (too short)")
    if struct.unpack_from("<I", data)[0] == PCAPNG_SHB:
        frames = _pcapng_frames(path, data)
    else:
        frames = _pcap_frames(path, data)
    reassembler = _Fragments()
    datagrams: list[Datagram] = []
    segments: list[Segment] = []
    for ts_s, linktype, frame in frames:
        packet = _decode_frame(ts_s, linktype, frame, reassembler)
        if isinstance(packet, Datagram):
            datagrams.append(packet)
        elif packet is not None:
            segments.append(packet)
    return datagrams, segments


def _pcap_frames(path: Path, data: bytes) -> Iterator[tuple[float, int, bytes]]:
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}.get(magic)
    nano_endian = {b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    order = endian or nano_endian
    if order is None:
        raise AudioFileError(f"{path}: not a pcap or pcapng capture")
    if len(data) < 24:
        raise AudioFileError(f"{path}: truncated pcap header")
    linktype = struct.unpack_from(f"{order}I", data, 20)[0] & 0x0FFFFFFF
    scale = 1e-9 if nano_endian else 1e-6
    offset = 24
    record = struct.Struct(f"{order}IIII")
    while offset < len(data):
        if offset + 16 > len(data):
            _log_cut(path, offset)
            return
        sec, frac, incl, _orig = record.unpack_from(data, offset)
        if incl > MAX_BLOCK_BYTES:
            raise AudioFileError(f"{path}: corrupt record at byte {offset} ({incl} bytes)")
        if offset + 16 + incl > len(data):
            _log_cut(path, offset)
            return
        yield sec + frac * scale, linktype, data[offset + 16 : offset + 16 + incl]
        offset += 16 + incl


def _log_cut(path: Path, offset: int) -> None:
    logger.warning(
        "%s: capture cut off at byte %d; packets before it are used",
        path,
        offset,
        extra={"stage": "replay"},
    )


@dataclass
class _Interface:
    linktype: int
    ts_scale: float = 1e-6


def _pcapng_frames(path: Path, data: bytes) -> Iterator[tuple[float, int, bytes]]:
    order = "<"
    interfaces: list[_Interface] = []
    offset = 0
    while offset + 12 <= len(data):
        block_type = struct.unpack_from(f"{order}I", data, offset)[0]
        if block_type == PCAPNG_SHB:
            order = _section_order(path, data, offset)
            interfaces = []
        length = struct.unpack_from(f"{order}I", data, offset + 4)[0]
        if length < 12 or length % 4 or length > MAX_BLOCK_BYTES:
            raise AudioFileError(f"{path}: corrupt pcapng block at byte {offset}")
        if offset + length > len(data):
            _log_cut(path, offset)
            return
        body = data[offset + 8 : offset + length - 4]
        if block_type == PCAPNG_IDB:
            interfaces.append(_interface(order, body))
        elif block_type in (PCAPNG_EPB, PCAPNG_SPB):
            packet = _packet_block(order, block_type, body, interfaces)
            if packet is not None:
                yield packet
        offset += length
    if offset < len(data):
        _log_cut(path, offset)


def _section_order(path: Path, data: bytes, offset: int) -> str:
    if offset + 12 > len(data):
        raise AudioFileError(f"{path}: truncated pcapng section header")
    magic = data[offset + 8 : offset + 12]
    if magic == struct.pack("<I", PCAPNG_BYTE_ORDER_MAGIC):
        return "<"
    if magic == struct.pack(">I", PCAPNG_BYTE_ORDER_MAGIC):
        return ">"
    raise AudioFileError(f"{path}: bad pcapng byte-order magic at byte {offset}")


def _interface(order: str, body: bytes) -> _Interface:
    linktype = struct.unpack_from(f"{order}H", body, 0)[0]
    iface = _Interface(linktype)
    offset = 8
    while offset + 4 <= len(body):  # options: find if_tsresol (code 9)
        code, size = struct.unpack_from(f"{order}HH", body, offset)
        if code == 0:
            break
        if code == 9 and size >= 1:
            resol = body[offset + 4]
            exponent = resol & 0x7F
            iface.ts_scale = 2.0**-exponent if resol & 0x80 else 10.0**-exponent
        offset += 4 + size + (-size % 4)
    return iface


def _packet_block(
    order: str, block_type: int, body: bytes, interfaces: list[_Interface]
) -> tuple[float, int, bytes] | None:
    if block_type == PCAPNG_SPB:
        if not interfaces or len(body) < 4:
            return None
        return 0.0, interfaces[0].linktype, body[4:]
    if len(body) < 20:
        return None
    iface_id, ts_high, ts_low, captured, _orig = struct.unpack_from(f"{order}IIIII", body, 0)
    if iface_id >= len(interfaces):
        return None
    iface = interfaces[iface_id]
    ts_s = ((ts_high << 32) | ts_low) * iface.ts_scale
    return ts_s, iface.linktype, body[20 : 20 + captured]


def _decode_frame(
    ts_s: float, linktype: int, frame: bytes, reassembler: _Fragments
) -> Datagram | Segment | None:
    ip = _strip_link(linktype, frame)
    if ip is None or not ip:
        return None
    version = ip[0] >> 4
    try:
        if version == 4:
            return _ipv4(ts_s, ip, reassembler)
        if version == 6:
            return _ipv6(ts_s, ip)
    except (struct.error, IndexError, ValueError):
        return None  # a malformed packet is skipped; the capture goes on
    return None


def _strip_link(linktype: int, frame: bytes) -> bytes | None:
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return frame
    if linktype == LINKTYPE_NULL:
        return frame[4:]
    if linktype == LINKTYPE_LINUX_SLL:
        return _by_ethertype(frame, 14, 16)
    if linktype == LINKTYPE_LINUX_SLL2:
        return _by_ethertype(frame, 0, 20)
    if linktype == LINKTYPE_ETHERNET:
        offset = 12
        while len(frame) >= offset + 2:
            ethertype = struct.unpack_from("!H", frame, offset)[0]
            if ethertype not in ETHERTYPE_VLAN:
                return _by_ethertype(frame, offset, offset + 2)
            offset += 4
    return None


def _by_ethertype(frame: bytes, type_at: int, payload_at: int) -> bytes | None:
    if len(frame) < payload_at:
        return None
    ethertype = struct.unpack_from("!H", frame, type_at)[0]
    return frame[payload_at:] if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6) else None


class _Fragments:
    """IPv4 reassembly (RFC 791): SIP INVITEs with SDP often exceed one Ethernet MTU."""

    def __init__(self) -> None:
        self._pending: dict[tuple[bytes, bytes, int], dict[int, tuple[bytes, bool]]] = {}

    def add(
        self, key: tuple[bytes, bytes, int], offset: int, more: bool, data: bytes
    ) -> bytes | None:
        parts = self._pending.setdefault(key, {})
        parts[offset] = (data, more)
        position = 0
        chunks: list[bytes] = []
        while position in parts:
            chunk, more_after = parts[position]
            chunks.append(chunk)
            position += len(chunk)
            if not more_after:
                del self._pending[key]
                return b"".join(chunks)
        return None


def _ipv4(ts_s: float, ip: bytes, reassembler: _Fragments) -> Datagram | Segment | None:
    header_len = (ip[0] & 0x0F) * 4
    total_len, ident, flags_frag, _ttl, proto = struct.unpack_from("!HHHBB", ip, 2)
    if proto not in (IPPROTO_UDP, IPPROTO_TCP) or header_len < 20:
        return None
    payload = ip[header_len:total_len] if total_len >= header_len else ip[header_len:]
    src, dst = ip[12:16], ip[16:20]
    frag_offset, more = (flags_frag & 0x1FFF) * 8, bool(flags_frag & 0x2000)
    if frag_offset or more:
        whole = reassembler.add((src, dst, ident), frag_offset, more, payload)
        if whole is None:
            return None
        payload = whole
    src_host, dst_host = str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst))
    if proto == IPPROTO_TCP:
        return _tcp(ts_s, src_host, dst_host, payload)
    return _udp(ts_s, src_host, dst_host, payload)


def _ipv6(ts_s: float, ip: bytes) -> Datagram | Segment | None:
    payload_len, next_header = struct.unpack_from("!HB", ip, 4)
    offset = 40
    while next_header in IPV6_EXTENSION_HEADERS:
        next_header, ext_len = ip[offset], ip[offset + 1]
        offset += 8 + ext_len * 8
    if next_header not in (IPPROTO_UDP, IPPROTO_TCP):
        return None
    src = str(ipaddress.IPv6Address(ip[8:24]))
    dst = str(ipaddress.IPv6Address(ip[24:40]))
    if next_header == IPPROTO_TCP:
        return _tcp(ts_s, src, dst, ip[offset : 40 + payload_len])
    return _udp(ts_s, src, dst, ip[offset : 40 + payload_len])


def _tcp(ts_s: float, src: str, dst: str, segment: bytes) -> Segment | None:
    if len(segment) < 20:
        return None
    sport, dport, seq, _ack, offset_byte, flags = struct.unpack_from("!HHIIBB", segment, 0)
    header_len = (offset_byte >> 4) * 4
    if header_len < 20 or header_len > len(segment):
        return None
    syn = bool(flags & 0x02)
    return Segment(ts_s, (src, sport), (dst, dport), seq, syn, bytes(segment[header_len:]))


def _udp(ts_s: float, src: str, dst: str, segment: bytes) -> Datagram | None:
    if len(segment) < 8:
        return None
    sport, dport, length = struct.unpack_from("!HHH", segment, 0)
    end = length if 8 <= length <= len(segment) else len(segment)
    return Datagram(ts_s, (src, sport), (dst, dport), bytes(segment[8:end]))
