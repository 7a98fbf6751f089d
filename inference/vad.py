"""Voice activity detection per participant: webrtcvad plus an explicit hysteresis.

webrtcvad classifies each 20 ms frame on its own; a single voiced click should not start
speech and a short pause between words should not end it. `VadGate` therefore runs a
small state machine (STYLE.md 28):

    QUIET --voiced--> STARTING --`start_frames` voiced in a row--> SPEAKING
      ^                  |unvoiced                                   |unvoiced
      +------------------+                                           v
      +--- more than `hangover_ms` unvoiced --- STOPPING <--voiced-- (back to SPEAKING)

Frames in SPEAKING and STOPPING count as speech (the hangover keeps word endings). The
frames seen in STARTING are not speech when pushed; the caller keeps them as a pre-roll and
adds them once speech starts (see `VadGate.preroll_frames`).

Everything here is synchronous and cheap (microseconds per frame); it runs on the loop.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import webrtcvad

from inference.config import VadConfig
from inference.types import FRAME_BYTES, FRAME_MS, SAMPLE_RATE_HZ

SpeechClassifier = Callable[[bytes], bool]


class VadState(enum.Enum):
    """Hysteresis state of one participant's voice activity."""

    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"
    STOPPING = "stopping"


class VadGate:
    """Decides, frame by frame, whether a participant's audio is speech.

    Args:
        config: Aggressiveness, `start_frames` and `hangover_ms`.
        classifier: Per-frame voiced/unvoiced decision; webrtcvad by default. Tests may
            script it to check the hysteresis alone.
    """

    def __init__(self, config: VadConfig, classifier: SpeechClassifier | None = None) -> None:
        if classifier is None:
            vad = webrtcvad.Vad(config.aggressiveness)

            def classifier(pcm: bytes) -> bool:
                return bool(vad.is_speech(pcm, SAMPLE_RATE_HZ))

        self._classify = classifier
        self._start_frames = config.start_frames
        self._hangover_frames = config.hangover_ms // FRAME_MS
        self.state = VadState.QUIET
        self._count = 0  # voiced frames in STARTING, unvoiced frames in STOPPING

    @property
    def preroll_frames(self) -> int:
        """Frames before the one that starts speech that were voiced (seen in STARTING)."""
        return self._start_frames - 1

    def push(self, pcm: bytes) -> bool:
        """Classify one 20 ms frame (16 kHz s16le) and return whether it is part of speech.

        Raises:
            ValueError: The frame is not exactly `FRAME_BYTES` long.
        """
        if len(pcm) != FRAME_BYTES:
            raise ValueError(f"VAD frame must be {FRAME_BYTES} bytes (20 ms), got {len(pcm)}")
        voiced = self._classify(pcm)
        if self.state is VadState.QUIET:
            return self._on_quiet(voiced)
        if self.state is VadState.STARTING:
            return self._on_starting(voiced)
        if self.state is VadState.SPEAKING:
            return self._on_speaking(voiced)
        return self._on_stopping(voiced)

    def _on_quiet(self, voiced: bool) -> bool:
        if not voiced:
            return False
        self.state, self._count = VadState.STARTING, 0
        return self._on_starting(voiced)

    def _on_starting(self, voiced: bool) -> bool:
        if not voiced:
            self.state = VadState.QUIET
            return False
        self._count += 1
        if self._count >= self._start_frames:
            self.state = VadState.SPEAKING
            return True
        return False

    def _on_speaking(self, voiced: bool) -> bool:
        if voiced:
            return True
        if self._hangover_frames == 0:
            self.state = VadState.QUIET
            return False
        self.state, self._count = VadState.STOPPING, 0
        return self._on_stopping(voiced)

    def _on_stopping(self, voiced: bool) -> bool:
        if voiced:
            self.state = VadState.SPEAKING
            return True
        self._count += 1
        if self._count > self._hangover_frames:
            self.state = VadState.QUIET
            return False
        return True
