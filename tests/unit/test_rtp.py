"""RTP parsing and building (RFC 3550 §5.1), RTCP demultiplexing (RFC 5761), fuzzing."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.errors import RtpParseError
from streamer.rtp import RtpPacket, is_rtcp, parse_rtp, seq_delta, ts_delta

pytestmark = pytest.mark.unit

# V=2 P=0 X=0 CC=0 | M=1 PT=0 | seq 0x1234 | ts 0xDEADBEEF | SSRC 0x01020304 | payload
SIMPLE = bytes.fromhex("80 80 1234 DEADBEEF 01020304") + b"\xff" * 4


def test_parses_fixed_header() -> None:
    p = parse_rtp(SIMPLE)
    assert (p.payload_type, p.marker, p.sequence_number) == (0, True, 0x1234)
    assert (p.timestamp, p.ssrc, p.payload) == (0xDEADBEEF, 0x01020304, b"\xff" * 4)
    assert p.csrc == () and p.extension_profile is None


def test_parses_csrcs_extension_and_padding() -> None:
    header = bytes.fromhex("B2 08 0001 00000010 0000AAAA")  # V=2 P=1 X=1 CC=2, PT 8
    csrcs = struct.pack("!II", 7, 9)
    extension = bytes.fromhex("BEDE 0001") + b"\x10\x20\x30\x40"
    payload = b"\xd5" * 5
    padding = b"\x00\x00\x03"
    p = parse_rtp(header + csrcs + extension + payload + padding)
    assert p.payload_type == 8 and not p.marker
    assert p.csrc == (7, 9)
    assert p.extension_profile == 0xBEDE and p.extension == b"\x10\x20\x30\x40"
    assert p.payload == payload


def test_to_bytes_round_trips() -> None:
    p = RtpPacket(
        payload_type=101,
        sequence_number=65535,
        timestamp=2**32 - 1,
        ssrc=42,
        payload=b"abc",
        marker=True,
        csrc=(1, 2, 3),
        extension_profile=0x1000,
        extension=b"\x00" * 8,
    )
    assert parse_rtp(p.to_bytes()) == p
    assert parse_rtp(SIMPLE).to_bytes() == SIMPLE


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00" + b"\x00" * 6, "header 8 < 12 bytes"),
        (b"", "header 0 < 12 bytes"),
        (bytes.fromhex("40 00 0001 00000000 00000000"), "version 1 != 2"),
        (bytes.fromhex("83 00 0001 00000000 00000000") + b"\x00" * 8, "3 CSRCs need 24 > 20"),
        (bytes.fromhex("90 00 0001 00000000 00000000") + b"\x00\x00", "extension header"),
        (bytes.fromhex("90 00 0001 00000000 00000000 BEDE 0002") + b"\x00" * 4, "2 words"),
        (bytes.fromhex("A0 00 0001 00000000 00000000") + b"\x01\x00", "padding 0"),
        (bytes.fromhex("A0 00 0001 00000000 00000000") + b"\x01\x09", "padding 9"),
    ],
)
def test_malformed_packets_raise_with_context(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError, match=message):
        parse_rtp(data)


def test_rtp_parse_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_rtp(b"\x00")


@pytest.mark.parametrize(
    ("second_byte", "rtcp"),
    [
        (200, True),
        (201, True),
        (202, True),
        (203, True),
        (204, True),
        (0, False),
        (8, False),
        (0x80, False),
        (0x88, False),
        (96 | 0x80, False),
        (13, False),
    ],
)
def test_rtcp_is_told_apart_by_its_packet_type(second_byte: int, rtcp: bool) -> None:
    assert is_rtcp(bytes([0x81, second_byte]) + b"\x00" * 10) is rtcp


def test_rtcp_check_needs_two_bytes() -> None:
    assert not is_rtcp(b"\x81")


@pytest.mark.parametrize(
    ("seq", "ref", "delta"),
    [
        (1, 0, 1),
        (0, 65535, 1),
        (65535, 0, -1),
        (5, 65530, 11),
        (32767, 0, 32767),
        (32768, 0, -32768),
    ],
)
def test_sequence_delta_wraps(seq: int, ref: int, delta: int) -> None:
    assert seq_delta(seq, ref) == delta


def test_timestamp_delta_wraps() -> None:
    assert ts_delta(80, 2**32 - 80) == 160
    assert ts_delta(2**32 - 80, 80) == -160
    assert ts_delta(1000, 840) == 160


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_only_raise_rtp_parse_error(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpParseError:
        return
    assert len(packet.payload) <= len(data) - 12


@settings(max_examples=1000, deadline=None)
@given(st.binary(min_size=12, max_size=120), st.integers(0, 0x3F))
def test_fuzz_version_2_headers_with_random_flags(data: bytes, flags: int) -> None:
    # Force V=2 so the fuzzer reaches CSRC, extension and padding handling.
    mutated = bytes([0x80 | flags]) + data[1:]
    try:
        packet = parse_rtp(mutated)
    except RtpParseError:
        return
    assert len(packet.csrc) == flags & 0x0F


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 65535),
    timestamp=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    extension_profile=st.one_of(st.none(), st.integers(0, 65535)),
    extension=st.binary(max_size=16).map(lambda b: b[: len(b) // 4 * 4]),
)


@settings(max_examples=500, deadline=None)
@given(packets)
def test_fuzz_built_packets_parse_back(packet: RtpPacket) -> None:
    if packet.extension_profile is None:
        packet = dataclasses.replace(packet, extension=b"")
    assert parse_rtp(packet.to_bytes()) == packet
