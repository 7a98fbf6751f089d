"""Chunk boundaries, indices and timing of speech windows."""

from __future__ import annotations

import numpy as np
import pytest

from inference.chunker import Chunker
from inference.types import Window

pytestmark = pytest.mark.unit
SR = 1000  # a small rate keeps the arithmetic readable: 20 samples per 20 ms frame
FRAME = 20


def _frame(value: float) -> np.ndarray:
    return np.full(FRAME, value, np.float32)


def _feed(chunker: Chunker, frames: int, *, t0: float = 0.0, first: int = 0) -> list[Window]:
    """Push `frames` contiguous frames starting at media time t0; frame k has value k/1000."""
    out: list[Window] = []
    for k in range(frames):
        start = t0 + k * FRAME / SR
        out += chunker.push(_frame((first + k) / 1000), start, arrival_s=100.0 + start)
    return out


def test_first_window_after_window_s_then_every_hop() -> None:
    chunker = Chunker(1.0, 0.5, SR, call_id="c", participant_id="p")
    windows = _feed(chunker, 100)  # 2 s of speech: windows end at 1.0, 1.5, 2.0
    assert [w.index for w in windows] == [0, 1, 2]
    assert [w.start_s for w in windows] == pytest.approx([0.0, 0.5, 1.0])
    assert [w.end_s for w in windows] == pytest.approx([1.0, 1.5, 2.0])
    assert all(w.samples.shape == (1000,) and w.samples.dtype == np.float32 for w in windows)
    assert all(w.speech_ratio == pytest.approx(1.0) for w in windows)
    assert (windows[0].call_id, windows[0].participant_id) == ("c", "p")
    # Window 1 starts with frame 25 (0.5 s) and ends with frame 74.
    assert windows[1].samples[0] == pytest.approx(0.025)
    assert windows[1].samples[-1] == pytest.approx(0.074)
    assert windows[2].arrival_s == pytest.approx(100.0 + 1.98)


def test_pauses_are_skipped_and_lower_the_speech_ratio() -> None:
    chunker = Chunker(1.0, 0.5, SR)
    windows = _feed(chunker, 25)  # 0.0 .. 0.5 s
    windows += _feed(chunker, 25, t0=1.5, first=25)  # after a 1 s pause: 1.5 .. 2.0 s
    assert len(windows) == 1
    (w,) = windows
    assert (w.start_s, w.end_s) == pytest.approx((0.0, 2.0))
    assert w.speech_ratio == pytest.approx(0.5)
    # The samples are speech only: frames 0..49, no silence in between.
    assert w.samples[::FRAME] == pytest.approx(np.arange(50) / 1000)


def test_memory_is_bounded_to_one_window() -> None:
    chunker = Chunker(1.0, 0.5, SR)
    _feed(chunker, 500)
    assert chunker._kept <= 1000 + FRAME
    assert chunker.speech_s == pytest.approx(10.0)


def test_flush_scores_the_tail_when_half_a_window_is_unscored() -> None:
    chunker = Chunker(1.0, 0.5, SR)
    assert len(_feed(chunker, 50)) == 1  # window 0 at 1.0 s
    assert _feed(chunker, 20, t0=1.0, first=50) == []  # 0.4 s more: below the hop
    assert chunker.flush() == []  # 0.4 s unscored < half a window
    (w1,) = _feed(chunker, 5, t0=1.4, first=70)  # 0.5 s more speech: window 1 at the hop
    assert w1.index == 1
    assert w1.end_s == pytest.approx(1.5)
    assert chunker.flush() == []  # the hop just scored everything
    chunker2 = Chunker(1.0, 0.7, SR)
    _feed(chunker2, 50)
    _feed(chunker2, 25, t0=1.0, first=50)
    (tail,) = chunker2.flush()
    assert tail.index == 1
    assert (tail.start_s, tail.end_s) == pytest.approx((0.5, 1.5))
    assert chunker2.flush() == []  # nothing left


def test_flush_of_a_short_utterance_repeats_the_speech() -> None:
    chunker = Chunker(1.0, 0.5, SR)
    assert _feed(chunker, 30, t0=2.0) == []  # 0.6 s of speech only
    (w,) = chunker.flush()
    assert w.index == 0
    assert w.samples.shape == (1000,)
    assert (w.start_s, w.end_s) == pytest.approx((2.0, 2.6))
    assert w.speech_ratio == pytest.approx(1.0)
    assert w.samples[600] == w.samples[0]  # tiled, not zero-padded
    # Frame 0 (value 0) appears twice: at the start and where the repetition begins.
    assert np.count_nonzero(w.samples == 0) == 2 * FRAME
    assert w.samples[999] == w.samples[399]


def test_flush_ignores_less_than_half_a_window() -> None:
    chunker = Chunker(1.0, 0.5, SR)
    _feed(chunker, 24)  # 0.48 s
    assert chunker.flush() == []


def test_frames_longer_than_the_hop_do_not_repeat_windows() -> None:
    chunker = Chunker(0.1, 0.02, SR)
    out = chunker.push(np.zeros(300, np.float32), 0.0, 0.0)
    out += chunker.push(np.zeros(20, np.float32), 0.3, 0.0)
    assert [w.index for w in out] == [0, 1]
    assert [w.end_s for w in out] == pytest.approx([0.3, 0.32])


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="window_s"):
        Chunker(0.0, 0.5, SR)
