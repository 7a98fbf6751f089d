"""Plain data types that cross into `alerts`, and the sink it offers upstream.

The consumer owns the interface: `inference` calls a `ScoreSink`, implemented here.
All durations are seconds; `media_s` counts from the start of a participant's audio.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class Ingress(enum.StrEnum):
    """How a call reached clonewatch (the event field `ingress`)."""

    SIP = "sip"
    SIPREC = "siprec"
    WEBRTC = "webrtc"
    REPLAY = "replay"


class Verdict(enum.StrEnum):
    """Per-participant decision, from least to most alarming."""

    LISTENING = "listening"  # not enough speech yet
    HUMAN = "human"
    SUSPECT = "suspect"
    SYNTHETIC = "synthetic"  # raises an alert


@dataclass(frozen=True, slots=True)
class CallInfo:
    """One monitored session: a SIP dialog, a SIPREC session, a WebRTC peer, a file."""

    call_id: str
    ingress: Ingress
    line: str  # the monitored line or trunk; "" when unknown


@dataclass(frozen=True, slots=True)
class ParticipantInfo:
    """One audio stream of a call, scored on its own."""

    call_id: str
    participant_id: str
    label: str = ""  # display name or AOR (SIPREC metadata, SIP From, file channel)


@dataclass(frozen=True, slots=True)
class WindowScore:
    """The model's calibrated score of one speech window.

    Attributes:
        call_id: Call the window belongs to.
        participant_id: Participant whose speech was scored.
        index: Window number within the participant, from 0.
        start_s: Media time of the window's first sample.
        end_s: Media time of the window's last sample.
        score: Probability in [0, 1] that the speech is machine-generated.
        speech_ratio: Share of the media span [start_s, end_s] that was speech.
        latency_s: Seconds from the arrival of the window's newest audio to its score.
    """

    call_id: str
    participant_id: str
    index: int
    start_s: float
    end_s: float
    score: float
    speech_ratio: float
    latency_s: float


class ScoreSink(Protocol):
    """Receives call lifecycle and window scores from `inference`; runs on the event loop."""

    def open_call(self, call: CallInfo) -> None:
        """A call started."""

    def add_participant(self, participant: ParticipantInfo) -> None:
        """A participant of an open call started sending audio."""

    def push_scores(self, scores: list[WindowScore]) -> None:
        """Scores of windows, in window order per participant."""

    def add_audio(self, call_id: str, participant_id: str, audio_s: float, speech_s: float) -> None:
        """Account audio and speech seconds seen for a participant (for the history)."""

    def close_call(self, call_id: str, reason: str) -> None:
        """A call ended; `reason` is e.g. "bye", "cancel", "rtp-timeout", "error", "eof"."""
