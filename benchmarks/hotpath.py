"""The per-packet path alone, in one thread: RTP bytes -> parse -> jitter buffer -> G.711
-> 16 kHz -> 20 ms frames -> VAD -> chunker -> windows (handed to a runtime that answers
at once, no model). Reports CPU microseconds per packet, the figure that bounds how many
streams one event loop carries (50 packets/s per stream).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from alerts.metrics import Metrics
from alerts.types import CallInfo, Ingress, ParticipantInfo, WindowScore
from inference.call import Pipeline
from inference.config import VadConfig
from inference.runtime import ScoreCallback
from inference.types import Window
from streamer.g711 import ulaw_encode
from streamer.resample import FrameAssembler
from streamer.rtp import JitterBuffer, parse_rtp
from streamer.rtp_playout import RtpPlayout

_HEADER = struct.Struct("!BBHII")


class _InstantRuntime:
    """Answers every window at once with a fixed score (no model run)."""

    def __init__(self) -> None:
        self.windows = 0

    async def score(self, windows: Sequence[Window]) -> list[WindowScore]:
        raise NotImplementedError

    def submit(self, window: Window, on_done: ScoreCallback) -> None:
        self.windows += 1
        on_done(window, None)


class _NullSink:
    def open_call(self, call: CallInfo) -> None: ...
    def add_participant(self, participant: ParticipantInfo) -> None: ...
    def push_scores(self, scores: list[WindowScore]) -> None: ...
    def add_audio(
        self, call_id: str, participant_id: str, audio_s: float, speech_s: float
    ) -> None: ...
    def close_call(self, call_id: str, reason: str) -> None: ...


def per_packet_us(speech: np.ndarray, streams: int = 50, seconds: float = 20.0) -> dict[str, Any]:
    """Push `seconds` of speech on each of `streams` streams; CPU time per packet."""
    runtime = _InstantRuntime()
    pipeline = Pipeline(
        runtime=runtime,
        scores=_NullSink(),
        vad=VadConfig(),
        window_s=2.0,
        hop_s=1.0,
        sample_rate=16000,
        metrics=Metrics(),
    )
    payload = ulaw_encode(speech)
    n_packets = int(seconds / 0.02)
    playouts = []
    for s in range(streams):
        pipeline.open_call(CallInfo(f"c{s}", Ingress.SIP, ""))
        pipeline.add_participant(ParticipantInfo(f"c{s}", "p"))
        playouts.append(RtpPlayout(FrameAssembler(f"c{s}", "p"), pipeline, JitterBuffer(16, 15)))
    packets = len(payload) // 160
    datagrams = [
        [
            _HEADER.pack(0x80, 0, k & 0xFFFF, k * 160, s)
            + payload[((k + 37 * s) % packets) * 160 :][:160]
            for s in range(streams)
        ]
        for k in range(n_packets)
    ]
    began = time.process_time()
    for k in range(n_packets):
        now = k * 0.02
        for playout, data in zip(playouts, datagrams[k], strict=True):
            playout.receive(parse_rtp(data), now)
    cpu = time.process_time() - began
    total = n_packets * streams
    return {
        "packets": total,
        "windows": runtime.windows,
        "us_per_packet": round(cpu / total * 1e6, 2),
        "streams_per_core": int(1.0 / (cpu / total * 50)),
    }
