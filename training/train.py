"""The training loop: class- and source-balanced batches of random-length crops."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from training.data import Clip
from training.dataset import Variants
from training.model import build

logger = logging.getLogger(__name__)
CROP_CHOICES_S = (1.0, 1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 3.0)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run."""

    steps: int = 6000
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-3
    width: int = 96
    arch: str = "tdnn"
    seed: int = 0
    freq_mask: int = 24  # widest frequency band (bins) masked per training row


def sample_weights(clips: list[Clip], rows: np.ndarray) -> np.ndarray:
    """Per-row sampling weight: classes equal, sources within a class by sqrt of their size."""
    per_source = Counter((c.label, c.source) for c in clips)
    w = np.array([1.0 / math.sqrt(per_source[(clips[i].label, clips[i].source)]) for i in rows])
    labels = np.array([clips[i].label for i in rows])
    for lab in (0, 1):
        w[labels == lab] /= w[labels == lab].sum()
    return w / w.sum()


def make_batch(
    data: Variants, rows: np.ndarray, crop_s: float, rng: np.random.Generator
) -> torch.Tensor:
    """Random crops of `crop_s` seconds, preferring the untiled part of each row."""
    n = int(crop_s * 16000)
    out = np.empty((len(rows), n), np.float32)
    for k, r in enumerate(rows):
        hi = max(int(data.valid[r]) - n, 0)
        s = int(rng.integers(0, hi + 1))
        out[k] = data.audio[r, s : s + n]
    return torch.from_numpy(out / 32768.0)


def _mask_freq(spec: torch.Tensor, rng: np.random.Generator, widest: int) -> torch.Tensor:
    spec = spec.clone()
    floor = spec.amin(dim=(2, 3), keepdim=True)
    for k in range(spec.shape[0]):
        if rng.random() < 0.5:
            w = int(rng.integers(1, widest + 1))
            f0 = int(rng.integers(0, spec.shape[2] - w))
            spec[k, :, f0 : f0 + w] = floor[k]
    return spec


def forward_train(model: Any, x: torch.Tensor, rng: np.random.Generator, widest: int) -> Any:
    """Training forward pass with frequency masking between front end and classifier."""
    with torch.no_grad():
        spec = _mask_freq(model.front(x), rng, widest)
    return model.classify(spec)


def train(clips: list[Clip], data: Variants, rows: np.ndarray, cfg: TrainConfig) -> Any:
    """Train a fresh Detector on the given variant rows."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build(cfg.arch, cfg.width)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    weights = sample_weights(clips, data.clip[rows])
    labels = torch.tensor([clips[i].label for i in data.clip], dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    t0, running = time.time(), 0.0
    for step in range(cfg.steps):
        batch_rows = rng.choice(rows, size=cfg.batch, p=weights)
        x = make_batch(data, batch_rows, float(rng.choice(CROP_CHOICES_S)), rng)
        loss = loss_fn(forward_train(model, x, rng, cfg.freq_mask), labels[batch_rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step else value
        if step % 100 == 0 or step == cfg.steps - 1:
            logger.info("step %d loss %.4f (%.0f s)", step, running, time.time() - t0)
    return model.eval()
