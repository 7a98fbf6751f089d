"""One captured RTP stream -> one PCM track: SSRC split, reorder, de-duplicate, decode.

Unlike the live jitter buffer, a capture is read whole, so there is no latency bound:
packets of each SSRC are sorted by extended sequence number (RFC 3550 appendix A.1
unwrapping), duplicates dropped, and each payload laid at its RTP timestamp relative to
the SSRC's first packet. Lost packets, DTX pauses and comfort-noise stretches (RFC 3389)
become silence. A new SSRC (a re-INVITE, a transfer) starts where its first packet
arrived on the capture clock, never over the audio before it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from streamer.rtp import RtpPacket, seq_delta, ts_delta

STATIC_CODECS = {0: "PCMU", 8: "PCMA", 13: "CN", 3: "GSM", 4: "G723", 9: "G722", 18: "G729"}
IGNORED_CODECS = frozenset({"CN", "TELEPHONE-EVENT"})  # no speech in them
MAX_GAP_S = 60.0  # a timestamp jump longer than this is a restart, not silence

StreamPackets = list[tuple[float, RtpPacket]]  # (capture seconds, packet), capture order
Decoder = Callable[[bytes], npt.NDArray[np.int16]]


def decode_stream(
    packets: StreamPackets,
    codecs: Mapping[int, str],
    decoders: Mapping[str, Decoder],
    rate_hz: int = 8000,
) -> tuple[npt.NDArray[np.int16], set[str]]:
    """Decode one participant's captured RTP into a PCM track at `rate_hz`.

    Args:
        packets: (capture time, packet), in capture order.
        codecs: Payload type -> encoding name from the SDP (static types are known).
        decoders: Encoding name -> payload decoder (PCMU, PCMA).
        rate_hz: RTP clock and sample rate of the decoders.

    Returns:
        The track (int16, silence where nothing was received) and the names of payload
        types that could not be decoded (empty when all were).
    """
    pieces: list[tuple[int, npt.NDArray[np.int16]]] = []
    unsupported: set[str] = set()
    end = 0
    if not packets:
        return np.zeros(0, np.int16), unsupported
    origin_s = packets[0][0]
    for first_s, ssrc_packets in _by_ssrc(packets):
        base = max(end, round((first_s - origin_s) * rate_hz))
        placed, missing = _lay_out(ssrc_packets, codecs, decoders, base, rate_hz)
        unsupported |= missing
        pieces.extend(placed)
        end = max([end, *(pos + len(pcm) for pos, pcm in placed)])
    track = np.zeros(end, np.int16)
    for pos, pcm in pieces:
        track[pos : pos + len(pcm)] = pcm
    return track, unsupported


def _by_ssrc(packets: StreamPackets) -> list[tuple[float, list[RtpPacket]]]:
    """Packets grouped by SSRC, groups in order of their first arrival."""
    groups: dict[int, tuple[float, list[RtpPacket]]] = {}
    for ts_s, packet in packets:
        groups.setdefault(packet.ssrc, (ts_s, []))[1].append(packet)
    return sorted(groups.values(), key=lambda g: g[0])


def _in_sequence(packets: list[RtpPacket]) -> list[RtpPacket]:
    """Sort by extended sequence number and drop duplicates (RFC 3550 A.1 unwrapping)."""
    keyed: dict[int, RtpPacket] = {}
    highest = 0
    last = packets[0].sequence_number
    for packet in packets:
        ext = highest + seq_delta(packet.sequence_number, last)
        if ext > highest:
            highest, last = ext, packet.sequence_number
        keyed.setdefault(ext, packet)
    return [keyed[k] for k in sorted(keyed)]


def _lay_out(
    packets: list[RtpPacket],
    codecs: Mapping[int, str],
    decoders: Mapping[str, Decoder],
    base: int,
    rate_hz: int,
) -> tuple[list[tuple[int, npt.NDArray[np.int16]]], set[str]]:
    """Decoded payloads at sample positions from `base`, by RTP timestamp."""
    placed: list[tuple[int, npt.NDArray[np.int16]]] = []
    unsupported: set[str] = set()
    ordered = _in_sequence(packets)
    ref_ts = ordered[0].timestamp
    shift = 0  # added after a timestamp jump too long to be silence
    cursor = base
    for packet in ordered:
        name = codecs.get(packet.payload_type) or STATIC_CODECS.get(packet.payload_type)
        name = name or f"payload type {packet.payload_type}"
        if name in IGNORED_CODECS:
            continue
        decoder = decoders.get(name)
        if decoder is None:
            unsupported.add(name)
            continue
        pos = base + shift + ts_delta(packet.timestamp, ref_ts)
        if pos < base or pos - cursor > MAX_GAP_S * rate_hz:
            shift += cursor - pos  # restart: continue right after the audio so far
            pos = cursor
        pcm = decoder(packet.payload)
        placed.append((pos, pcm))
        cursor = max(cursor, pos + len(pcm))
    return placed, unsupported
