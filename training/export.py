"""ONNX export of a trained Detector, checked against PyTorch, and its manifest (NAME.json)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch


def export_onnx(model: torch.nn.Module, path: Path, window_samples: int) -> None:
    """Write the graph: input `waveform` [batch, samples], output `logit` [batch]."""
    model = model.eval()
    dummy = torch.zeros(1, window_samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["waveform"],
            output_names=["logit"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "logit": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def parity(model: torch.nn.Module, path: Path, audio: np.ndarray) -> float:
    """Max |PyTorch logit - onnxruntime logit| over the given windows (batches of 16)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for i in range(0, len(audio), 16):
            x = np.ascontiguousarray(audio[i : i + 16], dtype=np.float32)
            ref = model(torch.from_numpy(x)).numpy()
            (got,) = session.run(["logit"], {"waveform": x})
            worst = max(worst, float(np.max(np.abs(ref - got))))
    return worst


def write_manifest(path: Path, fields: dict[str, Any]) -> None:
    """NAME.json beside NAME.onnx (DESIGN.md, "Model contract")."""
    path.with_suffix(".json").write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
