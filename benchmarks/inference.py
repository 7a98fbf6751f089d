"""The inference stage alone: windows/s and latency per batch size, per execution provider.

Runs `OnnxModel.score_batch` directly (no event loop) on random speech-level audio, for
batch sizes 1..64, on the CPU with one intra-op thread and with all cores, and on CUDA
when onnxruntime can actually run there. A second part runs the real `BatchingRuntime`
under a saturating offered load with `max_batch = 1` and with dynamic batching, so the
executor hand-offs and the batcher's own overhead are included.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from alerts.metrics import Metrics
from inference.config import ModelConfig
from inference.model import OnnxModel
from inference.runtime import BatchingRuntime
from inference.types import Window

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
MIN_RUNS = 5
SECONDS_PER_POINT = 1.5
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def _audio(batch: int, samples: int) -> np.ndarray:
    rng = np.random.default_rng(batch)
    return (rng.standard_normal((batch, samples)) * 0.1).astype(np.float32)


def time_batches(model: OnnxModel, seconds: float = SECONDS_PER_POINT) -> list[dict[str, Any]]:
    """Latency (p50, p99) and windows/s of one model run, per batch size."""
    rows = []
    for batch in BATCH_SIZES:
        x = _audio(batch, model.window_samples)
        model.score_batch(x)  # warm-up: allocations, kernel choice
        times: list[float] = []
        began = time.perf_counter()
        while len(times) < MIN_RUNS or time.perf_counter() - began < seconds:
            t = time.perf_counter()
            model.score_batch(x)
            times.append(time.perf_counter() - t)
        times.sort()
        p50 = statistics.median(times)
        rows.append(
            {
                "batch": batch,
                "runs": len(times),
                "latency_p50_ms": round(p50 * 1000, 3),
                "latency_p99_ms": round(
                    times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 3
                ),
                "windows_per_s": round(batch / p50, 1),
            }
        )
    return rows


def _providers() -> list[tuple[str, list[str], int]]:
    cores = os.cpu_count() or 1
    out = [("cpu, 1 thread", [CPU], 1), (f"cpu, {cores} threads (all cores)", [CPU], cores)]
    return out


def cuda_usable(path: Path) -> str:
    """ "" when a session really runs on CUDA here, else why not."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return "not available here: onnxruntime build has no CUDA provider"
    if not Path("/dev/nvidiactl").exists():
        return "not available here: no NVIDIA device"
    try:
        model = OnnxModel.load(path, [CUDA, CPU], 0)
    except Exception as exc:  # a broken CUDA install is a result, not a crash
        return f"not available here: {exc}"
    if model.provider != CUDA:
        return "not available here: onnxruntime fell back to the CPU (CUDA libraries missing)"
    return ""


def run_stage(path: Path, window_s: float | None = None) -> dict[str, Any]:
    """Every provider configuration's batch table, plus the CUDA status."""
    results: dict[str, Any] = {"configs": []}
    for label, providers, threads in _providers():
        model = OnnxModel.load(path, providers, threads, window_s=window_s)
        results["configs"].append(
            {"label": label, "provider": model.provider, "rows": time_batches(model)}
        )
    why_not = cuda_usable(path)
    results["cuda"] = why_not or "available"
    if not why_not:
        model = OnnxModel.load(path, [CUDA, CPU], 0, window_s=window_s)
        results["configs"].append(
            {"label": "cuda", "provider": model.provider, "rows": time_batches(model)}
        )
    return results


def batching_gain(rows: list[dict[str, Any]], budget_ms: float) -> dict[str, Any]:
    """Best windows/s of a batch that fits the latency budget, against batch size 1."""
    one = rows[0]["windows_per_s"]
    fitting = [r for r in rows if r["latency_p99_ms"] <= budget_ms] or rows[:1]
    best = max(fitting, key=lambda r: r["windows_per_s"])
    return {
        "budget_ms": budget_ms,
        "best_batch": best["batch"],
        "best_windows_per_s": best["windows_per_s"],
        "batch1_windows_per_s": one,
        "gain": round(best["windows_per_s"] / one, 2),
    }


async def _saturate(model: OnnxModel, max_batch: int, count: int) -> dict[str, Any]:
    """Offer `count` windows at once to a BatchingRuntime; throughput and latency."""
    config = ModelConfig(max_batch=max_batch, max_wait_ms=20, queue_windows=count + 1)
    runtime = BatchingRuntime(model, config, Metrics())
    runtime.start()
    samples = _audio(1, model.window_samples)[0]
    latencies: list[float] = []
    done = asyncio.Event()
    began = time.monotonic()

    def on_done(window: Window, score: object) -> None:
        latencies.append(time.monotonic() - window.arrival_s)
        if len(latencies) == count:
            done.set()

    for i in range(count):
        window = Window("bench", "p", i, samples, 0.0, 2.0, 1.0, time.monotonic())
        runtime.submit(window, on_done)
    await done.wait()
    elapsed = time.monotonic() - began
    await runtime.aclose()
    latencies.sort()
    return {
        "max_batch": max_batch,
        "windows": count,
        "windows_per_s": round(count / elapsed, 1),
        "latency_p50_s": round(latencies[count // 2], 3),
        "latency_p99_s": round(latencies[int(count * 0.99)], 3),
    }


def run_runtime(path: Path, threads: int, count: int = 600) -> list[dict[str, Any]]:
    """BatchingRuntime at saturation, max_batch 1 against 8, 32 and 64."""
    model = OnnxModel.load(path, [CPU], threads)
    return [asyncio.run(_saturate(model, b, count)) for b in (1, 8, 32, 64)]
