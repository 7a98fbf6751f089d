"""Streaming resampler (soxr) and the 20 ms frame assembler."""

from __future__ import annotations

import numpy as np
import pytest

from inference.types import FRAME_BYTES, FRAME_SAMPLES
from streamer.resample import FrameAssembler, Resampler
from tests.rtp_packets import sine, snr_db, upsampled_reference

pytestmark = pytest.mark.unit


def test_upsampling_a_sine_in_packets_keeps_length_and_shape() -> None:
    pcm = sine(1.0)
    r = Resampler(8000)
    pieces = [r.process(pcm[i : i + 160]) for i in range(0, len(pcm), 160)]
    pieces.append(r.process(np.zeros(0, dtype=np.int16), last=True))
    out = np.concatenate(pieces)
    assert out.dtype == np.int16
    assert len(out) == 2 * len(pcm)  # no samples gained or lost, no delay
    ref = upsampled_reference(pcm)
    assert snr_db(out[200:-200], ref[200:-200]) > 40


def test_streaming_equals_one_shot() -> None:
    pcm = sine(0.5, freq_hz=1000)
    one = Resampler(8000).process(pcm, last=True)
    r = Resampler(8000)
    chunks = [r.process(pcm[i : i + 77]) for i in range(0, len(pcm), 77)]
    chunks.append(r.process(np.zeros(0, dtype=np.int16), last=True))
    streamed = np.concatenate(chunks)
    assert len(streamed) == len(one)
    assert np.max(np.abs(streamed.astype(int) - one.astype(int))) <= 2


def test_resampler_can_be_reused_after_last() -> None:
    r = Resampler(8000)
    first = r.process(sine(0.1), last=True)
    second = r.process(sine(0.1), last=True)
    assert len(first) == len(second) == 1600
    assert np.max(np.abs(first.astype(int) - second.astype(int))) <= 2  # libsoxr dither


def test_downsampling_48k() -> None:
    pcm = sine(0.5, rate_hz=48000)
    out = Resampler(48000, 16000).process(pcm, last=True)
    assert len(out) == len(pcm) // 3


def test_same_rate_passes_through() -> None:
    pcm = sine(0.1, rate_hz=16000)
    np.testing.assert_array_equal(Resampler(16000).process(pcm), pcm)


def test_rejects_wrong_input() -> None:
    with pytest.raises(ValueError, match="int16"):
        Resampler(8000).process(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError, match="positive"):
        Resampler(0)


def test_assembler_cuts_exact_frames_and_keeps_the_tail() -> None:
    fa = FrameAssembler("c1", "p1")
    pcm = (np.arange(1000) - 500).astype(np.int16)
    frames = fa.push(pcm, arrival_s=12.5)
    assert [f.seq for f in frames] == [0, 1, 2]
    assert [f.start_s for f in frames] == pytest.approx([0.0, 0.02, 0.04])
    assert all(len(f.pcm) == FRAME_BYTES and f.duration_s == 0.02 for f in frames)
    assert all((f.call_id, f.participant_id, f.arrival_s) == ("c1", "p1", 12.5) for f in frames)
    assert b"".join(f.pcm for f in frames) == pcm[: 3 * FRAME_SAMPLES].astype("<i2").tobytes()
    assert fa.pending_samples == 1000 - 3 * FRAME_SAMPLES
    tail = fa.flush(arrival_s=13.0)
    assert len(tail) == 1 and tail[0].seq == 3 and tail[0].arrival_s == 13.0
    samples = np.frombuffer(tail[0].pcm, dtype="<i2")
    np.testing.assert_array_equal(samples[:40], pcm[960:])
    assert not samples[40:].any()
    assert fa.flush(arrival_s=14.0) == []
    assert fa.next_seq == 4


def test_assembler_joins_odd_sized_pushes() -> None:
    fa = FrameAssembler("c", "p")
    rng = np.random.default_rng(1)
    pcm = rng.integers(-30000, 30000, 16000).astype(np.int16)
    frames = []
    pos = 0
    for size in rng.integers(0, 700, 100):
        frames += fa.push(pcm[pos : pos + size], arrival_s=float(pos))
        pos += int(size)
    frames += fa.push(pcm[pos:], arrival_s=-1.0)
    assert [f.seq for f in frames] == list(range(50))
    assert b"".join(f.pcm for f in frames) == pcm.tobytes()
    assert fa.flush(0.0) == []
