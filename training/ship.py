"""Ship a trained detector: ONNX export, parity, calibrated thresholds, speed, manifest."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from inference.eer import eer, threshold_at_fpr
from inference.model import to_scores
from training.calibrate import fit_calibration
from training.data import Clip
from training.experiments import EVAL_CHANNELS, RESULTS_DIR
from training.export import export_onnx, parity, write_manifest
from training.model import NO_CALIBRATION, Detector, GatedDetector, SpectrogramCnn
from training.speaker import SpeakerDetector, SpeakerEncoder
from training.validate import build_eval, score

logger = logging.getLogger(__name__)
ONNX_PATH = Path("onnx_models/clonewatch-detector.onnx")
NAME = "clonewatch-detector"


def load_weights(path: Path) -> Any:
    """A Detector, or a GatedDetector, with the saved state (eval mode)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)

    def detector() -> Detector:
        return Detector(width=int(saved["width"]), log_eps=float(saved["log_eps"]))

    model: Detector | GatedDetector = detector()
    if "gate_db" in saved:
        speaker = None
        if saved.get("speaker_head"):  # the encoder's weights are in the saved state
            speaker = SpeakerDetector(SpeakerEncoder(), int(saved["width"]))
        # weights saved before the width was recorded had 64 channels
        cnn = SpectrogramCnn(saved.get("cnn_channels", 64)) if saved.get("cnn_head") else None
        model = GatedDetector(detector(), detector(), float(saved["gate_db"]), speaker, cnn)
        # Weights saved before the sides were calibrated: each side's raw logits.
        saved["state"].setdefault("calibration", torch.tensor(NO_CALIBRATION))
    model.load_state_dict(saved["state"])
    return model.eval()


def calibrate(
    model: Any, clips: list[Clip], pcm: list[np.ndarray], window_s: float
) -> tuple[dict[str, float], np.ndarray]:
    """Thresholds (probabilities) on the dev split, telephone and wideband windows pooled.

    Every window the service would score (hop window_s / 2), not a few per clip: the 1%
    false-alarm point is a tail quantile, and the service sees every hop of a call. A
    GatedDetector's sides are first put on one scale from the same windows. Also returns
    64 of those windows, half of each channel, for the export's parity check.
    """
    dev = np.flatnonzero([c.fold == "dev" and not c.generated for c in clips])
    sets = [build_eval(clips, pcm, dev, ch, window_s, window_s / 2) for ch in EVAL_CHANNELS]
    labels = np.concatenate([s.labels for s in sets])
    if isinstance(model, GatedDetector):
        fit_calibration(model, np.concatenate([s.audio for s in sets]), labels)
    logits = np.concatenate([score(model, s.audio) for s in sets])
    _, thr_eer = eer(logits, labels)
    thr_1, _, _ = threshold_at_fpr(logits, labels)
    # Thresholds on the scale of the service's scores: the same logit -> score conversion.
    probs = to_scores(np.array([thr_eer, thr_1], dtype=np.float32), "logit")
    sample = np.concatenate([s.audio[:32] for s in sets])
    return {"eer": float(probs[0]), "fpr_1pct": float(probs[1])}, sample


def speed_ms(path: Path, window_samples: int, runs: int = 200) -> float:
    """Median milliseconds per window, batch 1, one onnxruntime thread."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = (np.random.default_rng(0).standard_normal((1, window_samples)) * 0.1).astype(np.float32)
    for _ in range(10):
        session.run(None, {"waveform": x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, {"waveform": x})
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000.0)


def collect_results(prefix: str) -> dict[str, Any]:
    """Figures of data/results/PREFIX-*.json keyed by experiment."""
    out = {}
    for f in sorted(RESULTS_DIR.glob(f"{prefix}-*.json")):
        out[f.stem.removeprefix(prefix + "-")] = json.loads(f.read_text())["results"]
    return out


def ship(
    clips: list[Clip], pcm: list[np.ndarray], weights: Path, window_s: float, prefix: str
) -> dict[str, Any]:
    """Export, check and describe the model; returns the manifest written."""
    model = load_weights(weights)
    n = int(window_s * 16000)
    thresholds, sample = calibrate(model, clips, pcm, window_s)
    export_onnx(model, ONNX_PATH, n)
    diff = parity(model, ONNX_PATH, sample)
    metrics: dict[str, Any] = {
        "onnx_parity_max_abs_diff": diff,
        "ms_per_window_1thread": round(speed_ms(ONNX_PATH, n), 3),
        "size_bytes": ONNX_PATH.stat().st_size,
        "validation": collect_results(prefix),
    }
    if isinstance(model, GatedDetector):
        metrics["side_calibration"] = [round(v, 4) for v in model.calibration.tolist()]
    manifest = {
        "name": NAME,
        # to the minute (UTC): events name the model that scored them, and a day can
        # ship two
        "version": time.strftime("%Y.%m.%d.%H%M", time.gmtime()),
        "sample_rate": 16000,
        "window_s": window_s,
        "hop_s": window_s / 2,
        "input": "waveform",
        "output": "logit",
        "output_kind": "logit",
        "threshold": thresholds["fpr_1pct"],
        "thresholds": thresholds,
        "trained_on": "clonewatch corpus train split (see MODEL_CARD.md), channel-simulated",
        "metrics": metrics,
    }
    write_manifest(ONNX_PATH, manifest)
    logger.info("shipped %s: parity %.2e, %s", ONNX_PATH, diff, metrics["ms_per_window_1thread"])
    return manifest
