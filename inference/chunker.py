"""Cuts one participant's speech into overlapping model windows.

Only frames the VAD marked as speech are pushed, so the chunker sees speech-only audio
concatenated across pauses: silence never enters the model. A window holds the newest
`window_s` of that speech; the first is emitted once `window_s` of speech exists, and a
new one each time `hop_s` more has arrived. Windows end on frame boundaries.

Memory is bounded: the newest `window_s` of speech sits in a flat buffer of two windows
(each push is one copy into it, each window one copy out of it; the buffer is slid back
once per window of speech), and the media time of that speech is kept as a few spans,
one per run of contiguous frames, not one object per frame. Synchronous and cheap (a few
microseconds per 20 ms frame); runs on the event loop inside the participant's worker.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from inference.types import Window

_CONTIGUOUS_S = 1e-6  # a frame starting this close to the previous end extends its span


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
        self._buf = np.zeros(2 * self.window_samples, np.float32)
        self._end = 0  # samples [_end - _kept, _end) of _buf are the newest speech
        self._kept = 0  # samples held: min(speech pushed, window_samples)
        # Runs of contiguous speech: [first sample's index in the whole speech, media time].
        self._spans: deque[tuple[int, float]] = deque()
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
        n = len(samples)
        if n == 0:
            return []
        if not self._spans or abs(start_s - self._end_s) > _CONTIGUOUS_S:
            self._spans.append((self._total, start_s))
        self._store(samples)
        self._total += n
        self._end_s = start_s + n / self.sample_rate
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

    def _store(self, samples: npt.NDArray[np.float32]) -> None:
        """Append to the flat buffer, sliding the newest window to the front when full."""
        n, window = len(samples), self.window_samples
        if n >= window:
            self._buf[:window] = samples[n - window :]
            self._end = window
        else:
            if self._end + n > len(self._buf):
                self._buf[:window] = self._buf[self._end - window : self._end]
                self._end = window
            self._buf[self._end : self._end + n] = samples
            self._end += n
        self._kept = min(self._kept + n, window)

    def _trim(self) -> None:
        """Drop spans that end before the newest `window_samples` of speech begin."""
        first_kept = self._total - self._kept
        while len(self._spans) > 1 and self._spans[1][0] <= first_kept:
            self._spans.popleft()

    def _newest(self, n: int) -> npt.NDArray[np.float32]:
        return self._buf[self._end - n : self._end].copy()

    def _first_sample_s(self, n: int) -> float:
        """Media time of the first of the newest `n` kept samples."""
        first = self._total - n
        for begin, start_s in reversed(self._spans):
            if begin <= first:
                return start_s + (first - begin) / self.sample_rate
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
