"""FakeModelRuntime: the `ModelRuntime` seam with scripted scores, for unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from alerts.types import WindowScore
from inference.runtime import ScoreCallback
from inference.types import Window

Script = Callable[[Window], float | None]


class FakeModelRuntime:
    """Scores windows with a script instead of a model.

    Args:
        script: A constant score, a list of scores taken in submission order (the last
            repeats), or a function of the window; a None score means "dropped".
        hold: When true, windows wait in `pending` until `release()`; otherwise they are
            answered on the next loop iteration (like a real runtime, never synchronously).
        latency_s: Reported as every score's latency.
    """

    def __init__(
        self,
        script: float | Sequence[float | None] | Script = 0.5,
        *,
        hold: bool = False,
        latency_s: float = 0.01,
    ) -> None:
        self._script = script
        self._taken = 0
        self.hold = hold
        self.latency_s = latency_s
        self.windows: list[Window] = []
        self.pending: list[tuple[Window, ScoreCallback]] = []

    def _value(self, window: Window) -> float | None:
        if callable(self._script):
            return self._script(window)
        if isinstance(self._script, int | float):
            return float(self._script)
        values = list(self._script)
        value = values[min(self._taken, len(values) - 1)]
        self._taken += 1
        return value

    def _score(self, window: Window) -> WindowScore | None:
        value = self._value(window)
        if value is None:
            return None
        return window.scored(value, self.latency_s)

    def submit(self, window: Window, on_done: ScoreCallback) -> None:
        self.windows.append(window)
        self.pending.append((window, on_done))
        if not self.hold:
            asyncio.get_running_loop().call_soon(self.release)

    def release(self, count: int | None = None) -> int:
        """Answer the oldest `count` pending windows (all by default); return how many."""
        n = len(self.pending) if count is None else min(count, len(self.pending))
        batch, self.pending = self.pending[:n], self.pending[n:]
        for window, on_done in batch:
            on_done(window, self._score(window))
        return n

    async def score(self, windows: Sequence[Window]) -> list[WindowScore]:
        scored = [self._score(w) for w in windows]
        self.windows.extend(windows)
        return [s for s in scored if s is not None]
