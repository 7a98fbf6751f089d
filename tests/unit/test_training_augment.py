"""Channel simulation for training: same chains for both classes, no digital zeros, lengths."""

import numpy as np
import pytest

from inference import channels as ch
from training.augment import CHAINS, CROP, crop, render, render_clip, reverb

pytestmark = pytest.mark.unit


def _digits_with_exact_silence() -> np.ndarray:
    t = np.arange(4000) / 16000.0
    word = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    gap = np.zeros(3200, np.float32)
    return np.concatenate([word, gap, word, gap, word])


def test_render_leaves_no_exact_zeros_in_pcm() -> None:
    pcm = (_digits_with_exact_silence() * 32767).astype(np.int16)
    for y, valid, _ in render_clip((pcm, 6, 1)):
        assert y.shape == (CROP,)
        assert valid == len(pcm)
        zero = np.concatenate([[0], (y == 0).astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(zero))
        longest_zero_run = int(np.max(edges[1::2] - edges[::2], initial=0))
        assert longest_zero_run < 16  # no 1 ms of digital silence survives


def test_chain_choice_does_not_depend_on_the_audio() -> None:
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    loud = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.3
    quiet = _digits_with_exact_silence()[:16000]
    names_a = [render(loud, rng_a)[1] for _ in range(20)]
    names_b = [render(quiet, rng_b)[1] for _ in range(20)]
    assert names_a == names_b
    assert set(names_a) <= {c[0] for c in CHAINS}


def test_render_randomises_level_into_a_fixed_range() -> None:
    rng = np.random.default_rng(2)
    x = np.random.default_rng(1).standard_normal(32000).astype(np.float32)
    levels = []
    for gain in (0.01, 1.0):
        y, _ = render(x * gain, rng)
        levels.append(10 * np.log10(np.mean(y**2)))
    assert all(-45 < lv < -5 for lv in levels)


def test_crop_tiles_short_clips_and_cuts_long_ones() -> None:
    rng = np.random.default_rng(0)
    short, valid = crop(np.ones(1000, np.float32), rng, 4000)
    assert short.shape == (4000,) and valid == 1000
    long, valid = crop(np.arange(10_000, dtype=np.float32), rng, 4000)
    assert long.shape == (4000,) and valid == 4000
    assert np.all(np.diff(long) == 1.0)


def test_reverb_keeps_length_and_spreads_energy() -> None:
    x = np.zeros(8000, np.float32)
    x[0] = 1.0
    y = reverb(x, np.random.default_rng(0))
    assert y.shape == x.shape
    assert np.sum(y[800:] ** 2) > 0.0


def test_telephone_removes_the_upper_band() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(16000) * 0.1).astype(np.float32)
    y = ch.telephone(x, "a")
    spec = np.abs(np.fft.rfft(y)) ** 2
    upper, lower = spec[int(len(spec) * 0.55) :].sum(), spec[: int(len(spec) * 0.45)].sum()
    assert upper < 1e-3 * lower
