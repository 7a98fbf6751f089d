"""G.711 µ-law and A-law against ITU-T G.711 values and the classic g711.c tables."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from streamer.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

pytestmark = pytest.mark.unit

ALL_CODES = bytes(range(256))


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0xFF, 0),  # µ-law positive zero
        (0x7F, 0),  # µ-law negative zero
        (0xFE, 8),  # segment 0, step 1: ITU 14-bit 2, x4
        (0xF0, 120),  # top of segment 0: ITU 30, x4
        (0xEF, 132),  # first level of segment 1: ITU 33, x4
        (0x80, 32124),  # largest positive: ITU 8031, x4
        (0x00, -32124),  # largest negative
        (0x70, -120),
    ],
)
def test_ulaw_decodes_itu_values(code: int, value: int) -> None:
    assert int(ulaw_decode(bytes([code]))[0]) == value


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0xD5, 8),  # A-law smallest positive: ITU 13-bit 1, x8
        (0x55, -8),
        (0xD4, 24),  # ITU 3, x8
        (0xC5, 264),  # first level of segment 1: ITU 33, x8
        (0xAA, 32256),  # largest positive: ITU 4032, x8
        (0x2A, -32256),
    ],
)
def test_alaw_decodes_itu_values(code: int, value: int) -> None:
    assert int(alaw_decode(bytes([code]))[0]) == value


def _audioop() -> Any:  # untyped stdlib module, gone in 3.13
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # stdlib until 3.13; the reference g711.c implementation

    return audioop


def test_decode_tables_equal_the_reference_implementation() -> None:
    audioop = _audioop()
    ref_u = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype=np.int16)
    ref_a = np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), dtype=np.int16)
    np.testing.assert_array_equal(ulaw_decode(ALL_CODES), ref_u)
    np.testing.assert_array_equal(alaw_decode(ALL_CODES), ref_a)


def test_encode_tables_equal_the_reference_implementation_for_every_sample() -> None:
    audioop = _audioop()
    pcm = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)
    assert ulaw_encode(pcm) == audioop.lin2ulaw(pcm.tobytes(), 2)
    assert alaw_encode(pcm) == audioop.lin2alaw(pcm.tobytes(), 2)


def test_every_code_survives_decode_then_encode() -> None:
    codes = np.frombuffer(ALL_CODES, dtype=np.uint8)
    assert alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES
    again = np.frombuffer(ulaw_encode(ulaw_decode(ALL_CODES)), dtype=np.uint8)
    # µ-law has two zeros; negative zero (0x7F) comes back as positive zero (0xFF).
    expected = np.where(codes == 0x7F, 0xFF, codes)
    np.testing.assert_array_equal(again, expected)


@pytest.mark.parametrize(
    ("encode", "decode", "max_value"),
    [(ulaw_encode, ulaw_decode, 32124), (alaw_encode, alaw_decode, 32256)],
)
def test_quantisation_error_is_within_half_a_step(encode, decode, max_value) -> None:  # type: ignore[no-untyped-def]
    pcm = np.linspace(-max_value, max_value, 20001).astype(np.int16)
    out = decode(encode(pcm)).astype(np.int64)
    err = np.abs(out - pcm)
    # Logarithmic companding: the step grows with the level, 1/16 of a segment at most.
    assert np.all(err <= np.maximum(16, np.abs(pcm.astype(np.int64)) // 16))
    assert np.all(np.sign(out[np.abs(pcm) > 64]) == np.sign(pcm[np.abs(pcm) > 64]))


def test_decode_shapes_and_dtype() -> None:
    assert ulaw_decode(b"").shape == (0,)
    out = alaw_decode(b"\xd5" * 160)
    assert out.dtype == np.int16 and out.shape == (160,)


def test_encode_rejects_non_int16() -> None:
    with pytest.raises(ValueError, match="int16"):
        ulaw_encode(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError, match="int16"):
        alaw_encode(np.zeros(10, dtype=np.int32))
