"""`python -m training`: train, validate and export the clonewatch detector.

Commands:
    dev      train on the corpus train split, report dev-split figures, save the weights
    loso     leave-one-out validation: one training run per generator family left out,
             and one per human recording group left out
    measure  measure the dev figures of saved weights again (after a change outside the
             trained weights, such as the gate of the two heads)
    export   export saved weights to onnx_models/ with a parity check and the manifest
    all      dev + loso + export (what `make train` runs)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.augment import CHAINS
from training.data import (
    COPYSYNTH_SOURCE,
    FAMILIES,
    GENERATED_DIR,
    HUMAN_SOURCES,
    Clip,
    all_clips,
    cached_audio,
    find_corpus,
    read_manifest,
    tts_clips,
)
from training.dataset import Variants, render_all
from training.experiments import (
    EVAL_CHANNELS,
    RESULTS_DIR,
    dev_figures,
    leave_family_out,
    leave_human_source_out,
    rows_for,
    save_results,
    train_model,
)
from training.model import LOG_EPS, GatedDetector
from training.speaker import SpeakerEncoder
from training.train import FeatureBank, TrainConfig, environment

VARIANTS = 6


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    commands = ("dev", "loso", "measure", "export", "all")
    p.add_argument("command", nargs="?", default="all", choices=commands)
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--width", type=int, default=TrainConfig.width)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument(
        "--sam-rho",
        type=float,
        default=TrainConfig.sam_rho,
        help="radius of sharpness-aware minimisation (0: plain AdamW)",
    )
    families, groups = sorted(set(FAMILIES.values())), sorted(set(HUMAN_SOURCES.values()))
    p.add_argument("--families", nargs="*", default=families, choices=families)
    p.add_argument("--human-sources", nargs="*", default=groups, choices=groups)
    p.add_argument(
        "--generated",
        action="store_true",
        help="also train on data/generated (`make data`); it made held-out figures worse",
    )
    p.add_argument(
        "--tts",
        nargs="+",
        default=[],
        metavar="ENGINE",
        help="add these TTS engines of data/generated to the training fold (`make data`)",
    )
    p.add_argument("--tts-clips", type=int, default=100, help="clips per --tts engine")
    p.add_argument(
        "--chains",
        nargs="+",
        default=[],
        choices=[name for name, _, _ in CHAINS],
        help="train on crops of these channel chains only (a bandwidth specialist)",
    )
    p.add_argument(
        "--single-head",
        action="store_true",
        help="train one all-channel Detector, without the gated wideband head "
        "(needs --no-cnn-head)",
    )
    p.add_argument(
        "--speaker-head",
        action="store_true",
        help="add a head on a pretrained speaker encoder (the models shipped on 2026-11-23; "
        "needs `pip install --no-deps Resemblyzer==0.1.4`)",
    )
    p.add_argument(
        "--no-cnn-head",
        dest="cnn_head",
        action="store_false",
        help="leave out the CNN over the spectrogram (the three heads shipped before)",
    )
    p.add_argument("--cnn-steps", type=int, default=TrainConfig.cnn_steps)
    p.add_argument("--cnn-channels", type=int, default=TrainConfig.cnn_channels)
    p.add_argument(
        "--balance-speakers",
        action="store_true",
        help="give a speaker heard in both classes the same share of each class's draws",
    )
    p.add_argument(
        "--spec-masks",
        type=int,
        default=TrainConfig.spec_masks,
        help="frequency and time masks per CNN training spectrogram (SpecAugment; 0: none); "
        "2 cost held-out speakers two points at 2 s",
    )
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="training seed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="run")
    p.add_argument("--no-shortcuts", action="store_true", help="export: skip the shortcut check")
    p.add_argument("--render-seed", type=int, default=2024, help="seed of the rendered crops")
    p.add_argument("--window", type=float, default=1.0, help="window_s of the shipped model")
    return p


def checks(
    clips: list[Clip],
    pcm: list[np.ndarray],
    data: Variants | None,
    manifest: dict[str, Any],
    seen: set[str],
) -> dict[str, Any]:
    """Shortcut check, simulated time to alert on held-out clips, generators never seen."""
    from training.report import shortcut_check, time_to_alert
    from training.ship import ONNX_PATH

    out: dict[str, Any] = {}
    if data is not None:
        rows = rows_for(data, np.array([c.fold == "train" for c in clips]))
        out["shortcuts_best_single_feature_eer"] = shortcut_check(clips, pcm, data, rows)
    dev = np.flatnonzero([c.fold == "dev" and not c.generated for c in clips])
    for channel in EVAL_CHANNELS:
        out[f"time_to_alert_{channel}"] = time_to_alert(
            str(ONNX_PATH), clips, pcm, dev, manifest, channel
        )
    humans = [i for i in dev if clips[i].label == 0]
    out["unseen_generators"] = unseen_check(
        [clips[i] for i in humans], [pcm[i] for i in humans], manifest, seen
    )
    logging.getLogger(__name__).info("checks %s", out)
    return out


def unseen_check(
    humans: list[Clip], humans_pcm: list[np.ndarray], manifest: dict[str, Any], seen: set[str]
) -> dict[str, Any] | None:
    """Speech of data/generated (`make data`) that the weights never saw, against `humans`.

    The TTS engines, and the copy-synthesis of those very human clips (`copy-VOCODER`):
    same speaker, words and recording, only the vocoder differs, so a model that tells the
    copies from the originals has learnt vocoder traces rather than voices or recordings.
    All but the `seen` sources (those the weights were trained on); None when `make data`
    has not run.
    """
    from training.report import unseen_generators
    from training.ship import ONNX_PATH

    generated = GENERATED_DIR / "manifest.csv"
    if not generated.is_file():
        logging.getLogger(__name__).info("no %s: unseen-generator check skipped", generated)
        return None
    corpus = find_corpus()
    originals = {c.path.relative_to(corpus).as_posix() for c in humans}
    unseen = unseen_clips(read_manifest(generated), originals, seen)
    spoofs: dict[str, list[np.ndarray]] = {}
    for (name, _), audio in zip(unseen, cached_audio([c for _, c in unseen]), strict=True):
        spoofs.setdefault(name, []).append(audio)
    return unseen_generators(str(ONNX_PATH), manifest, humans_pcm, spoofs)


def unseen_clips(
    generated: list[Clip], originals: set[str], seen: set[str]
) -> list[tuple[str, Clip]]:
    """Generated clips of sources not `seen`, named by engine or `copy-VOCODER`.

    Copies count only when their original (its corpus path) is one of `originals`.
    """
    out = []
    for c in generated:
        if c.source in seen or not c.path.is_file():
            continue
        if c.source != COPYSYNTH_SOURCE:
            out.append((c.source, c))
        elif c.origin in originals:
            out.append((f"copy-{c.system}", c))
    return out


def export(args: argparse.Namespace, clips: list[Clip], pcm: list[np.ndarray]) -> None:
    """Ship the weights of run `args.name`, then add the checks and write the model card."""
    from training.card import write_card
    from training.export import write_manifest
    from training.ship import ONNX_PATH, ship

    weights = Path(f"data/results/{args.name}.pt")
    manifest = ship(clips, pcm, weights, args.window, args.name)
    data = None if args.no_shortcuts else render_all(clips, VARIANTS, seed=args.render_seed)
    saved = torch.load(weights, map_location="cpu", weights_only=True)
    seen = set(saved.get("generated", []))
    manifest["metrics"].update(checks(clips, pcm, data, manifest, seen))
    if "environment" in saved:  # weights saved before it was recorded have none
        manifest["metrics"]["trained_with"] = saved["environment"]
    write_manifest(ONNX_PATH, manifest)
    write_card(manifest)


def train_runs(args: argparse.Namespace, clips: list[Clip], pcm: list[np.ndarray]) -> None:
    """The dev-split run (weights saved as data/results/NAME.pt) and/or the LOSO runs."""
    cfg = TrainConfig(
        steps=args.steps,
        width=args.width,
        lr=args.lr,
        sam_rho=args.sam_rho,
        chains=tuple(args.chains),
        wideband_head=not args.single_head,
        speaker_head=args.speaker_head,
        cnn_head=args.cnn_head,
        cnn_steps=args.cnn_steps,
        cnn_channels=args.cnn_channels,
        balance_speakers=args.balance_speakers,
        spec_masks=args.spec_masks,
        seed=args.seed,
    )
    recipe = {**asdict(cfg), "tts": args.tts, "tts_clips": args.tts_clips}
    data = render_all(clips, VARIANTS, seed=args.render_seed)
    bank = None  # the speaker encoder's features, shared by every run of this command
    if cfg.speaker_head:
        bank = FeatureBank.build(data, SpeakerEncoder.pretrained(), seed=cfg.seed)
    if args.command in ("dev", "all"):
        is_train = np.array([c.fold == "train" for c in clips])
        model = train_model(clips, data, is_train, cfg, bank)
        weights = Path(f"data/results/{args.name}.pt")
        weights.parent.mkdir(parents=True, exist_ok=True)
        # the generated sources it trained on: the export checks the other TTS engines
        seen = sorted({c.source for c in clips if c.generated})
        saved: dict[str, Any] = {
            "width": args.width,
            "log_eps": LOG_EPS,
            "generated": seen,
            "recipe": recipe,
            "environment": environment(),
        }
        if isinstance(model, GatedDetector):
            saved["gate_db"] = model.gate_db
            saved["speaker_head"] = model.speaker is not None
            saved["cnn_head"] = model.cnn is not None
            saved["cnn_channels"] = cfg.cnn_channels
        # saved before measuring: a run cut short while measuring keeps its weights for `measure`
        torch.save({"state": model.state_dict(), **saved}, weights)
        for key, results in dev_figures(model, clips, pcm).items():
            save_results(f"{args.name}-{key}", recipe, results)
    if args.command in ("loso", "all"):
        for family in args.families:
            results = leave_family_out(clips, pcm, data, cfg, family, bank)
            save_results(f"{args.name}-loso-{family}", recipe, results)
        for group in args.human_sources:
            results = leave_human_source_out(clips, pcm, data, cfg, group, bank)
            save_results(f"{args.name}-lohso-{group}", recipe, results)


def measure(args: argparse.Namespace, clips: list[Clip], pcm: list[np.ndarray]) -> None:
    """The dev figures of data/results/NAME.pt, written over those of its training run."""
    from training.ship import load_weights

    weights = Path(f"data/results/{args.name}.pt")
    model = load_weights(weights)
    recipe = torch.load(weights, map_location="cpu", weights_only=True).get("recipe")
    for key, results in dev_figures(model, clips, pcm).items():
        if recipe is None:  # weights saved before the recipe was: their training run's
            recipe = json.loads((RESULTS_DIR / f"{args.name}-{key}.json").read_text())["config"]
        save_results(f"{args.name}-{key}", recipe, results)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.single_head and args.speaker_head:
        parser.error("--single-head cannot take --speaker-head: the speaker head joins the pair")
    if args.single_head and args.cnn_head:
        parser.error("--single-head needs --no-cnn-head: the CNN head joins the pair")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.generated and args.tts:
        parser.error("--tts picks engines of data/generated; --generated takes all of it")
    clips = all_clips(use_generated=args.generated)
    clips += tts_clips(args.tts, args.tts_clips) if args.tts else []
    pcm = cached_audio(clips)
    if args.command in ("dev", "loso", "all"):
        train_runs(args, clips, pcm)
    if args.command == "measure":
        measure(args, clips, pcm)
    if args.command in ("export", "all"):
        export(args, clips, pcm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
