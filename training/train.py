"""The training loop: class-balanced batches of random-length crops."""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import soxr
import torch
from torch import nn

from training.data import Clip
from training.dataset import Variants
from training.model import CNN_CHANNELS, Detector, SpectrogramCnn
from training.speaker import SpeakerDetector

Head = Detector | SpeakerDetector | SpectrogramCnn

logger = logging.getLogger(__name__)
CROP_CHOICES_S = (1.0, 1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 3.0)
MASK_MAX_BINS = 16  # widest frequency mask of --spec-masks (of 161 bins)
MASK_MAX_FRAMES = 10  # longest time mask (10 ms frames), at most a quarter of the crop


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run."""

    steps: int = 12000
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-3
    width: int = 256
    seed: int = 0
    sam_rho: float = 0.0  # > 0: sharpness-aware minimisation with this radius
    chains: tuple[str, ...] = ()  # train on crops of these channel chains only (empty: all)
    wideband_head: bool = True  # add a head trained on wideband chains (GatedDetector)
    # A head on a pretrained speaker encoder (needs the above); off since the CNN carries what
    # it added, at half the cost per window (docs/detector-development.md).
    speaker_head: bool = False
    cnn_head: bool = True  # a SpectrogramCnn head on both sides (needs wideband_head)
    cnn_steps: int = 6000  # its training steps (about 0.35 s each on two cores)
    cnn_channels: int = CNN_CHANNELS  # width of its last conv blocks
    balance_speakers: bool = False  # a voice heard in both classes: same share of each
    spec_masks: int = 0  # CNN head: frequency and time masks per training spectrogram


def environment() -> dict[str, str]:
    """What a run's weights depend on beyond the recipe and the seed.

    On one machine and software set, training is bit-reproducible: the same seed gives the
    same weights. On another, the rendered codec chains (PyAV's bundled FFmpeg) and the
    floating-point kernels can differ, and reruns of a seed there moved the held-out EER by
    up to two points (docs/detector-development.md); saved with the weights, this says
    whether two runs can be compared as reruns.
    """
    libavcodec = ".".join(str(v) for v in av.library_versions["libavcodec"])
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "av": f"{av.__version__} (libavcodec {libavcodec})",
        "soxr": soxr.__version__,
        "cpu": f"{_cpu_model()} (torch kernels {torch.backends.cpu.get_cpu_capability()})",
        "threads": str(torch.get_num_threads()),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sample_weights(
    clips: list[Clip], rows: np.ndarray, balance_speakers: bool = False
) -> np.ndarray:
    """Per-row sampling weight: both classes equally likely, rows within a class uniform.

    Weighting sources within a class (1/sqrt of their size) was tried and did worse on
    held-out speakers in our runs: it puts the small research demo sources ahead of the larger ones.
    With `balance_speakers`, a speaker heard in both classes gets the same share of each
    class's draws (the geometric mean of its two natural shares), so that the voice alone
    says nothing about the label: LJ Speech's voice is 28% of the synthetic training clips
    (many vocoders were trained on it) but 6% of the human ones.
    """
    labels = np.array([clips[i].label for i in rows])
    w = np.ones(len(rows))
    for lab in (0, 1):
        w[labels == lab] /= max(int((labels == lab).sum()), 1)
    if balance_speakers:
        w = _balance_shared_speakers(np.array([clips[i].speaker for i in rows]), labels, w)
    probabilities: np.ndarray = w / w.sum()
    return probabilities


def _balance_shared_speakers(speakers: np.ndarray, labels: np.ndarray, w: np.ndarray) -> np.ndarray:
    """`w` with every speaker heard in both classes at one share of each class's mass.

    `w` is uniform within each class; a class's other speakers share what is left evenly.
    """
    share = {}
    for lab in (0, 1):
        voices = speakers[labels == lab]
        share[lab] = {s: n / len(voices) for s, n in Counter(voices).items()}
    shared = share[0].keys() & share[1].keys()
    if not shared:
        return w
    target = {s: float(np.sqrt(share[0][s] * share[1][s])) for s in shared}
    out = w.copy()
    for lab in (0, 1):
        rest = 1.0 - sum(share[lab][s] for s in shared)
        others = (1.0 - sum(target.values())) / rest if rest > 0 else 0.0
        rows = np.flatnonzero(labels == lab)
        out[rows] *= [target[s] / share[lab][s] if s in shared else others for s in speakers[rows]]
        # the class keeps its mass, also when every one of its voices is shared
        out[rows] *= w[rows].sum() / out[rows].sum()
    return out


def mask_spectrogram(
    spectrogram: torch.Tensor, masks: int, rng: np.random.Generator
) -> torch.Tensor:
    """A copy with `masks` frequency bands and as many time stretches per row masked.

    Each is set to the row's mean (SpecAugment, Park et al., 2019), so that no one band or
    moment decides, in the hope that what is learnt carries to generators whose traces lie
    elsewhere.
    """
    out = spectrogram.clone()  # [B, 1, F, T]
    n_bins, n_frames = out.shape[2], out.shape[3]
    fill = out.mean(dim=(1, 2, 3))
    for b in range(out.shape[0]):
        for _ in range(masks):
            width = int(rng.integers(0, MASK_MAX_BINS + 1))
            start = int(rng.integers(0, n_bins - width + 1))
            out[b, :, start : start + width, :] = fill[b]
            length = int(rng.integers(0, min(MASK_MAX_FRAMES + 1, n_frames // 4)))
            start = int(rng.integers(0, n_frames - length + 1))
            out[b, :, :, start : start + length] = fill[b]
    return out


def sharpness_aware_gradients(
    model: Head,
    params: list[nn.Parameter],
    feats: torch.Tensor,
    labels: torch.Tensor,
    rho: float,
) -> None:
    """Replace the gradients by those at the worst weights within distance `rho`.

    Sharpness-aware minimisation (Foret et al., 2021) seeks weights whose whole
    neighbourhood has a low loss, i.e. flat minima, which often generalise better. It did
    not help this recipe on held-out speakers or voice conversion (MODEL_CARD.md), so it is
    off by default. Costs a second pass through the classifier.
    """
    with torch.no_grad():
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        norm = torch.norm(torch.stack([g.norm() for g in grads]))
        shifts = [rho * g / (norm + 1e-12) for g in grads]
        for p, shift in zip(params, shifts, strict=True):
            p.add_(shift)
    momentum, model.norm.momentum = model.norm.momentum, 0.0  # one batch, one statistics update
    for p in params:
        p.grad = None
    loss = nn.functional.binary_cross_entropy_with_logits(model.classify(feats), labels)
    torch.autograd.backward(loss)
    model.norm.momentum = momentum
    with torch.no_grad():
        for p, shift in zip(params, shifts, strict=True):
            p.sub_(shift)


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


@dataclass(frozen=True)
class FeatureBank:
    """A head's input features for `per_row` random crops of every rendered row.

    For a head whose features cost much more than its classifier (the speaker encoder's
    LSTMs), computing them once for all runs of a session is many times cheaper than
    computing them for every training batch; each step then draws one of a row's crops.
    """

    feats: torch.Tensor  # [rows, per_row, F] float16

    @classmethod
    def build(
        cls,
        data: Variants,
        features: Callable[[torch.Tensor], torch.Tensor],
        per_row: int = 12,
        seed: int = 0,
        chunk: int = 256,
    ) -> FeatureBank:
        """Features of `per_row` crops per row; the crop length is drawn per chunk of rows."""
        rng = np.random.default_rng(seed)
        out: list[torch.Tensor] = []
        t0 = time.time()
        for _ in range(per_row):
            parts = []
            for start in range(0, len(data.clip), chunk):
                rows = np.arange(start, min(start + chunk, len(data.clip)))
                x = make_batch(data, rows, float(rng.choice(CROP_CHOICES_S)), rng)
                with torch.no_grad():
                    parts.append(features(x).to(torch.float16))
            out.append(torch.cat(parts))
            logger.info(
                "feature bank: %d of %d crops per row (%.0f s)", len(out), per_row, time.time() - t0
            )
        return cls(torch.stack(out, dim=1))

    def draw(self, rows: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """One stored crop's features per row, float32 [len(rows), F]."""
        pick = rng.integers(0, self.feats.shape[1], size=len(rows))
        return self.feats[torch.from_numpy(rows), torch.from_numpy(pick)].float()


def train(
    clips: list[Clip],
    data: Variants,
    rows: np.ndarray,
    cfg: TrainConfig,
    make_head: Callable[[int], Head] = Detector,
    bank: FeatureBank | None = None,
) -> Any:
    """Train a fresh head (`make_head(width)`, a Detector by default) on the given variant rows.

    With `bank`, the head's features are drawn from it instead of computed from new crops.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = make_head(cfg.width)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    weights = sample_weights(clips, data.clip[rows], cfg.balance_speakers)
    labels = torch.tensor([clips[i].label for i in data.clip], dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    t0, running = time.time(), 0.0
    for step in range(cfg.steps):
        batch_rows = rng.choice(rows, size=cfg.batch, p=weights)
        y = labels[batch_rows]
        if bank is not None:
            feats = bank.draw(batch_rows, rng)
        else:
            x = make_batch(data, batch_rows, float(rng.choice(CROP_CHOICES_S)), rng)
            with torch.no_grad():  # nothing before the pooled features is learnt
                feats = model.features(x)
            if cfg.spec_masks and isinstance(model, SpectrogramCnn):
                feats = mask_spectrogram(feats, cfg.spec_masks, rng)
        loss = loss_fn(model.classify(feats), y)
        opt.zero_grad()
        loss.backward()
        if cfg.sam_rho > 0:
            sharpness_aware_gradients(model, params, feats, y, cfg.sam_rho)
        opt.step()
        sched.step()
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step else value
        if step % 100 == 0 or step == cfg.steps - 1:
            logger.info("step %d loss %.4f (%.0f s)", step, running, time.time() - t0)
    return model.eval()
