"""The analysis pipeline end to end: frames -> VAD -> windows -> scores -> ScoreSink."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from alerts.metrics import Metrics
from alerts.types import CallInfo, Ingress, ParticipantInfo, WindowScore
from inference.call import ParticipantWorker, Pipeline
from inference.config import ModelConfig, VadConfig
from inference.model import OnnxModel
from inference.runtime import BatchingRuntime, ModelRuntime
from inference.types import FRAME_SAMPLES, SAMPLE_RATE_HZ, AudioFrame
from tests.fakes.models import write_test_model
from tests.fakes.runtime import FakeModelRuntime
from tests.fakes.sinks import FakeScoreSink

pytestmark = pytest.mark.unit
SR = SAMPLE_RATE_HZ
VAD = VadConfig.model_validate({"aggressiveness": 2, "start_frames": 3, "hangover_ms": 200})


def _tone(seconds: float, amplitude: float) -> np.ndarray:
    """A vowel-like buzz (150 Hz and harmonics) that webrtcvad takes for speech."""
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12))
    wobble = 0.75 + 0.25 * np.sin(2 * np.pi * 3 * t)  # syllable-rate envelope
    return np.asarray(amplitude * wobble * wave / np.max(np.abs(wave)))


def _utterance(amplitude: float) -> np.ndarray:
    silence = np.zeros(SR)
    return np.concatenate([silence, _tone(2.5, amplitude), silence])  # 4.5 s


def _frames(call_id: str, pid: str, signal: np.ndarray) -> Iterator[AudioFrame]:
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
    for seq, i in enumerate(range(0, len(pcm) - FRAME_SAMPLES + 1, FRAME_SAMPLES)):
        yield AudioFrame(
            call_id, pid, seq, pcm[i : i + FRAME_SAMPLES].tobytes(), i / SR, time.monotonic()
        )


def _pipeline(runtime: ModelRuntime, sink: FakeScoreSink, metrics: Metrics) -> Pipeline:
    return Pipeline(
        runtime=runtime,
        scores=sink,
        vad=VAD,
        window_s=1.0,
        hop_s=0.5,
        sample_rate=SR,
        metrics=metrics,
    )


async def _until(predicate: object, timeout_s: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def _open(pipeline: Pipeline, call_id: str, *pids: str) -> None:
    pipeline.open_call(CallInfo(call_id, Ingress.SIP, "+15550100"))
    for pid in pids:
        pipeline.add_participant(ParticipantInfo(call_id, pid, f"label-{pid}"))


@pytest.fixture
async def onnx_runtime(tmp_path: Path) -> AsyncIterator[tuple[BatchingRuntime, Metrics]]:
    model = OnnxModel.load(
        write_test_model(tmp_path, window_s=1.0, hop_s=0.5, gain=2.0, ref_rms=0.08),
        ("CPUExecutionProvider",),
        1,
    )
    metrics = Metrics()
    config = ModelConfig.model_validate({"max_batch": 8, "max_wait_ms": 5})
    runtime = BatchingRuntime(model, config, metrics)
    runtime.start()
    yield runtime, metrics
    await runtime.aclose()


async def test_frames_to_scores_with_a_tiny_onnx_model(
    onnx_runtime: tuple[BatchingRuntime, Metrics],
) -> None:
    runtime, metrics = onnx_runtime
    sink = FakeScoreSink()
    pipeline = _pipeline(runtime, sink, metrics)
    _open(pipeline, "c1", "loud", "quiet")
    for loud, quiet in zip(
        _frames("c1", "loud", _utterance(0.5)),
        _frames("c1", "quiet", _utterance(0.1)),
        strict=True,
    ):
        pipeline.push(loud)
        pipeline.push(quiet)
    pipeline.close_call("c1", "bye")
    await asyncio.wait_for(pipeline.drain(), 5.0)
    assert sink.closed == {"c1": "bye"}

    for pid, synthetic in (("loud", True), ("quiet", False)):
        scores = [s for s in sink.scores if s.participant_id == pid]
        audio_s, speech_s = sink.audio[("c1", pid)]
        assert audio_s == pytest.approx(4.5)
        assert 2.5 <= speech_s <= 3.0  # the tone plus VAD hangover, no leading silence
        # Speech-only windows: one at 1 s of speech, one per 0.5 s more, and the tail.
        hops = int((speech_s - 1.0 + 1e-9) / 0.5)
        tail = (speech_s - 1.0 - hops * 0.5) >= 0.5
        assert [s.index for s in scores] == list(range(1 + hops + tail))
        assert scores[0].start_s == pytest.approx(1.0, abs=0.03)  # the tone's onset
        assert all(s.end_s <= 3.9 for s in scores)  # nothing from the trailing silence
        first = scores[0].score  # a window wholly inside the tone
        assert (first > 0.9) if synthetic else (first < 0.2)
        assert all(0.0 <= s.score <= 1.0 and s.latency_s >= 0 for s in scores)

    total = len(sink.scores)
    assert metrics.registry.get_sample_value("clonewatch_windows_scored_total") == total
    assert metrics.registry.get_sample_value(
        "clonewatch_audio_seconds_total", {"ingress": "sip"}
    ) == pytest.approx(9.0)


async def test_close_waits_for_pending_windows_without_blocking_push() -> None:
    runtime = FakeModelRuntime([0.2, 0.9, 0.4], hold=True)
    sink = FakeScoreSink()
    pipeline = _pipeline(runtime, sink, Metrics())
    _open(pipeline, "c1", "a")
    _open(pipeline, "c2", "b")
    for frame in _frames("c1", "a", _utterance(0.3)):
        pipeline.push(frame)
    pipeline.close_call("c1", "bye")
    assert len(runtime.pending) >= 3
    assert sink.closed == {}  # still waiting for its windows
    assert pipeline.pending == len(runtime.pending)
    for frame in _frames("c2", "b", np.zeros(SR)):  # other calls keep flowing meanwhile
        pipeline.push(frame)
    assert sink.audio[("c2", "b")][0] == pytest.approx(1.0)
    assert sink.audio[("c2", "b")][1] == 0.0
    runtime.release(2)
    assert [s.score for s in sink.scores] == [0.2, 0.9]
    assert sink.closed == {}
    runtime.release()
    assert sink.closed == {"c1": "bye"}
    assert [s.index for s in sink.scores] == list(range(len(runtime.windows)))
    await asyncio.wait_for(pipeline.drain(), 1.0)


async def test_worker_error_ends_only_that_call() -> None:
    runtime = FakeModelRuntime(0.5)
    sink = FakeScoreSink()
    metrics = Metrics()
    pipeline = _pipeline(runtime, sink, metrics)
    _open(pipeline, "bad", "a")
    _open(pipeline, "good", "b")
    pipeline.push(AudioFrame("bad", "a", 0, b"\x00" * 7, 0.0, 0.0))  # not a 20 ms frame
    assert sink.closed == {"bad": "error"}
    for frame in _frames("good", "b", _utterance(0.3)):
        pipeline.push(frame)
    pipeline.push(AudioFrame("bad", "a", 1, bytes(640), 0.02, 0.0))  # ignored and counted
    pipeline.close_call("good", "bye")
    await _until(lambda: "good" in sink.closed)
    assert sink.closed["good"] == "bye"
    assert {s.call_id for s in sink.scores} == {"good"}
    dropped = metrics.registry.get_sample_value(
        "clonewatch_dropped_total", {"stage": "pipeline", "reason": "no-call"}
    )
    assert dropped == 1


async def test_lifecycle_is_forwarded_and_labels_update() -> None:
    sink = FakeScoreSink()
    pipeline = _pipeline(FakeModelRuntime(), sink, Metrics())
    _open(pipeline, "c1", "a")
    pipeline.add_participant(ParticipantInfo("c1", "a", "Alice <sip:alice@example.com>"))
    assert sink.calls["c1"].line == "+15550100"
    assert sink.participants[("c1", "a")].label == "Alice <sip:alice@example.com>"
    pipeline.push(next(_frames("c1", "late", np.zeros(FRAME_SAMPLES))))  # never added
    assert ("c1", "late") in sink.participants
    pipeline.close_call("c1", "cancel")
    assert sink.closed == {"c1": "cancel"}  # nothing pending: closed at once


async def test_aclose_shuts_every_call() -> None:
    runtime = FakeModelRuntime(0.7)
    sink = FakeScoreSink()
    pipeline = _pipeline(runtime, sink, Metrics())
    _open(pipeline, "c1", "a")
    _open(pipeline, "c2", "b")
    for frame in _frames("c1", "a", _utterance(0.3)):
        pipeline.push(frame)
    await pipeline.aclose()
    assert sink.closed == {"c1": "shutdown", "c2": "shutdown"}
    assert sink.scores and all(s.score == 0.7 for s in sink.scores)


def _score(index: int) -> WindowScore:
    return WindowScore("c", "p", index, 0.0, 1.0, 0.5, 1.0, 0.0)


def test_scores_are_delivered_in_window_order() -> None:
    worker = ParticipantWorker.__new__(ParticipantWorker)
    worker._next_index, worker._ready = 0, {}
    assert worker.deliver(1, _score(1)) == []
    assert [s.index for s in worker.deliver(0, _score(0))] == [0, 1]
    assert worker.deliver(2, None) == []  # a dropped window only advances the order
    assert [s.index for s in worker.deliver(3, _score(3))] == [3]


def test_rejects_a_model_rate_other_than_the_frame_rate() -> None:
    with pytest.raises(ValueError, match="16000"):
        Pipeline(
            runtime=FakeModelRuntime(),
            scores=FakeScoreSink(),
            vad=VAD,
            window_s=1.0,
            hop_s=0.5,
            sample_rate=8000,
            metrics=Metrics(),
        )
