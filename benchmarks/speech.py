"""Speech for the load generator: espeak-ng sentences, 8 kHz int16, made once and cached.

Read speech with its natural pauses (the VAD marks about 70-90 % of it as speech), so the
service does the VAD, chunking and model work a real conversation would cause. Where
espeak-ng is missing a voiced synthetic signal with syllable pauses stands in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from benchmarks.models import STANDIN_DIR
from streamer.resample import Resampler

RATE_HZ = 8000
SENTENCES = (
    "Hello, this is the bank calling about a payment on your account this morning.",
    "Could you please confirm the last four digits of your card and your date of birth?",
    "We noticed a transfer of two thousand pounds to a new payee at nine fifteen.",
    "If you did not make this payment, we can stop it now and send you a new card.",
    "Thank you for waiting, I am just checking the details with my colleague.",
    "The reference number for this call is seven four two nine, please keep it safe.",
)


def speech_track() -> npt.NDArray[np.int16]:
    """About 30 s of speech at 8 kHz (cached as a WAV beside the stand-in model)."""
    wav = STANDIN_DIR / "speech-8k.wav"
    if not wav.is_file():
        wav.parent.mkdir(parents=True, exist_ok=True)
        track = _espeak() if shutil.which("espeak-ng") else _synthetic()
        sf.write(str(wav), track, RATE_HZ, subtype="PCM_16")
    data, _ = sf.read(str(wav), dtype="int16")
    return np.ascontiguousarray(data)


def _espeak() -> npt.NDArray[np.int16]:
    pieces = []
    for i, text in enumerate(SENTENCES):
        out = STANDIN_DIR / f"sentence-{i}.wav"
        voice = ("en-gb", "en-us", "en-gb+f3")[i % 3]
        subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(out), text], check=True)
        data, rate = sf.read(str(out), dtype="int16")
        out.unlink()
        pieces.append(Resampler(int(rate), RATE_HZ).process(np.ascontiguousarray(data), last=True))
        pieces.append(np.zeros(RATE_HZ // 4, np.int16))  # a breath between sentences
    return np.concatenate(pieces)


def _synthetic(seconds: float = 30.0) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE_HZ
    source = np.sum([np.sin(k * phase) / k for k in range(1, 20)], axis=0)
    syllables = (np.sin(2 * np.pi * 4 * t) > -0.3).astype(float)
    signal = source * syllables + 0.01 * rng.standard_normal(len(t))
    out: npt.NDArray[np.int16] = (signal / np.max(np.abs(signal)) * 0.3 * 32767).astype(np.int16)
    return out


def path_of_track() -> Path:
    """Where the cached speech lives (workers read it themselves)."""
    speech_track()
    return STANDIN_DIR / "speech-8k.wav"
