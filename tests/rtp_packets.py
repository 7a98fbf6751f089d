"""Builders of G.711 RTP packets from generated signals, shared by the RTP tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from streamer.g711 import alaw_encode, ulaw_encode
from streamer.rtp import RtpPacket

RATE_HZ = 8000
PCMU = 0
PCMA = 8


def sine(
    duration_s: float, rate_hz: int = RATE_HZ, freq_hz: float = 440.0
) -> npt.NDArray[np.int16]:
    n = int(round(duration_s * rate_hz))
    t = np.arange(n) / rate_hz
    return (np.sin(2 * np.pi * freq_hz * t) * 12000).astype(np.int16)


def packetize(
    pcm: npt.NDArray[np.int16],
    *,
    ptime_ms: int = 20,
    payload_type: int = PCMU,
    ssrc: int = 0x1234ABCD,
    first_seq: int = 1000,
    first_ts: int = 160_000,
) -> list[RtpPacket]:
    """Cut 8 kHz audio into RTP packets of `ptime_ms`, seq and timestamp wrapping."""
    step = RATE_HZ * ptime_ms // 1000
    encode = ulaw_encode if payload_type == PCMU else alaw_encode
    return [
        RtpPacket(
            payload_type=payload_type,
            sequence_number=(first_seq + i) % 65536,
            timestamp=(first_ts + i * step) % (1 << 32),
            ssrc=ssrc,
            payload=encode(pcm[i * step : (i + 1) * step]),
            marker=i == 0,
        )
        for i in range(len(pcm) // step)
    ]


def upsampled_reference(
    pcm8k: npt.NDArray[np.int16], freq_hz: float = 440.0
) -> npt.NDArray[np.float64]:
    """The same sine as `sine()` at 16 kHz, for comparing resampled output."""
    n = len(pcm8k) * 2
    return np.sin(2 * np.pi * freq_hz * np.arange(n) / 16000) * 12000


def snr_db(signal: npt.NDArray[Any], reference: npt.NDArray[Any]) -> float:
    noise = np.asarray(signal, dtype=np.float64) - reference
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum(noise**2), 1e-9)))
