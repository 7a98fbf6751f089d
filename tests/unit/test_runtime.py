"""BatchingRuntime: dynamic batching, max wait, drop-oldest overload, timing metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from alerts.metrics import Metrics
from alerts.types import WindowScore
from inference.config import ModelConfig
from inference.errors import RuntimeClosedError
from inference.model import OnnxModel
from inference.runtime import BatchingRuntime
from inference.types import Window
from tests.fakes.models import write_test_model

pytestmark = pytest.mark.unit
N = 8000  # 0.5 s windows at 16 kHz


@pytest.fixture
def model(tmp_path: Path) -> OnnxModel:
    return OnnxModel.load(
        write_test_model(tmp_path, window_s=0.5, hop_s=0.25), ("CPUExecutionProvider",), 1
    )


def _config(**values: Any) -> ModelConfig:
    return ModelConfig.model_validate(values)


def _window(index: int, level: float = 0.1, arrival_s: float | None = None) -> Window:
    return Window(
        call_id="call-1",
        participant_id="p",
        index=index,
        samples=np.full(N, level, np.float32),
        start_s=index * 0.25,
        end_s=index * 0.25 + 0.5,
        speech_ratio=1.0,
        arrival_s=time.monotonic() if arrival_s is None else arrival_s,
    )


class Collector:
    def __init__(self) -> None:
        self.done: list[tuple[int, WindowScore | None]] = []

    def __call__(self, window: Window, score: WindowScore | None) -> None:
        self.done.append((window.index, score))

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.done) < count:
            assert time.monotonic() < deadline, f"only {len(self.done)} of {count} done"
            await asyncio.sleep(0.005)


def _metric(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
async def make_runtime(
    model: OnnxModel,
) -> AsyncIterator[Callable[..., tuple[BatchingRuntime, Metrics]]]:
    made: list[BatchingRuntime] = []

    def make(m: OnnxModel | None = None, **config: Any) -> tuple[BatchingRuntime, Metrics]:
        metrics = Metrics()
        runtime = BatchingRuntime(m or model, _config(**config), metrics)
        runtime.start()
        made.append(runtime)
        return runtime, metrics

    yield make
    for runtime in made:
        await runtime.aclose()


async def test_windows_submitted_together_form_one_batch(make_runtime: Any) -> None:
    runtime, metrics = make_runtime(max_batch=8, max_wait_ms=50)
    got = Collector()
    levels = [0.5, 0.01, 0.1, 0.2, 0.05]
    for i, level in enumerate(levels):
        runtime.submit(_window(i, level), got)
    await got.wait_for(5)
    assert [i for i, _ in got.done] == [0, 1, 2, 3, 4]
    scores = [s.score for _, s in got.done if s is not None]
    expected = [1 / (1 + (0.1 / lv) ** 2) for lv in levels]  # sigmoid(ln(lv^2 / 0.1^2))
    assert scores == pytest.approx(expected, abs=1e-4)
    assert _metric(metrics, "clonewatch_inference_batch_size_count") == 1
    assert _metric(metrics, "clonewatch_inference_batch_size_sum") == 5
    assert _metric(metrics, "clonewatch_windows_scored_total") == 5
    assert _metric(metrics, "clonewatch_inference_seconds_count") == 1
    assert _metric(metrics, "clonewatch_queue_depth", queue="windows") == 0


async def test_max_batch_splits_large_bursts(make_runtime: Any) -> None:
    runtime, metrics = make_runtime(max_batch=4, max_wait_ms=20)
    got = Collector()
    for i in range(10):
        runtime.submit(_window(i), got)
    await got.wait_for(10)
    assert [i for i, _ in got.done] == list(range(10))
    assert _metric(metrics, "clonewatch_inference_batch_size_count") == 3
    assert _metric(metrics, "clonewatch_inference_batch_size_bucket", le="4.0") == 3


async def test_max_wait_is_honoured_for_a_lone_window(make_runtime: Any) -> None:
    runtime, _ = make_runtime(max_batch=8, max_wait_ms=150)
    got = Collector()
    began = time.monotonic()
    runtime.submit(_window(0), got)
    await got.wait_for(1)
    waited = time.monotonic() - began
    assert 0.14 <= waited < 2.0
    (_, score) = got.done[0]
    assert score is not None and score.latency_s >= 0.14


async def test_full_batch_does_not_wait(make_runtime: Any) -> None:
    runtime, _ = make_runtime(max_batch=2, max_wait_ms=5000)
    got = Collector()
    runtime.submit(_window(0), got)
    runtime.submit(_window(1), got)
    await got.wait_for(2, timeout_s=2.0)  # far below the 5 s max wait


async def test_overload_drops_the_oldest_and_counts(
    make_runtime: Any, caplog: pytest.LogCaptureFixture
) -> None:
    runtime, metrics = make_runtime(max_batch=8, max_wait_ms=10, queue_windows=3)
    got = Collector()
    for i in range(5):  # synchronous: the batcher cannot run in between
        runtime.submit(_window(i), got)
    assert _metric(metrics, "clonewatch_queue_depth", queue="windows") == 3
    await got.wait_for(5)
    assert [(i, s is None) for i, s in got.done] == [
        (0, True),
        (1, True),
        (2, False),
        (3, False),
        (4, False),
    ]
    assert _metric(metrics, "clonewatch_dropped_total", stage="runtime", reason="overload") == 2
    warnings = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(warnings) == 1  # once per call


async def test_latency_counts_from_window_arrival(make_runtime: Any) -> None:
    runtime, metrics = make_runtime(max_wait_ms=0)
    got = Collector()
    runtime.submit(_window(0, arrival_s=time.monotonic() - 0.3), got)
    await got.wait_for(1)
    (_, score) = got.done[0]
    assert score is not None and 0.3 <= score.latency_s < 2.0
    assert _metric(metrics, "clonewatch_score_latency_seconds_count") == 1


class _FailingModel(OnnxModel):
    def score_batch(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        raise RuntimeError("boom")


class _SlowModel(OnnxModel):
    def score_batch(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        time.sleep(0.05)  # runs on the executor thread: stands for a slow GPU
        return super().score_batch(x)


def _rebind(cls: type[OnnxModel], model: OnnxModel) -> OnnxModel:
    return cls(model._session, model.manifest, model.window_samples)


async def test_model_failure_answers_none_and_keeps_running(
    make_runtime: Any, model: OnnxModel
) -> None:
    runtime, metrics = make_runtime(_rebind(_FailingModel, model), max_wait_ms=0)
    got = Collector()
    runtime.submit(_window(0), got)
    await got.wait_for(1)
    assert got.done == [(0, None)]
    assert _metric(metrics, "clonewatch_dropped_total", stage="runtime", reason="error") == 1
    runtime.submit(_window(1), got)  # the batcher survived
    await got.wait_for(2)


async def test_slow_batches_are_counted(make_runtime: Any, model: OnnxModel) -> None:
    runtime, metrics = make_runtime(_rebind(_SlowModel, model), max_wait_ms=0, hop_s=0.01)
    got = Collector()
    runtime.submit(_window(0), got)
    await got.wait_for(1)
    assert _metric(metrics, "clonewatch_inference_slow_total") == 1


async def test_score_awaits_and_keeps_order(make_runtime: Any) -> None:
    runtime, _ = make_runtime(max_wait_ms=5)
    scores = await runtime.score([_window(3, 0.5), _window(4, 0.01)])
    assert [s.index for s in scores] == [3, 4]
    assert scores[0].score > 0.9 > 0.1 > scores[1].score


async def test_wrong_window_length_is_rejected(make_runtime: Any) -> None:
    runtime, _ = make_runtime()
    bad = Window("c", "p", 0, np.zeros(100, np.float32), 0.0, 0.1, 1.0, 0.0)
    with pytest.raises(ValueError, match=f"\\[{N}\\]"):
        runtime.submit(bad, Collector())


async def test_close_answers_queued_windows_and_refuses_more(model: OnnxModel) -> None:
    runtime = BatchingRuntime(model, _config(max_batch=8, max_wait_ms=5000), Metrics())
    runtime.start()
    got = Collector()
    runtime.submit(_window(0), got)
    await runtime.aclose()
    assert got.done == [(0, None)]
    with pytest.raises(RuntimeClosedError):
        runtime.submit(_window(1), got)


def test_window_override_must_match_the_loaded_model(model: OnnxModel) -> None:
    with pytest.raises(ValueError, match="window_s=1.0"):
        BatchingRuntime(model, _config(window_s=1.0), Metrics())
