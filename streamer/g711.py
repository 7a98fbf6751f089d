"""G.711 µ-law (PCMU) and A-law (PCMA) codecs, vectorised with numpy lookup tables.

Values are those of ITU-T G.711 (tables 1a/2a), left-justified to 16 bits as the classic
Sun `g711.c` (and Python's former `audioop`) produce them: µ-law decodes to at most
±32124 (ITU 14-bit ±8031 × 4), A-law to at most ±32256 (ITU 13-bit ±4032 × 8).
Decoding indexes a 256-entry table with the payload bytes; encoding indexes a
65,536-entry table with the int16 samples, so both are one numpy gather per packet.
The tables are built once at import and are read-only.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

_ULAW_BIAS = 0x84  # 132: added before the segment search (G.711 µ-law bias, 16-bit scale)
_ULAW_CLIP_14BIT = 8159  # largest magnitude µ-law can code, in 14-bit units
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


_A = TypeVar("_A", bound=np.ndarray)


def _readonly(a: _A) -> _A:
    a.setflags(write=False)
    return a


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF  # code words are sent inverted
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55  # even bits are sent inverted
    segment = (a & 0x70) >> 4
    magnitude = (a & 0x0F) << 4
    magnitude = np.where(segment == 0, magnitude + 8, magnitude + 0x108)
    magnitude = np.where(segment > 1, magnitude << np.maximum(segment - 1, 0), magnitude)
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered by its uint16 bit pattern (the encode table's index)."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    v = _all_int16() >> 2  # 14-bit
    mask = np.where(v < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(v), _ULAW_CLIP_14BIT) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEG_END, magnitude, side="left")
    code = (segment << 4) | ((magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    v = _all_int16() >> 3  # 13-bit
    mask = np.where(v >= 0, 0xD5, 0x55)
    magnitude = np.where(v >= 0, v, -v - 1)
    segment = np.searchsorted(_ALAW_SEG_END, magnitude, side="left")
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    code = (segment << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


ULAW_DECODE = _readonly(_ulaw_decode_table())
ALAW_DECODE = _readonly(_alaw_decode_table())
ULAW_ENCODE = _readonly(_ulaw_encode_table())
ALAW_ENCODE = _readonly(_alaw_encode_table())


def ulaw_decode(payload: bytes) -> npt.NDArray[np.int16]:
    """Decode G.711 µ-law (PCMU) bytes, one sample per byte.

    Args:
        payload: µ-law code words, e.g. an RTP payload of PT 0.

    Returns:
        int16 samples, shape [len(payload)], at the payload's rate (8 kHz for RTP).
    """
    return ULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


def alaw_decode(payload: bytes) -> npt.NDArray[np.int16]:
    """Decode G.711 A-law (PCMA) bytes, one sample per byte.

    Args:
        payload: A-law code words, e.g. an RTP payload of PT 8.

    Returns:
        int16 samples, shape [len(payload)].
    """
    return ALAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


def _as_int16(pcm: npt.NDArray[np.integer]) -> npt.NDArray[np.uint16]:
    if pcm.dtype != np.int16:
        raise ValueError(f"expected int16 samples, got {pcm.dtype}")
    return np.ascontiguousarray(pcm).reshape(-1).view(np.uint16)


def ulaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """Encode int16 samples as G.711 µ-law, one byte per sample.

    Args:
        pcm: int16 mono samples (any shape; flattened in C order).

    Returns:
        The µ-law code words.

    Raises:
        ValueError: `pcm` is not int16.
    """
    return ULAW_ENCODE[_as_int16(pcm)].tobytes()


def alaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """Encode int16 samples as G.711 A-law, one byte per sample.

    Args:
        pcm: int16 mono samples (any shape; flattened in C order).

    Returns:
        The A-law code words.

    Raises:
        ValueError: `pcm` is not int16.
    """
    return ALAW_ENCODE[_as_int16(pcm)].tobytes()
