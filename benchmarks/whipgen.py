"""WebRTC load: aiortc peers publishing speech over WHIP, in a process of their own.

Each peer is a real `RTCPeerConnection` (ICE, DTLS, SRTP, Opus) sending a track that
plays the benchmark speech at 48 kHz in real time; it publishes with POST /whip and
ends with DELETE. aiortc does its crypto and Opus encoding in Python and C per peer, so
this generator is heavy: WebRTC runs use far fewer peers than the SIP runs.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import soundfile as sf
from aiohttp import ClientSession
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from streamer.resample import Resampler

RATE_HZ = 48000
PTIME_S = 0.02
TOKEN = "bench-token"


@dataclass(frozen=True, slots=True)
class WhipSpec:
    """What one WHIP worker does (see `loadgen.WorkerSpec` for the timing fields)."""

    base_url: str
    peers: int
    start_at: float
    ramp_s: float
    end_at: float
    speech: str
    seed: int


class _SpeechTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, samples: np.ndarray, offset: int) -> None:
        super().__init__()
        self._samples = samples
        self._pos = offset
        self._sent = 0
        self._start = 0.0

    async def recv(self) -> av.AudioFrame:
        n = int(RATE_HZ * PTIME_S)
        if not self._start:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._sent / RATE_HZ - time.monotonic()))
        idx = (self._pos + np.arange(n)) % len(self._samples)
        frame = av.AudioFrame.from_ndarray(
            self._samples[idx].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE_HZ
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, RATE_HZ)
        self._pos += n
        self._sent += n
        return frame

    def realtime_factor(self) -> float:
        """Audio handed to the encoder per second of wall time since the first frame."""
        elapsed = time.monotonic() - self._start if self._start else 0.0
        return self._sent / RATE_HZ / elapsed if elapsed > 0 else 0.0


async def _peer(
    spec: WhipSpec, http: ClientSession, samples: np.ndarray, offset: int
) -> tuple[str, float]:
    pc = RTCPeerConnection()
    track = _SpeechTrack(samples, offset)
    pc.addTrack(track)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sdp"}
    try:
        async with http.post(
            f"{spec.base_url}/whip", data=pc.localDescription.sdp, headers=headers
        ) as resp:
            if resp.status != 201:
                return f"status {resp.status}", 0.0
            location = resp.headers["Location"]
            answer = await resp.text()
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.sleep(max(0.0, spec.end_at - time.time()))
        factor = track.realtime_factor()
        async with http.delete(f"{spec.base_url}{location}", headers=headers):
            pass
        return "established", factor
    finally:
        await pc.close()


async def _run(spec: WhipSpec) -> dict[str, Any]:
    track, rate = sf.read(spec.speech, dtype="int16")
    samples = Resampler(int(rate), RATE_HZ).process(np.asarray(track, np.int16), last=True)
    rng = np.random.default_rng(spec.seed)
    await asyncio.sleep(max(0.0, spec.start_at - time.time()))
    gap = spec.ramp_s / max(1, spec.peers)
    async with ClientSession() as http:
        tasks = []
        for i in range(spec.peers):
            offset = int(rng.integers(len(samples)))
            tasks.append(asyncio.create_task(_peer(spec, http, samples, offset), name=f"peer{i}"))
            await asyncio.sleep(gap)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    report: dict[str, Any] = {"established": 0, "rejected": 0, "failed": 0, "failures": {}}
    factors = []
    for outcome in outcomes:
        if isinstance(outcome, tuple) and outcome[0] == "established":
            report["established"] += 1
            factors.append(outcome[1])
        else:
            why = str(outcome[0] if isinstance(outcome, tuple) else outcome)[:60]
            report["rejected" if why.startswith("status 503") else "failed"] += 1
            report["failures"][why] = report["failures"].get(why, 0) + 1
    report.update(packets_sent=0, ticker_lag_p99_ms=0.0, ticker_lag_max_ms=0.0)
    report["realtime_factor_min"] = round(min(factors), 3) if factors else 0.0
    return report


def whip_worker_main(spec: WhipSpec, results: Any) -> None:
    """Process entry point: run the peers, send the report."""
    results.put(asyncio.run(_run(spec)))
