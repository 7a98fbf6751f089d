"""Cuts one participant's speech into overlapping model windows.

Only frames the VAD marked as speech are pushed, so the chunker sees speech-only audio
concatenated across pauses: silence never enters the model. A window holds the newest
`window_s` of that speech; the first is emitted once `window_s` of speech exists, and a
new one each time `hop_s` more has arrived. Windows end on frame boundaries.

Memory is bounded: only the frames overlapping the newest `window_s` of speech are kept.
Synchronous and cheap; runs on the event loop inside the participant's worker.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.types import Window


@dataclass(frozen=True, slots=True)
class _Piece:
    """A speech frame: float32 samples and the media time of its first sample."""

    samples: npt.NDArray[np.float32]
    start_s: float


class Chunker:
    """Collects a participant's speech frames and emits `Window`s.

    Args:
        window_s: Window length in seconds (the model manifest's, or the config override).
        hop_s: Seconds of new speech between windows.
        sample_rate: Rate of the pushed samples, in Hz.
        call_id: Copied into every window.
        participant_id: Copied into every window.
    """

    def __init__(
        self,
        window_s: float,
        hop_s: float,
        sample_rate: int,
        *,
        call_id: str = "",
        participant_id: str = "",
    ) -> None:
        if window_s <= 0 or hop_s <= 0 or sample_rate <= 0:
            raise ValueError(
                f"window_s, hop_s and sample_rate must be > 0, got {window_s}, {hop_s}, "
                f"{sample_rate}"
            )
        self.window_samples = round(window_s * sample_rate)
        self.hop_samples = max(1, round(hop_s * sample_rate))
        self.sample_rate = sample_rate
        self.call_id = call_id
        self.participant_id = participant_id
        self._pieces: deque[_Piece] = deque()
        self._kept = 0  # samples held in _pieces
        self._total = 0  # speech samples pushed so far
        self._scored_until = 0  # _total at the end of the last emitted window
        self._next_emit = self.window_samples  # _total at which the next window is due
        self._index = 0
        self._end_s = 0.0
        self._arrival_s = 0.0

    @property
    def speech_s(self) -> float:
        """Seconds of speech pushed so far."""
        return self._total / self.sample_rate

    def push(
        self, samples: npt.NDArray[np.float32], start_s: float, arrival_s: float
    ) -> list[Window]:
        """Add one speech frame; return the windows it completes (usually none or one).

        Args:
            samples: float32 mono audio in [-1, 1], shape [n].
            start_s: Media time of the frame's first sample.
            arrival_s: Monotonic arrival time of the frame (for latency).
        """
        if len(samples) == 0:
            return []
        self._pieces.append(_Piece(samples, start_s))
        self._kept += len(samples)
        self._total += len(samples)
        self._end_s = start_s + len(samples) / self.sample_rate
        self._arrival_s = arrival_s
        self._trim()
        windows = []
        if self._total >= self._next_emit:
            windows.append(self._emit(self._newest(self.window_samples)))
            # A frame longer than the hop skips hops rather than repeating the same window.
            while self._next_emit <= self._total:
                self._next_emit += self.hop_samples
        return windows

    def flush(self) -> list[Window]:
        """At the end of the call, score speech no window has covered yet.

        A final window is emitted when at least half a window of speech arrived after the
        end of the last window. When a full window of speech exists it is simply the newest
        `window_s` (overlapping the previous window more than a hop). When less exists (a
        short utterance), the speech is repeated end to end until the window is full: a
        repetition keeps the statistics of speech, while zero padding would feed the model
        the digital silence it never sees otherwise.
        """
        unscored = self._total - self._scored_until
        if unscored == 0 or unscored * 2 < self.window_samples:
            return []
        audio = self._newest(min(self._kept, self.window_samples))
        if len(audio) < self.window_samples:
            audio = np.resize(audio, self.window_samples)  # tiles the speech
        window = self._emit(audio, speech_samples=min(self._kept, self.window_samples))
        self._next_emit = self._total + self.hop_samples
        return [window]

    def _trim(self) -> None:
        """Drop frames that lie entirely before the newest `window_samples` of speech."""
        while self._pieces and self._kept - len(self._pieces[0].samples) >= self.window_samples:
            self._kept -= len(self._pieces.popleft().samples)

    def _newest(self, n: int) -> npt.NDArray[np.float32]:
        audio = np.concatenate([p.samples for p in self._pieces])
        return audio[len(audio) - n :].astype(np.float32, copy=False)

    def _first_sample_s(self, n: int) -> float:
        """Media time of the first of the newest `n` kept samples."""
        skip = self._kept - n
        for piece in self._pieces:
            if skip < len(piece.samples):
                return piece.start_s + skip / self.sample_rate
            skip -= len(piece.samples)
        return self._end_s

    def _emit(self, audio: npt.NDArray[np.float32], speech_samples: int | None = None) -> Window:
        speech = len(audio) if speech_samples is None else speech_samples
        start_s = self._first_sample_s(speech)
        span_s = self._end_s - start_s
        ratio = min(1.0, speech / self.sample_rate / span_s) if span_s > 0 else 1.0
        window = Window(
            call_id=self.call_id,
            participant_id=self.participant_id,
            index=self._index,
            samples=audio,
            start_s=start_s,
            end_s=self._end_s,
            speech_ratio=ratio,
            arrival_s=self._arrival_s,
        )
        self._index += 1
        self._scored_until = self._total
        return window
