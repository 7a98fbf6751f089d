"""Checks beside the error rates: shortcut features, time to alert, unseen generators."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from alerts.config import VerdictConfig
from alerts.policy import VerdictPolicy, resolve_thresholds
from alerts.types import Verdict, WindowScore
from inference.channels import Channel, apply_channel
from inference.eer import eer
from inference.evaldata import hop_windows
from inference.model import to_scores
from training.data import Clip
from training.dataset import Variants

FRAME = 320  # 20 ms


def _frame_db(x: np.ndarray) -> np.ndarray:
    frames = len(x) // FRAME
    power = np.mean(x[: frames * FRAME].reshape(frames, FRAME) ** 2, axis=1)
    db: np.ndarray = 10 * np.log10(power + 1e-12)
    return db


def shortcut_features(x: np.ndarray) -> dict[str, float]:
    """Trivial cues of one crop: level, leading silence, exact zeros, spectral holes, band."""
    db = _frame_db(x)
    lead = int(np.argmax(db > db.max() - 30.0)) * FRAME / 16000
    spec = np.abs(np.fft.rfft(x[: len(x) // 512 * 512].reshape(-1, 512) * np.hanning(512))) ** 2
    band = 10 * np.log10(spec[:, 96:256] + 1e-12)  # 3-8 kHz
    holes = float(np.mean(band < np.median(band, axis=1, keepdims=True) - 30.0))
    return {
        "level_dbfs": float(10 * np.log10(np.mean(x**2) + 1e-12)),
        "leading_silence_s": lead,
        "zero_fraction": float(np.mean(x == 0.0)),
        "spectral_holes": holes,
        "hf_ratio_db": float(
            10 * np.log10(spec[:, 224:].sum() / (spec[:, 64:128].sum() + 1e-12) + 1e-12)
        ),
        # The cue that picks the head of GatedDetector: energy above 4.2 kHz, of all.
        "high_band_share_db": float(
            10 * np.log10(spec[:, 135:].sum() / (spec.sum() + 1e-12) + 1e-12)
        ),
    }


def _best_eer(values: np.ndarray, labels: np.ndarray) -> float:
    e = eer(values, labels)[0]
    return round(min(e, 1.0 - e), 4)


def shortcut_check(
    clips: list[Clip], pcm: list[np.ndarray], data: Variants, rows: np.ndarray, seed: int = 0
) -> dict[str, Any]:
    """EER of one-feature classifiers, before (trimmed corpus) and after preprocessing."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(rows, size=min(3000, len(rows)), replace=False)
    after = [shortcut_features(data.audio[r, :32000].astype(np.float32) / 32768.0) for r in rows]
    after_labels = np.array([clips[data.clip[r]].label for r in rows])
    idx = np.unique(data.clip[rows])
    before = [shortcut_features(pcm[i].astype(np.float32) / 32768.0) for i in idx]
    before_labels = np.array([clips[i].label for i in idx])
    out: dict[str, Any] = {}
    for key in after[0]:
        out[key] = {
            "corpus_eer": _best_eer(np.array([f[key] for f in before]), before_labels),
            "training_eer": _best_eer(np.array([f[key] for f in after]), after_labels),
        }
    durations = np.array([len(pcm[i]) / 16000 for i in idx])
    out["duration_s"] = {"corpus_eer": _best_eer(durations, before_labels), "training_eer": 0.5}
    valid = data.valid[rows].astype(float)
    out["untiled_fraction"] = {"training_eer": _best_eer(valid, after_labels)}
    return out


def first_alert_s(scores: np.ndarray, manifest: dict[str, Any]) -> float | None:
    """Seconds of speech before the service's verdict policy first says `synthetic`.

    Uses the shipped `alerts.policy.VerdictPolicy` with its default settings and the
    manifest's thresholds; window k ends at window_s + k * hop_s seconds of speech.
    """
    config = VerdictConfig()
    thresholds = resolve_thresholds(config, manifest["thresholds"], manifest["threshold"], "")
    policy = VerdictPolicy(config, thresholds)
    for k, score in enumerate(scores.tolist()):
        end = manifest["window_s"] + k * manifest["hop_s"]
        policy.push(WindowScore("c", "p", k, end - manifest["window_s"], end, score, 1.0, 0.0))
        if policy.state == Verdict.SYNTHETIC:
            return float(end)
    return None


def replay_scores(
    session: ort.InferenceSession, pcm: np.ndarray, manifest: dict[str, Any], channel: Channel
) -> np.ndarray:
    """The service's scores of an int16 clip through `channel`, a window every `hop_s`."""
    x = apply_channel(pcm.astype(np.float32) / 32768.0, channel)
    w, hop = int(manifest["window_s"] * 16000), int(manifest["hop_s"] * 16000)
    batch = np.stack(hop_windows(x, w, hop)).astype(np.float32)
    (logits,) = session.run(["logit"], {"waveform": batch})
    return to_scores(np.asarray(logits, dtype=np.float32), "logit")  # as the service does


def _alert_summary(alerts: list[float | None]) -> dict[str, Any]:
    """Share of files alerted and the median / p90 seconds of speech before the alert."""
    hit = np.array([a for a in alerts if a is not None])
    return {
        "alerted": round(len(hit) / max(len(alerts), 1), 4),
        "median_s": round(float(np.median(hit)), 2) if len(hit) else None,
        "p90_s": round(float(np.percentile(hit, 90)), 2) if len(hit) else None,
    }


def time_to_alert(
    onnx_path: str,
    clips: list[Clip],
    pcm: list[np.ndarray],
    idx: np.ndarray,
    manifest: dict[str, Any],
    channel: Channel,
) -> dict[str, Any]:
    """Replay each clip's speech in windows every hop; first alert per spoof, humans alerted."""
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    alerts: dict[int, list[float | None]] = {0: [], 1: []}
    for i in idx:
        scores = replay_scores(session, pcm[i], manifest, channel)
        alerts[clips[i].label].append(first_alert_s(scores, manifest))
    spoof = _alert_summary(alerts[1])
    return {
        "policy": "alerts.policy.VerdictPolicy defaults: synthetic verdict = alert",
        "synthetic_files": len(alerts[1]),
        "synthetic_alerted": spoof["alerted"],
        "median_s": spoof["median_s"],
        "p90_s": spoof["p90_s"],
        "human_files": len(alerts[0]),
        "human_alerted": _alert_summary(alerts[0])["alerted"],
    }


def unseen_generators(
    onnx_path: str,
    manifest: dict[str, Any],
    humans: list[np.ndarray],
    spoofs: dict[str, list[np.ndarray]],
) -> dict[str, Any]:
    """The shipped model on generators it never saw, per generator and channel.

    `humans` are held-out human clips, `spoofs` int16 clips per generator name. Per
    channel: window EER of each generator's windows against the human ones, and the share
    of its files that raise an alert through the verdict policy, with the median time.
    """
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    out: dict[str, Any] = {}
    for channel in ("telephone", "wideband"):
        human = np.concatenate([replay_scores(session, x, manifest, channel) for x in humans])
        for name, clips in spoofs.items():
            scores = [replay_scores(session, x, manifest, channel) for x in clips]
            windows = np.concatenate(scores)
            labels = np.r_[np.zeros(len(human)), np.ones(len(windows))]
            alerts = _alert_summary([first_alert_s(s, manifest) for s in scores])
            out.setdefault(name, {"files": len(clips)})[channel] = {
                "window_eer": round(eer(np.r_[human, windows], labels)[0], 4),
                "files_alerted": alerts["alerted"],
                "median_s": alerts["median_s"],
            }
    return out
