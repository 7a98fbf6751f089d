"""Channel simulation shared by evaluation and training: telephone band, G.711, Opus, MP3.

Every function takes and returns mono float32 audio in [-1, 1] at 16 kHz unless stated,
so a clip of either class can go through the same chain. Lossy codecs use PyAV (FFmpeg);
resampling uses soxr.
"""

from __future__ import annotations

import fractions
from typing import Literal

import av
import numpy as np
import soxr

SAMPLE_RATE_HZ = 16000
NARROWBAND_HZ = 8000
PACKET_S = 0.02  # one RTP packet of audio
MU = 255.0
A_LAW_A = 87.6

Channel = Literal["wideband", "telephone", "telephone-alaw", "opus", "mp3"]
CHANNELS: tuple[Channel, ...] = ("wideband", "telephone", "telephone-alaw", "opus", "mp3")


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample with soxr (high quality)."""
    if rate_in == rate_out:
        return _f32(x)
    return _f32(soxr.resample(_f32(x), rate_in, rate_out, quality="HQ"))


def mulaw_roundtrip(x: np.ndarray) -> np.ndarray:
    """Quantise to 8-bit G.711 mu-law and back (continuous companding, 8-bit grid)."""
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    q = np.round(y * 127.0) / 127.0
    return _f32(np.sign(q) * ((1.0 + MU) ** np.abs(q) - 1.0) / MU)


def alaw_roundtrip(x: np.ndarray) -> np.ndarray:
    """Quantise to 8-bit G.711 A-law and back (continuous companding, 8-bit grid)."""
    x = np.clip(x, -1.0, 1.0)
    ax = np.abs(x)
    ln_a = 1.0 + np.log(A_LAW_A)
    small = ax < 1.0 / A_LAW_A
    y = np.where(small, A_LAW_A * ax / ln_a, (1.0 + np.log(np.maximum(A_LAW_A * ax, 1e-12))) / ln_a)
    q = np.round(y * 127.0) / 127.0
    inv_small = q * ln_a / A_LAW_A
    inv_large = np.exp(q * ln_a - 1.0) / A_LAW_A
    return _f32(np.sign(x) * np.where(q < 1.0 / ln_a, inv_small, inv_large))


def telephone(x: np.ndarray, law: Literal["mu", "a"] = "mu") -> np.ndarray:
    """16 kHz -> 8 kHz -> G.711 -> 16 kHz, as a SIP call arrives after the ingress upsamples."""
    nb = resample(x, SAMPLE_RATE_HZ, NARROWBAND_HZ)
    nb = mulaw_roundtrip(nb) if law == "mu" else alaw_roundtrip(nb)
    return resample(nb, NARROWBAND_HZ, SAMPLE_RATE_HZ)[: len(x)]


def codec_roundtrip(
    x: np.ndarray, codec: Literal["libopus", "libmp3lame"], bitrate: int, rate: int = 48000
) -> np.ndarray:
    """Encode and decode through an FFmpeg codec; output has the input's length at 16 kHz."""
    src = resample(x, SAMPLE_RATE_HZ, rate)
    pcm = (np.clip(src, -1.0, 1.0) * 32767.0).astype(np.int16)
    enc = av.CodecContext.create(codec, "w")
    enc.sample_rate = rate
    enc.layout = "mono"
    enc.format = av.AudioFormat("s16")
    enc.bit_rate = bitrate
    enc.time_base = fractions.Fraction(1, rate)
    enc.open()
    dec = av.CodecContext.create("mp3" if codec == "libmp3lame" else "libopus", "r")
    dec.sample_rate = rate
    dec.layout = "mono"
    if enc.extradata:
        dec.extradata = enc.extradata
    dec.open()
    frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    out: list[np.ndarray] = []
    for packet in [*enc.encode(frame), *enc.encode(None)]:
        for decoded in dec.decode(packet):
            out.append(decoded.to_ndarray().reshape(-1).astype(np.float32))
    y = np.concatenate(out) if out else np.zeros(0, np.float32)
    if y.dtype != np.float32 or np.abs(y).max(initial=0.0) > 1.5:
        y = y / 32768.0
    y = resample(y, rate, SAMPLE_RATE_HZ)
    return _align(y, len(x))  # FFmpeg decoders drop the priming samples


def _align(y: np.ndarray, n: int) -> np.ndarray:
    if len(y) < n:
        y = np.concatenate([y, np.zeros(n - len(y), np.float32)])
    return _f32(y[:n])


def packet_loss(x: np.ndarray, rng: np.random.Generator, loss: float) -> np.ndarray:
    """Drop 20 ms packets at random; conceal each by repeating the previous one, faded."""
    n = int(PACKET_S * SAMPLE_RATE_HZ)
    y = x.copy()
    prev = np.zeros(n, np.float32)
    fade = np.linspace(1.0, 0.3, n, dtype=np.float32)
    for start in range(0, len(y) - n + 1, n):
        if rng.random() < loss:
            y[start : start + n] = prev * fade
            prev = prev * 0.3
        else:
            prev = y[start : start + n].copy()
    return _f32(y)


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Add white or pinkish noise at `snr_db` below the clip's RMS (never zero)."""
    rms = float(np.sqrt(np.mean(x**2))) + 1e-6
    noise = rng.standard_normal(len(x)).astype(np.float32)
    if rng.random() < 0.5:
        noise = np.cumsum(noise) * 0.05
        noise -= np.convolve(noise, np.ones(64) / 64.0, mode="same").astype(np.float32)
    noise *= rms * 10 ** (-snr_db / 20.0) / (float(np.sqrt(np.mean(noise**2))) + 1e-9)
    return _f32(x + noise)


def apply_channel(x: np.ndarray, channel: Channel) -> np.ndarray:
    """The fixed evaluation chains: deterministic, one per named channel."""
    if channel == "wideband":
        return _f32(x)
    if channel == "telephone":
        return telephone(x, "mu")
    if channel == "telephone-alaw":
        return telephone(x, "a")
    if channel == "opus":
        return codec_roundtrip(x, "libopus", 16000)
    if channel == "mp3":
        return codec_roundtrip(x, "libmp3lame", 32000, rate=16000)
    raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
