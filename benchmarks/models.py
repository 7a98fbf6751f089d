"""The model a benchmark runs: the shipped detector, or a stand-in of the same cost.

The shipped model (`onnx_models/clonewatch-detector.onnx`) is what every figure should use.
Where it does not exist yet, a stand-in is exported from `training.model.Detector` with
random weights (same graph, same width, same window): its scores mean nothing, but it costs
what the real one costs. Every result records which model it used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from streamer.config import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "onnx_models" / "clonewatch-detector.onnx"
STANDIN_DIR = Path.home() / ".cache" / "clonewatch-bench"
STANDIN_WINDOW_S = 2.0  # what training ships (training/__main__.py --window)


@dataclass(frozen=True, slots=True)
class BenchModel:
    """A model file and how results should name it."""

    path: Path
    label: str  # "shipped NAME VERSION" or "stand-in ..."
    window_s: float
    hop_s: float


def resolve_model(path: Path | None = None) -> BenchModel:
    """The given model, else the shipped one, else a stand-in (exported once, cached)."""
    if path is None and SHIPPED.is_file() and SHIPPED.with_suffix(".json").is_file():
        path = SHIPPED
    if path is not None:
        manifest = json.loads(path.with_suffix(".json").read_text())
        label = f"{manifest['name']} {manifest.get('version', '')}".strip()
        kind = "shipped" if path.resolve() == SHIPPED.resolve() else "given"
        return BenchModel(path, f"{kind}: {label}", manifest["window_s"], manifest["hop_s"])
    return _standin()


def _standin() -> BenchModel:
    onnx_path = STANDIN_DIR / "standin-detector.onnx"
    hop_s = STANDIN_WINDOW_S / 2
    if not onnx_path.is_file():
        _export_standin(onnx_path, hop_s)
    label = "stand-in: training.model.Detector(width=16), random weights, 2 s window"
    return BenchModel(onnx_path, label, STANDIN_WINDOW_S, hop_s)


def _export_standin(onnx_path: Path, hop_s: float) -> None:
    try:
        import torch

        from training.export import export_onnx, write_manifest
        from training.model import Detector
    except ImportError as exc:  # torch comes with `pip install -e .[train]`
        raise SystemExit(
            f"no shipped model at {SHIPPED} and no torch to export a stand-in ({exc}); "
            "pass --model PATH"
        ) from exc
    torch.manual_seed(0)
    export_onnx(Detector(width=16), onnx_path, int(STANDIN_WINDOW_S * 16000))
    write_manifest(
        onnx_path,
        {
            "name": "standin-detector",
            "version": "bench",
            "sample_rate": 16000,
            "window_s": STANDIN_WINDOW_S,
            "hop_s": hop_s,
            "input": "waveform",
            "output": "logit",
            "output_kind": "logit",
            "threshold": 0.5,
            "thresholds": {"eer": 0.5, "fpr_1pct": 0.8},
            "trained_on": "nothing: random weights, for timing only",
            "metrics": {},
        },
    )
