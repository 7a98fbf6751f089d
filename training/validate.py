"""Held-out evaluation during training: windows of test clips through a fixed channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inference.channels import Channel, apply_channel
from inference.eer import eer, eer_interval, threshold_at_fpr
from inference.evaldata import hop_windows, windows_of
from training.data import Clip

MAX_WINDOWS = 3  # per clip and window length, so long clips do not dominate


@dataclass(frozen=True)
class EvalSet:
    """Windows of test clips: audio [K, n] float32, label and clip index per window."""

    audio: np.ndarray
    labels: np.ndarray
    clip: np.ndarray


def build_eval(
    clips: list[Clip],
    pcm: list[np.ndarray],
    idx: np.ndarray,
    channel: Channel,
    window_s: float,
    hop_s: float | None = None,
) -> EvalSet:
    """Apply `channel` to each whole (trimmed) clip, then cut it into windows.

    Up to MAX_WINDOWS side by side from the start of each clip, or with `hop_s` every
    window the service would score.
    """
    n = int(window_s * 16000)
    hop = None if hop_s is None else int(hop_s * 16000)
    audio, labels, owner = [], [], []
    for i in idx:
        x = apply_channel(pcm[i].astype(np.float32) / 32768.0, channel)
        for w in windows_of(x, n, MAX_WINDOWS) if hop is None else hop_windows(x, n, hop):
            audio.append(w)
            labels.append(clips[i].label)
            owner.append(i)
    return EvalSet(np.stack(audio), np.array(labels), np.array(owner))


@torch.no_grad()
def score(model: torch.nn.Module, audio: np.ndarray, batch: int = 128) -> np.ndarray:
    """Logits of the model for every window."""
    model.eval()
    out = [
        model(torch.from_numpy(np.ascontiguousarray(audio[i : i + batch]))).numpy()
        for i in range(0, len(audio), batch)
    ]
    return np.concatenate(out).astype(np.float64)


def summarise(logits: np.ndarray, ev: EvalSet, speakers: np.ndarray) -> dict[str, Any]:
    """Window EER, clip EER (mean logit per clip), the miss rate at 1% false alarms.

    With the window EER's 95% interval when the test's speakers are resampled (`speakers`:
    one per window): the figures are about new callers, and a speaker's windows err
    together.
    """
    w_eer, w_thr = eer(logits, ev.labels)
    low, high = eer_interval(logits, ev.labels, speakers)
    clips = np.unique(ev.clip)
    clip_logit = np.array([logits[ev.clip == c].mean() for c in clips])
    clip_label = np.array([ev.labels[ev.clip == c][0] for c in clips])
    c_eer, _ = eer(clip_logit, clip_label)
    thr1, fa1, miss1 = threshold_at_fpr(logits, ev.labels)
    return {
        "eer": round(w_eer, 4),
        "eer_95_by_speaker": [round(low, 4), round(high, 4)],
        "clip_eer": round(c_eer, 4),
        "threshold_eer_logit": round(w_thr, 4),
        "threshold_fpr1_logit": round(thr1, 4),
        "miss_at_fpr1": round(miss1, 4),
        "windows": int(len(logits)),
    }
