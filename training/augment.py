"""Channel simulation for training: every clip of both classes goes through the same random chain.

A chain is gain -> (reverb) -> one channel (clean wideband, Opus, MP3, 8 kHz G.711 mu/A-law,
narrowband Opus, MP3 then telephone) -> (packet loss) -> white or pink noise (10-50 dB SNR,
or 70 dB) -> dither of about 2 LSB, so exact digital zeros never survive; gain is random, and the
model normalises level anyway.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from inference import channels as ch
from inference.evaldata import tile

CROP_S = 4.0
CROP = int(CROP_S * ch.SAMPLE_RATE_HZ)

DITHER = 2.0 / 32768.0
Chain = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _opus_wb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return ch.codec_roundtrip(x, "libopus", int(rng.choice([12000, 16000, 24000, 32000])))


def _mp3(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rate = int(rng.choice([16000, 22050, 24000]))
    return ch.codec_roundtrip(x, "libmp3lame", int(rng.choice([24000, 32000, 48000])), rate)


def _tel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return ch.telephone(x, "mu" if rng.random() < 0.6 else "a")


def _opus_nb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bitrate = int(rng.choice([6000, 8000, 12000]))
    return ch.codec_roundtrip(ch.telephone(x, "mu"), "libopus", bitrate, rate=8000)


def _mp3_tel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _tel(_mp3(x, rng), rng)


def _clean(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x


CHAINS: tuple[tuple[str, float, Chain], ...] = (
    ("wideband", 0.16, _clean),
    ("opus-wb", 0.14, _opus_wb),
    ("mp3", 0.16, _mp3),
    ("telephone", 0.30, _tel),
    ("opus-nb", 0.10, _opus_nb),
    ("mp3+telephone", 0.14, _mp3_tel),
)

# The chains that keep the band above 4 kHz: what the wideband head of GatedDetector sees.
WIDEBAND_CHAINS = ("wideband", "opus-wb", "mp3")


def reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response (exponentially decaying noise)."""
    rt60 = rng.uniform(0.15, 0.6)
    n = int(rt60 * ch.SAMPLE_RATE_HZ)
    t = np.arange(n) / ch.SAMPLE_RATE_HZ
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    rir[0] = 1.0 / rng.uniform(0.3, 1.0)  # direct path
    size = 1 << int(np.ceil(np.log2(len(x) + n)))
    spectrum = np.fft.rfft(x, size) * np.fft.rfft(rir / np.sqrt(np.sum(rir**2)), size)
    return np.fft.irfft(spectrum, size)[: len(x)].astype(np.float32)


def crop(x: np.ndarray, rng: np.random.Generator, n: int = CROP) -> tuple[np.ndarray, int]:
    """A random n-sample crop (tiled when the clip is shorter) and its untiled length."""
    if len(x) >= n:
        start = int(rng.integers(0, len(x) - n + 1))
        return x[start : start + n], n
    return tile(x, n), len(x)


def render(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One random channel chain applied to a float32 crop; returns audio and chain name."""
    rms = float(np.sqrt(np.mean(x**2))) + 1e-6
    x = x * (10 ** (rng.uniform(-38.0, -14.0) / 20.0) / rms)
    x = x / max(1.0, float(np.abs(x).max()) / 0.99)
    if rng.random() < 0.2:
        x = reverb(x, rng)
    names = [c[0] for c in CHAINS]
    probs = np.array([c[1] for c in CHAINS])
    i = int(rng.choice(len(CHAINS), p=probs / probs.sum()))
    x = CHAINS[i][2](x, rng)
    if CHAINS[i][0] != "wideband" and rng.random() < 0.3:
        x = ch.packet_loss(x, rng, rng.uniform(0.01, 0.08))
    snr = rng.uniform(10.0, 50.0) if rng.random() < 0.8 else 70.0
    x = ch.add_noise(x, rng, snr)
    # a floor of about 2 LSB of 16-bit audio, so no class keeps exact zeros after rounding
    return x + rng.standard_normal(len(x)).astype(np.float32) * DITHER, names[i]


def render_clip(args: tuple[np.ndarray, int, int]) -> list[tuple[np.ndarray, int, str]]:
    """`variants` rendered crops of one int16 clip: (int16 audio, valid samples, chain)."""
    pcm, variants, seed = args
    rng = np.random.default_rng(seed)
    x = pcm.astype(np.float32) / 32768.0
    out = []
    for _ in range(variants):
        c, valid = crop(x, rng)
        y, name = render(c, rng)
        out.append(((np.clip(y, -1, 1) * 32767).astype(np.int16), valid, name))
    return out
