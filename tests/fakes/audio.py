"""Generated test audio: speech-like signals that webrtcvad marks as speech."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def speech_like(
    duration_s: float, rate_hz: int = 16000, *, seed: int = 0, level: float = 0.3
) -> npt.NDArray[np.int16]:
    """A voiced, syllable-paced signal: a gliding harmonic source through vowel formants.

    Syllables of 150-300 ms alternate with short pauses, like read speech, so a VAD finds
    speech with gaps. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s * rate_hz)
    t = np.arange(n) / rate_hz
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate_hz
    source: npt.NDArray[np.float64] = np.sum([np.sin(k * phase) / k for k in range(1, 25)], axis=0)
    formants = [(700, 1200), (400, 2000), (600, 1000), (300, 2300)]
    envelope = np.zeros(n)
    voiced = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.15, 0.3) * rate_hz)
        gap = int(rng.uniform(0.03, 0.12) * rate_hz)
        end = min(pos + length, n)
        envelope[pos:end] = np.hanning(end - pos) ** 0.5
        f1, f2 = formants[rng.integers(len(formants))]
        seg = t[pos:end]
        voiced[pos:end] = (
            0.6
            + 0.25 * np.sin(2 * np.pi * f1 * seg / 50)
            + 0.15 * np.sin(2 * np.pi * f2 * seg / 100)
        )
        pos = end + gap
    signal: npt.NDArray[np.float64] = source * envelope * voiced + 0.003 * rng.standard_normal(n)
    signal = signal / (np.max(np.abs(signal)) + 1e-9) * level
    return np.asarray(signal * 32767, dtype=np.int16)


def tone(
    duration_s: float, freq_hz: float, rate_hz: int = 16000, level: float = 0.5
) -> npt.NDArray[np.int16]:
    """A pure sine tone."""
    t = np.arange(int(duration_s * rate_hz)) / rate_hz
    return (np.sin(2 * np.pi * freq_hz * t) * level * 32767).astype(np.int16)
