"""The shared model runtime: one bounded queue of windows from every call, batched.

Flow (all on the event loop except the model run):

    submit(window, on_done) --> deque (bounded: `queue_windows`, drop OLDEST on overflow)
        --> batcher task: take up to `max_batch`, waiting at most `max_wait_ms` after the
            oldest window arrived --> model.score_batch on the runtime's own single-thread
            executor --> on_done(window, score) for each window, in submission order.

`submit` never blocks and never awaits, so the per-call worker keeps frame handling
synchronous; `score` is the awaitable form of the `ModelRuntime` Protocol. Every submitted
window gets exactly one `on_done` call: with its `WindowScore`, or with None when it was
dropped under overload, when the model failed on its batch, or when the runtime closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from alerts.metrics import Metrics
from alerts.types import WindowScore
from inference.config import ModelConfig
from inference.errors import RuntimeClosedError
from inference.model import OnnxModel
from inference.types import Window

logger = logging.getLogger(__name__)

ScoreCallback = Callable[[Window, WindowScore | None], None]
CLOSE_TIMEOUT_S = 5.0  # how long aclose waits for a model run in progress
_WARNED_CALLS_MAX = 1024  # calls remembered for warn-once-per-call on overload


class ModelRuntime(Protocol):
    """Scores windows off the event loop (STYLE.md 17); tests use a fake."""

    async def score(self, windows: Sequence[Window]) -> list[WindowScore]:
        """Score windows; dropped ones are missing from the result, order is kept."""
        ...

    def submit(self, window: Window, on_done: ScoreCallback) -> None:
        """Queue one window without waiting; `on_done` runs on the loop exactly once."""
        ...


def _resolver(future: asyncio.Future[WindowScore | None]) -> ScoreCallback:
    def resolve(_window: Window, score: WindowScore | None) -> None:
        if not future.done():
            future.set_result(score)

    return resolve


@dataclass(slots=True)
class _Item:
    window: Window
    on_done: ScoreCallback
    queued_s: float


class BatchingRuntime:
    """Dynamic batching over one `OnnxModel`, shared by all calls.

    Args:
        model: The loaded model (its `score_batch` runs on this runtime's executor thread).
        config: `max_batch`, `max_wait_ms`, `queue_windows`, `hop_s`.
        metrics: Where batch sizes, timings, drops and queue depth are observed.
        clock: Monotonic clock (the same one `Window.arrival_s` comes from).
    """

    def __init__(
        self,
        model: OnnxModel,
        config: ModelConfig,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._hop_s = config.hop_s if config.hop_s is not None else model.manifest.hop_s
        if config.window_s is not None:
            wanted = round(config.window_s * model.manifest.sample_rate)
            if wanted != model.window_samples:
                raise ValueError(
                    f"model.window_s = {config.window_s} but the model was loaded for "
                    f"{model.window_samples} samples; load it with window_s={config.window_s}"
                )
        self._queue: deque[_Item] = deque()
        self._more = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned: dict[str, None] = {}  # insertion-ordered set, bounded
        self._depth = metrics.queue_depth.labels("windows")

    def start(self) -> None:
        """Start the batcher task and the executor; call on the running loop."""
        if self._task is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="runtime:batcher")

    async def aclose(self) -> None:
        """Stop batching; windows still queued get `on_done(window, None)`."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, CLOSE_TIMEOUT_S)
        while self._queue:
            self._finish(self._queue.popleft(), None)
        self._depth.set(0)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def submit(self, window: Window, on_done: ScoreCallback) -> None:
        """Queue a window for scoring; never blocks. Runs on the loop.

        Raises:
            RuntimeClosedError: The runtime is not started or already closed.
            ValueError: The window's length is not the model's window length.
        """
        if self._task is None:
            raise RuntimeClosedError("model runtime is not running")
        if window.samples.shape != (self._model.window_samples,):
            raise ValueError(
                f"window must have shape [{self._model.window_samples}], "
                f"got {list(window.samples.shape)}"
            )
        if len(self._queue) >= self._config.queue_windows:
            self._drop_oldest()
        self._queue.append(_Item(window, on_done, self._clock()))
        self._depth.set(len(self._queue))
        self._more.set()

    async def score(self, windows: Sequence[Window]) -> list[WindowScore]:
        """Score windows and wait for all of them; dropped windows are left out."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[WindowScore | None]] = []
        for window in windows:
            future: asyncio.Future[WindowScore | None] = loop.create_future()
            self.submit(window, _resolver(future))
            futures.append(future)
        results = await asyncio.gather(*futures)
        return [r for r in results if r is not None]

    def _drop_oldest(self) -> None:
        item = self._queue.popleft()
        self._metrics.dropped_total.labels("runtime", "overload").inc()
        call_id = item.window.call_id
        if call_id not in self._warned:
            self._warned[call_id] = None
            if len(self._warned) > _WARNED_CALLS_MAX:
                del self._warned[next(iter(self._warned))]
            logger.warning(
                "model queue full (%d windows): dropping the oldest",
                self._config.queue_windows,
                extra={"call_id": call_id, "stage": "runtime"},
            )
        self._finish(item, None)

    async def _run(self) -> None:
        """Batcher task: forms batches and runs them one at a time on the executor."""
        try:
            while True:
                await self._wait_for_batch()
                count = min(len(self._queue), self._config.max_batch)
                batch = [self._queue.popleft() for _ in range(count)]
                self._depth.set(len(self._queue))
                await self._run_batch(batch)
        except Exception:
            logger.exception("model batcher stopped", extra={"stage": "runtime"})
            raise

    async def _wait_for_batch(self) -> None:
        """Return once a full batch is queued or the oldest window waited `max_wait_ms`."""
        while not self._queue:
            self._more.clear()
            await self._more.wait()
        deadline = self._queue[0].queued_s + self._config.max_wait_ms / 1000
        while len(self._queue) < self._config.max_batch:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._more.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._more.wait(), remaining)

    async def _run_batch(self, batch: list[_Item]) -> None:
        x = np.stack([item.window.samples for item in batch]).astype(np.float32, copy=False)
        loop = asyncio.get_running_loop()
        try:
            scores, elapsed = await loop.run_in_executor(self._executor, self._infer, x)
        except asyncio.CancelledError:
            for item in batch:
                self._finish(item, None)
            raise
        except Exception:
            logger.exception(
                "model run failed on %d windows", len(batch), extra={"stage": "runtime"}
            )
            self._metrics.dropped_total.labels("runtime", "error").inc(len(batch))
            for item in batch:
                self._finish(item, None)
            return
        self._observe(len(batch), elapsed)
        for item, value in zip(batch, scores, strict=True):
            self._finish(item, self._to_score(item.window, float(value)))

    def _infer(self, x: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], float]:
        """Runs on the executor thread: the blocking model call, timed."""
        began = time.perf_counter()
        scores = self._model.score_batch(x)
        return scores, time.perf_counter() - began

    def _observe(self, size: int, elapsed: float) -> None:
        self._metrics.inference_seconds.observe(elapsed)
        self._metrics.inference_batch_size.observe(size)
        self._metrics.windows_scored_total.inc(size)
        # Real-time budget: each window advances its participant by one hop of new speech.
        budget_s = size * self._hop_s
        if elapsed > budget_s:
            self._metrics.inference_slow_total.inc()
            logger.warning(
                "model run of %d windows took %.3f s, slower than the %.3f s of audio",
                size,
                elapsed,
                budget_s,
                extra={"stage": "runtime"},
            )

    def _to_score(self, window: Window, value: float) -> WindowScore:
        latency_s = max(0.0, self._clock() - window.arrival_s)
        self._metrics.score_latency_seconds.observe(latency_s)
        return WindowScore(
            call_id=window.call_id,
            participant_id=window.participant_id,
            index=window.index,
            start_s=window.start_s,
            end_s=window.end_s,
            score=value,
            speech_ratio=window.speech_ratio,
            latency_s=latency_s,
        )

    def _finish(self, item: _Item, score: WindowScore | None) -> None:
        try:
            item.on_done(item.window, score)
        except Exception:
            logger.exception(
                "score callback failed",
                extra={"call_id": item.window.call_id, "stage": "runtime"},
            )
