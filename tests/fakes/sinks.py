"""Recording fakes for the two sink seams (FrameSink, ScoreSink)."""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.types import CallInfo, ParticipantInfo, WindowScore
from inference.types import AudioFrame


@dataclass
class FakeFrameSink:
    """Records everything ingress delivers."""

    calls: dict[str, CallInfo] = field(default_factory=dict)
    participants: dict[tuple[str, str], ParticipantInfo] = field(default_factory=dict)
    frames: list[AudioFrame] = field(default_factory=list)
    closed: dict[str, str] = field(default_factory=dict)

    def open_call(self, call: CallInfo) -> None:
        self.calls[call.call_id] = call

    def add_participant(self, participant: ParticipantInfo) -> None:
        self.participants[(participant.call_id, participant.participant_id)] = participant

    def push(self, frame: AudioFrame) -> None:
        self.frames.append(frame)

    def close_call(self, call_id: str, reason: str) -> None:
        self.closed[call_id] = reason

    def frames_of(self, call_id: str, participant_id: str) -> list[AudioFrame]:
        return [
            f for f in self.frames if f.call_id == call_id and f.participant_id == participant_id
        ]


@dataclass
class FakeScoreSink:
    """Records everything the analysis stage delivers."""

    calls: dict[str, CallInfo] = field(default_factory=dict)
    participants: dict[tuple[str, str], ParticipantInfo] = field(default_factory=dict)
    scores: list[WindowScore] = field(default_factory=list)
    audio: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    closed: dict[str, str] = field(default_factory=dict)

    def open_call(self, call: CallInfo) -> None:
        self.calls[call.call_id] = call

    def add_participant(self, participant: ParticipantInfo) -> None:
        self.participants[(participant.call_id, participant.participant_id)] = participant

    def push_scores(self, scores: list[WindowScore]) -> None:
        self.scores.extend(scores)

    def add_audio(self, call_id: str, participant_id: str, audio_s: float, speech_s: float) -> None:
        old_audio, old_speech = self.audio.get((call_id, participant_id), (0.0, 0.0))
        self.audio[(call_id, participant_id)] = (old_audio + audio_s, old_speech + speech_s)

    def close_call(self, call_id: str, reason: str) -> None:
        self.closed[call_id] = reason
