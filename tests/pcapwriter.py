"""Test helper: write pcap and pcapng captures of SIP + RTP made by hand (no third party)."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from streamer.g711 import alaw_encode, ulaw_encode
from streamer.rtp import RtpPacket

MTU_PAYLOAD = 1480  # IPv4 payload bytes per fragment on Ethernet


@dataclass(frozen=True)
class Packet:
    ts_s: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


@dataclass(frozen=True)
class TcpSegment:
    ts_s: float
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    payload: bytes
    flags: int = 0x18  # PSH|ACK; 0x02 = SYN


def tcp_frame(segment: TcpSegment, ident: int) -> bytes:
    """One Ethernet frame of a TCP segment over IPv4 (checksums left zero)."""
    tcp = struct.pack(
        "!HHIIBBHHH", segment.src[1], segment.dst[1], segment.seq, 0, 5 << 4, segment.flags,
        65535, 0, 0,
    )  # fmt: skip
    src = ipaddress.IPv4Address(segment.src[0]).packed
    dst = ipaddress.IPv4Address(segment.dst[0]).packed
    body = tcp + segment.payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident, 0, 64, 6, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + body


def tcp_stream(
    src: tuple[str, int],
    dst: tuple[str, int],
    parts: list[tuple[float, bytes]],
    mss: int,
    isn: int = 0xFFFFFF00,
) -> list[TcpSegment]:
    """A SYN, then each (time, bytes) part cut into `mss`-byte segments 1 ms apart.

    The default ISN makes the sequence numbers wrap inside the stream.
    """
    segments = [TcpSegment(parts[0][0] - 0.01, src, dst, isn, b"", 0x02)]
    offset = 0
    for ts_s, data in parts:
        for i, start in enumerate(range(0, len(data), mss)):
            seq = (isn + 1 + offset + start) & 0xFFFFFFFF
            chunk = data[start : start + mss]
            segments.append(TcpSegment(ts_s + i * 0.001, src, dst, seq, chunk))
        offset += len(data)
    return segments


def frames_of(item: Packet | TcpSegment, ident: int, mtu_payload: int = MTU_PAYLOAD) -> list[bytes]:
    if isinstance(item, TcpSegment):
        return [tcp_frame(item, ident)]
    return udp_frames(item, ident, mtu_payload)


def udp_frames(packet: Packet, ident: int, mtu_payload: int = MTU_PAYLOAD) -> list[bytes]:
    """Ethernet frames of one UDP datagram over IPv4, fragmented when above the MTU."""
    udp = struct.pack("!HHHH", packet.src[1], packet.dst[1], 8 + len(packet.payload), 0)
    segment = udp + packet.payload
    src = ipaddress.IPv4Address(packet.src[0]).packed
    dst = ipaddress.IPv4Address(packet.dst[0]).packed
    frames = []
    step = mtu_payload - mtu_payload % 8
    for offset in range(0, len(segment), step):
        part = segment[offset : offset + step]
        more = offset + step < len(segment)
        flags = (0x2000 if more else 0) | (offset // 8)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(part), ident, flags, 64, 17, 0, src, dst
        )
        ether = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
        frames.append(ether + ip + part)
    return frames


def write_pcap(
    path: Path, packets: Sequence[Packet | TcpSegment], mtu_payload: int = MTU_PAYLOAD
) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ident, packet in enumerate(packets):
        for frame in frames_of(packet, ident, mtu_payload):
            sec = int(packet.ts_s)
            usec = round((packet.ts_s - sec) * 1e6)
            out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def _block(block_type: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def write_pcapng(path: Path, packets: Sequence[Packet | TcpSegment]) -> None:
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    # interface with if_tsresol = 9 (nanoseconds), then end of options
    options = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    idb = _block(1, struct.pack("<HHI", 1, 0, 65535) + options)
    out = [shb, idb]
    for ident, packet in enumerate(packets):
        for frame in frames_of(packet, ident):
            ts = round(packet.ts_s * 1e9)
            head = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
            out.append(_block(6, head + frame))
    path.write_bytes(b"".join(out))


def sdp(host: str, port: int, pts: list[int], extra: list[str] | None = None) -> str:
    names = {0: "PCMU/8000", 8: "PCMA/8000", 18: "G729/8000", 101: "telephone-event/8000"}
    lines = ["v=0", f"o=- 1 1 IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0"]
    lines.append(f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}")
    lines += [f"a=rtpmap:{pt} {names[pt]}" for pt in pts]
    lines += extra or []
    return "\r\n".join(lines) + "\r\n"


def sip(
    start: str, headers: dict[str, str], body: str = "", content_type: str = "application/sdp"
) -> bytes:
    lines = [start, *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def dialog_headers(
    call_id: str, cseq: str, from_tag: str = "a1", to_tag: str = ""
) -> dict[str, str]:
    to = '"Bob" <sip:bob@example.com>' + (f";tag={to_tag}" if to_tag else "")
    return {
        "Via": "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK" + call_id[:8] + cseq.split()[1],
        "From": f'"Alice" <sip:alice@example.com>;tag={from_tag}',
        "To": to,
        "Call-ID": call_id,
        "CSeq": cseq,
        "Max-Forwards": "70",
        "Contact": "<sip:alice@10.0.0.1:5060>",
    }


def rtp_stream(
    pcm: npt.NDArray[np.int16],
    pt: int,
    src: tuple[str, int],
    dst: tuple[str, int],
    t0_s: float,
    ssrc: int = 0x1234,
    seq0: int = 65530,
) -> list[Packet]:
    """20 ms G.711 packets of `pcm` (8 kHz); sequence numbers wrap on purpose."""
    encode = ulaw_encode if pt == 0 else alaw_encode
    packets = []
    for i in range(len(pcm) // 160):
        payload = encode(pcm[i * 160 : (i + 1) * 160]) if pt in (0, 8) else bytes(20)
        rtp = RtpPacket(pt, (seq0 + i) & 0xFFFF, 1000 + i * 160, ssrc, payload)
        packets.append(Packet(t0_s + i * 0.02, src, dst, rtp.to_bytes()))
    return packets


def tone8k(freq_hz: float, seconds: float, amp: float = 8000.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(8000 * seconds)) / 8000
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)
