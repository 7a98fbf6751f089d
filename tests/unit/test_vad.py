"""VAD hysteresis on constructed frames (scripted classifier and real webrtcvad)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from inference.config import VadConfig
from inference.types import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE_HZ
from inference.vad import VadGate, VadState

pytestmark = pytest.mark.unit
FRAME = bytes(FRAME_BYTES)


def _cfg(**values: int) -> VadConfig:
    return VadConfig.model_validate(values)


def _scripted(pattern: str, config: VadConfig) -> tuple[VadGate, str]:
    """Run the gate over a voiced ('1') / unvoiced ('0') script; return speech flags."""
    flags = iter(c == "1" for c in pattern)

    def classify(_: bytes) -> bool:
        return next(flags)

    gate = VadGate(config, classifier=classify)
    out = "".join("S" if gate.push(FRAME) else "." for _ in pattern)
    return gate, out


def test_needs_start_frames_in_a_row() -> None:
    config = _cfg(start_frames=3, hangover_ms=0)
    _, out = _scripted("1101110111", config)
    # 2 voiced then a gap: never started; then 3 in a row: speech from the third;
    # without hangover one unvoiced frame ends it, and it takes 3 voiced to restart.
    assert out == ".....S...S"


def test_hangover_keeps_short_pauses() -> None:
    config = _cfg(start_frames=1, hangover_ms=60)  # 3 frames
    gate, out = _scripted("1" + "000" + "1" + "0000", config)
    assert out == "S" + "SSS" + "S" + "SSS."
    assert gate.state is VadState.QUIET


def test_states_walk_through_the_machine() -> None:
    config = _cfg(start_frames=2, hangover_ms=40)
    seen = []
    flags = iter([True, True, False, True, False, False, False])
    gate = VadGate(config, classifier=lambda _: next(flags))
    for _ in range(7):
        gate.push(FRAME)
        seen.append(gate.state)
    assert seen == [
        VadState.STARTING,
        VadState.SPEAKING,
        VadState.STOPPING,
        VadState.SPEAKING,
        VadState.STOPPING,
        VadState.STOPPING,
        VadState.QUIET,
    ]
    assert gate.preroll_frames == 1


def test_rejects_wrong_frame_size() -> None:
    gate = VadGate(_cfg(), classifier=lambda _: True)
    with pytest.raises(ValueError, match=f"{FRAME_BYTES} bytes"):
        gate.push(bytes(100))


def _frames(signal: np.ndarray) -> Iterator[bytes]:
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
    for i in range(0, len(pcm) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        yield pcm[i : i + FRAME_SAMPLES].tobytes()


def _voiced_tone(seconds: float) -> np.ndarray:
    """A 150 Hz buzz with harmonics and a slow amplitude wobble: vowel-like for webrtcvad."""
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    wave = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12))
    return np.asarray(0.3 * wave / np.max(np.abs(wave)) * (0.75 + 0.25 * np.sin(2 * np.pi * 3 * t)))


def _speech_flags(signal: np.ndarray, config: VadConfig) -> list[bool]:
    gate = VadGate(config)
    return [gate.push(f) for f in _frames(signal)]


def test_webrtcvad_tone_is_speech_silence_is_not() -> None:
    config = _cfg(aggressiveness=2, start_frames=3, hangover_ms=200)
    silence = np.zeros(SAMPLE_RATE_HZ)
    flags = _speech_flags(np.concatenate([silence, _voiced_tone(1.0), silence]), config)
    assert not any(flags[:50])  # the first second is silence
    assert sum(flags[50:100]) >= 40  # most of the tone is speech
    # Speech continues at least 200 ms (10 frames) into the silence after the tone
    # (webrtcvad adds a few frames of its own), then stops for good.
    assert all(flags[100:110])
    assert flags[125:] == [False] * len(flags[125:])


def test_webrtcvad_quiet_noise_is_not_held_as_speech() -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, 0.002, SAMPLE_RATE_HZ * 2)
    flags = _speech_flags(noise, _cfg(aggressiveness=3, start_frames=3, hangover_ms=100))
    # webrtcvad needs a few frames to learn the noise floor; after that, no speech.
    assert flags[25:] == [False] * len(flags[25:])
