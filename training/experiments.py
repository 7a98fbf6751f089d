"""Experiments: held-out speakers (the dev split), generator families and human sources."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from inference.channels import Channel
from training.augment import WIDEBAND_CHAINS
from training.data import Clip
from training.dataset import Variants
from training.model import GatedDetector, SpectrogramCnn
from training.speaker import SpeakerDetector, SpeakerEncoder
from training.train import FeatureBank, TrainConfig, train
from training.validate import build_eval, score, summarise

logger = logging.getLogger(__name__)
EVAL_CHANNELS: tuple[Channel, ...] = ("telephone", "wideband")
RESULTS_DIR = Path("data/results")


def rows_for(data: Variants, keep: np.ndarray, chains: tuple[str, ...] = ()) -> np.ndarray:
    """Variant rows whose clip is marked in the boolean `keep` (one entry per clip).

    With `chains`, only the rows rendered through one of those channel chains.
    """
    rows = np.flatnonzero(keep[data.clip])
    if chains:
        rows = rows[np.isin(data.chain[rows], chains)]
    return rows


def train_model(
    clips: list[Clip],
    data: Variants,
    keep: np.ndarray,
    cfg: TrainConfig,
    speaker_bank: FeatureBank | None = None,
) -> Any:
    """The model of one run on the clips marked in `keep`.

    A Detector, or with `cfg.wideband_head` a GatedDetector whose second head sees the
    wideband chains only; `cfg.speaker_head` adds a head on the pretrained speaker encoder,
    trained on the same rows as the first, from `speaker_bank` (built here when None), and
    `cfg.cnn_head` a SpectrogramCnn trained on those rows too.
    """
    if (cfg.speaker_head or cfg.cnn_head) and not cfg.wideband_head:
        raise ValueError(
            "the speaker and CNN heads join the gated pair, which needs the wideband head"
        )
    rows = rows_for(data, keep, cfg.chains)
    model = train(clips, data, rows, cfg)
    if not cfg.wideband_head:
        return model
    wideband = train(clips, data, rows_for(data, keep, WIDEBAND_CHAINS), cfg)
    speaker = None
    if cfg.speaker_head:
        encoder = SpeakerEncoder.pretrained()
        bank = speaker_bank or FeatureBank.build(data, encoder, seed=cfg.seed)
        speaker = train(clips, data, rows, cfg, lambda w: SpeakerDetector(encoder, w), bank)
    cnn = None
    if cfg.cnn_head:
        cnn_cfg = replace(cfg, steps=cfg.cnn_steps)
        cnn = train(clips, data, rows, cnn_cfg, lambda _: SpectrogramCnn(cfg.cnn_channels))
    return GatedDetector(model, wideband, speaker=speaker, cnn=cnn).eval()


def evaluate_model(
    model: Any,
    clips: list[Clip],
    pcm: list[np.ndarray],
    test_idx: np.ndarray,
    windows_s: tuple[float, ...],
) -> dict[str, Any]:
    """Figures per channel and window length on the test clips."""
    out: dict[str, Any] = {}
    for channel in EVAL_CHANNELS:
        for window_s in windows_s:
            ev = build_eval(clips, pcm, test_idx, channel, window_s)
            speakers = np.array([clips[i].speaker for i in ev.clip])
            out[f"{channel}@{window_s:g}s"] = summarise(score(model, ev.audio), ev, speakers)
            logger.info("%s@%gs %s", channel, window_s, out[f"{channel}@{window_s:g}s"])
    return out


def dev_figures(model: Any, clips: list[Clip], pcm: list[np.ndarray]) -> dict[str, Any]:
    """The figures of a model trained on the training fold: held-out speakers, corpus dev split.

    The corpus dev split includes the LJ Speech clips moved to training (`dev-split`);
    `dev` (held-out speakers only) is the honest figure.
    """
    held_out = np.flatnonzero([c.fold == "dev" and not c.generated for c in clips])
    corpus_dev = np.flatnonzero([c.split == "dev" and not c.generated for c in clips])
    return {
        "dev": evaluate_model(model, clips, pcm, held_out, (1.0, 2.0, 4.0)),
        "dev-split": evaluate_model(model, clips, pcm, corpus_dev, (1.0, 2.0)),
    }


def leave_out(
    clips: list[Clip],
    pcm: list[np.ndarray],
    data: Variants,
    cfg: TrainConfig,
    held: np.ndarray,
    speaker_bank: FeatureBank | None = None,
) -> dict[str, Any]:
    """Train without the `held` clips (any fold, all of one class).

    They are then tested against held-out corpus clips of the other class. An empty
    `held` (a family or group name that matches no clip) is an error, not a run on all.
    """
    if not held.any():
        raise ValueError("nothing to hold out: the family or group matches no clip")
    corpus = np.array([not c.generated for c in clips])
    other = 1 - clips[int(np.argmax(held & corpus))].label
    is_train = np.array([c.fold == "train" for c in clips]) & ~held
    model = train_model(clips, data, is_train, cfg, speaker_bank)
    against = np.array([c.label == other and c.fold == "dev" for c in clips])
    return evaluate_model(model, clips, pcm, np.flatnonzero(corpus & (held | against)), (1.0, 2.0))


def leave_family_out(
    clips: list[Clip],
    pcm: list[np.ndarray],
    data: Variants,
    cfg: TrainConfig,
    family: str,
    speaker_bank: FeatureBank | None = None,
) -> dict[str, Any]:
    """Train without one spoof family; test it against held-out human speech."""
    held = np.array([c.family == family for c in clips])
    return leave_out(clips, pcm, data, cfg, held, speaker_bank)


def leave_human_source_out(
    clips: list[Clip],
    pcm: list[np.ndarray],
    data: Variants,
    cfg: TrainConfig,
    group: str,
    speaker_bank: FeatureBank | None = None,
) -> dict[str, Any]:
    """Train without one human recording group; test it against held-out synthetic speech.

    Copy-synthesised clips of the group's recordings are held out too: left in, they would
    teach that the group's recording chain marks synthetic speech.
    """
    held = np.array([c.recording_group == group for c in clips])
    return leave_out(clips, pcm, data, cfg, held, speaker_bank)


def save_results(name: str, config: dict[str, Any], results: dict[str, Any]) -> Path:
    """Write data/results/NAME.json with the training config beside the figures."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"config": config, "results": results}, indent=2))
    return path
