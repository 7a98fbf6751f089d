"""Plain data types of the analysis stage, and the sink it offers to ingress.

The consumer owns the interface: `streamer` calls a `FrameSink`, implemented here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from alerts.types import CallInfo, ParticipantInfo, WindowScore

SAMPLE_RATE_HZ = 16000  # every AudioFrame is normalised to this rate at ingress
FRAME_MS = 20  # a frame size webrtcvad accepts
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2  # s16le


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """20 ms of one participant's audio: 16 kHz mono signed 16-bit little-endian PCM.

    Attributes:
        call_id: Call the frame belongs to.
        participant_id: Participant who sent it.
        seq: Frame number within the participant, from 0, gaps filled by ingress.
        pcm: Exactly `FRAME_BYTES` bytes.
        start_s: Media time of the first sample (seconds since the participant's start).
        arrival_s: `time.monotonic()` when the newest packet in this frame arrived;
            replay sets it to when the frame was read. Used for latency only.
    """

    call_id: str
    participant_id: str
    seq: int
    pcm: bytes
    start_s: float
    arrival_s: float

    @property
    def duration_s(self) -> float:
        """Length of the frame in seconds."""
        return len(self.pcm) / 2 / SAMPLE_RATE_HZ


@dataclass(frozen=True, slots=True, eq=False)
class Window:
    """A span of one participant's speech, `window_s` long, ready for the model.

    Attributes:
        call_id: Call the window belongs to.
        participant_id: Participant whose speech it is.
        index: Window number within the participant, from 0.
        samples: float32 mono audio in [-1, 1] at the model's rate, shape [samples].
        start_s: Media time of the first sample.
        end_s: Media time of the end of the last sample.
        speech_ratio: Share of [start_s, end_s] that was speech.
        arrival_s: Monotonic arrival time of the newest audio in the window.
    """

    call_id: str
    participant_id: str
    index: int
    samples: npt.NDArray[np.float32] = field(repr=False)
    start_s: float
    end_s: float
    speech_ratio: float
    arrival_s: float

    def scored(self, score: float, latency_s: float) -> WindowScore:
        """This window's score, as handed to `alerts`."""
        return WindowScore(
            call_id=self.call_id,
            participant_id=self.participant_id,
            index=self.index,
            start_s=self.start_s,
            end_s=self.end_s,
            score=score,
            speech_ratio=self.speech_ratio,
            latency_s=latency_s,
        )


class FrameSink(Protocol):
    """Where ingress delivers calls and audio; every method runs on the event loop."""

    def open_call(self, call: CallInfo) -> None:
        """Start a call; participants are added next."""

    def add_participant(self, participant: ParticipantInfo) -> None:
        """Start a participant of an open call (a SIPREC stream, a channel, a track)."""

    def push(self, frame: AudioFrame) -> None:
        """One 20 ms frame; must not block. Frames of a participant come in `seq` order."""

    def close_call(self, call_id: str, reason: str) -> None:
        """End a call and all its participants; pending windows are still scored."""
