"""The shared model runtime: one bounded queue of windows from every call, batched.

Flow:

    submit(window, on_done)           [event loop]
        --> deque (bounded: `queue_windows`, drop OLDEST on overflow)
        --> model thread: take up to `max_batch`, waiting at most `max_wait_ms` after the
            oldest window arrived --> model.score_batch            [the runtime's thread]
        --> one call_soon_threadsafe per batch --> on_done(window, score) for each
            window, in submission order                             [event loop]

The batcher lives on the model thread rather than as a task on the loop: forming a batch
and running it then costs the loop nothing, and a loop busy with thousands of RTP packets
per iteration cannot slow the model down to one batch per loop iteration (the failure
the capacity benchmark found with a loop-side batcher: windows/s collapsed under load).
The loop pays one hand-off per batch, not per window.

`submit` never blocks and never awaits, so the per-call worker keeps frame handling
synchronous; `score` is the awaitable form of the `ModelRuntime` Protocol. Every submitted
window gets exactly one `on_done` call: with its `WindowScore`, or with None when it was
dropped under overload, when the model failed on its batch, or when the runtime closed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
        model: The loaded model (its `score_batch` runs on this runtime's own thread).
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
        self._queue: deque[_Item] = deque()  # shared with the model thread: under _cond
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._warned: dict[str, None] = {}  # insertion-ordered set, bounded
        self._depth = metrics.queue_depth.labels("windows")

    def start(self) -> None:
        """Start the model thread; call on the running loop (results come back to it)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._thread = threading.Thread(target=self._work, name="model", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        """Stop batching; windows still queued get `on_done(window, None)`.

        A batch already running finishes (bounded by `CLOSE_TIMEOUT_S`) and is delivered.
        """
        thread, self._thread = self._thread, None
        if thread is not None:
            with self._cond:
                self._running = False
                self._cond.notify_all()
            await asyncio.to_thread(thread.join, CLOSE_TIMEOUT_S)
            if thread.is_alive():
                logger.warning("model thread still busy at close", extra={"stage": "runtime"})
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
        for item in left:
            self._finish(item, None)
        self._depth.set(0)

    def submit(self, window: Window, on_done: ScoreCallback) -> None:
        """Queue a window for scoring; never blocks. Runs on the loop.

        Raises:
            RuntimeClosedError: The runtime is not started or already closed.
            ValueError: The window's length is not the model's window length.
        """
        if self._thread is None:
            raise RuntimeClosedError("model runtime is not running")
        if window.samples.shape != (self._model.window_samples,):
            raise ValueError(
                f"window must have shape [{self._model.window_samples}], "
                f"got {list(window.samples.shape)}"
            )
        dropped = None
        with self._cond:
            if len(self._queue) >= self._config.queue_windows:
                dropped = self._queue.popleft()
            self._queue.append(_Item(window, on_done, self._clock()))
            depth = len(self._queue)
            # Wake the thread only when it can act: a first window starts its wait, a
            # full batch ends it. Otherwise it wakes at the deadline by itself, so most
            # submits cost no thread switch.
            if depth == 1 or depth >= self._config.max_batch:
                self._cond.notify()
        self._depth.set(depth)
        if dropped is not None:
            self._drop(dropped)

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

    def _drop(self, item: _Item) -> None:
        """An overflowed window (on the loop): count it, warn once per call, answer None."""
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

    # -- the model thread -------------------------------------------------------------

    def _work(self) -> None:
        """Model thread: form batches and run them one at a time until closed."""
        try:
            while (batch := self._next_batch()) is not None:
                self._run_batch(batch)
        except Exception:
            logger.exception("model batcher stopped", extra={"stage": "runtime"})
            raise

    def _next_batch(self) -> list[_Item] | None:
        """Wait for a full batch or for the oldest window's `max_wait_ms`; None once closed."""
        max_batch, max_wait_s = self._config.max_batch, self._config.max_wait_ms / 1000
        with self._cond:
            while self._running and not self._queue:
                self._cond.wait()
            while self._running and len(self._queue) < max_batch:
                remaining = self._queue[0].queued_s + max_wait_s - self._clock()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if not self._running:
                return None
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), max_batch))]
            self._depth.set(len(self._queue))
            return batch

    def _run_batch(self, batch: list[_Item]) -> None:
        """Model thread: run one batch, hand the outcome to the loop in one callback."""
        try:
            x = np.stack([item.window.samples for item in batch]).astype(np.float32, copy=False)
            began = time.perf_counter()
            scores = self._model.score_batch(x)
            elapsed = time.perf_counter() - began
        except Exception:
            logger.exception(
                "model run failed on %d windows", len(batch), extra={"stage": "runtime"}
            )
            self._post(self._failed, batch)
            return
        self._post(self._deliver, batch, scores, elapsed)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is waiting for these any more
            logger.warning("loop closed; %d windows unanswered", len(args[0]))

    # -- back on the loop -------------------------------------------------------------

    def _deliver(self, batch: list[_Item], scores: npt.NDArray[np.float32], elapsed: float) -> None:
        self._observe(len(batch), elapsed)
        for item, value in zip(batch, scores, strict=True):
            self._finish(item, self._to_score(item.window, float(value)))

    def _failed(self, batch: list[_Item]) -> None:
        self._metrics.dropped_total.labels("runtime", "error").inc(len(batch))
        for item in batch:
            self._finish(item, None)

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
        return window.scored(value, latency_s)

    def _finish(self, item: _Item, score: WindowScore | None) -> None:
        try:
            item.on_done(item.window, score)
        except Exception:
            logger.exception(
                "score callback failed",
                extra={"call_id": item.window.call_id, "stage": "runtime"},
            )
