"""`clonewatch evaluate`: error rates of a model on labelled audio (numpy and onnxruntime only).

Each file is decoded to 16 kHz mono, its leading and trailing silence trimmed (the service
scores speech only), passed through a simulated channel, cut into non-overlapping windows of
the model's `window_s` and scored. Reported per channel: window-level EER and its threshold,
the threshold at 1% false alarms on human speech with the miss rate there, file-level EER
(mean score per file), and a per-system table; optionally a DET plot and a JSON report.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.channels import CHANNELS, Channel, apply_channel
from inference.eer import det_curve, eer, rates_at, threshold_at_fpr
from inference.evaldata import Item, decode, load_items, trim_silence, windows_of
from inference.model import OnnxModel

logger = logging.getLogger(__name__)
DEFAULT_CHANNELS: tuple[Channel, ...] = ("wideband", "telephone")
MAX_WINDOWS_PER_FILE = 6
BATCH = 32


@dataclass(frozen=True, slots=True)
class Scored:
    """Window scores of one channel: score and file index per window."""

    scores: npt.NDArray[np.float64]
    owner: npt.NDArray[np.int64]


def score_items(model: OnnxModel, audio: list[npt.NDArray[np.float32]], channel: Channel) -> Scored:
    """Window scores of every (trimmed) file after the channel."""
    n = model.window_samples
    windows: list[npt.NDArray[np.float32]] = []
    owner: list[int] = []
    for i, x in enumerate(audio):
        for w in windows_of(apply_channel(x, channel), n, MAX_WINDOWS_PER_FILE):
            windows.append(w)
            owner.append(i)
    stacked = np.stack(windows).astype(np.float32)
    scores = np.concatenate(
        [model.score_batch(stacked[i : i + BATCH]) for i in range(0, len(stacked), BATCH)]
    )
    idx = np.array(owner, dtype=np.int64)
    return Scored(scores.astype(np.float64), idx)


def channel_report(
    items: Sequence[Item], scored: Scored, shipped: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """EER, thresholds, file-level EER and the per-system table of one channel.

    `shipped` (the model manifest's thresholds) adds the error rates at those thresholds,
    i.e. what the service would do, beside the thresholds fitted to this data.
    """
    labels = np.array([items[i].label for i in scored.owner])
    s = scored.scores
    rate, thr_eer = eer(s, labels)
    thr_1, fa_1, miss_1 = threshold_at_fpr(s, labels)
    files = np.unique(scored.owner)
    file_scores = np.array([s[scored.owner == f].mean() for f in files])
    file_eer, _ = eer(file_scores, np.array([items[f].label for f in files]))
    at_shipped = {
        key: dict(zip(("false_alarm", "miss"), rates_at(s, labels, thr), strict=True))
        for key, thr in (shipped or {}).items()
    }
    return {
        "eer": rate,
        "file_eer": file_eer,
        "at_model_thresholds": at_shipped,
        "thresholds": {"eer": thr_eer, "fpr_1pct": thr_1},
        "at_fpr_1pct": {"false_alarm": fa_1, "miss": miss_1},
        "windows": {"human": int((labels == 0).sum()), "synthetic": int((labels == 1).sum())},
        "systems": system_table(items, scored, labels, (thr_eer, thr_1)),
    }


def system_table(
    items: Sequence[Item],
    scored: Scored,
    labels: npt.NDArray[np.int64],
    thresholds: tuple[float, float],
) -> dict[str, dict[str, Any]]:
    """Per system: windows, EER against all human windows (spoof only), error rates."""
    systems = np.array([items[i].system for i in scored.owner])
    pairs = sorted(set(zip(labels.tolist(), systems.tolist(), strict=True)))
    clash = {s for lab, s in pairs if (1 - lab, s) in pairs}
    human = labels == 0
    table: dict[str, dict[str, Any]] = {}
    for label, name in pairs:
        mask = (systems == name) & (labels == label)
        kind = "spoof" if label else "bonafide"
        row: dict[str, Any] = {"label": kind, "windows": int(mask.sum())}
        if label:
            both = mask | human
            row["eer"] = eer(scored.scores[both], labels[both])[0]
        for key, thr in zip(("at_eer", "at_fpr_1pct"), thresholds, strict=True):
            fa, miss = rates_at(scored.scores[mask], labels[mask], thr)
            row[key] = miss if label else fa
        table[f"{name} ({kind})" if name in clash else name] = row
    return table


def print_report(report: dict[str, Any], out: Any = sys.stdout) -> None:
    """Human-readable tables: one summary line per channel, then its systems."""
    for channel, r in report["channels"].items():
        t = r["thresholds"]
        print(
            f"[{channel}] EER {r['eer']:.2%} (file {r['file_eer']:.2%}) threshold {t['eer']:.4f}; "
            f"at 1% false alarms: threshold {t['fpr_1pct']:.4f}, miss "
            f"{r['at_fpr_1pct']['miss']:.2%}; windows {r['windows']}",
            file=out,
        )
        print(
            f"  {'system':<44} {'label':<8} {'win':>5} {'EER':>7} {'@eer':>7} {'@1%':>7}", file=out
        )
        for name, row in r["systems"].items():
            e = f"{row['eer']:.2%}" if "eer" in row else "-"
            print(
                f"  {name[:44]:<44} {row['label']:<8} {row['windows']:>5} {e:>7} "
                f"{row['at_eer']:>7.2%} {row['at_fpr_1pct']:>7.2%}",
                file=out,
            )


def plot_det(results: dict[str, Scored], items: Sequence[Item], path: Path) -> None:
    """DET curves (probit axes) of every channel into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probit = np.vectorize(NormalDist().inv_cdf)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    for channel, scored in results.items():
        labels = np.array([items[i].label for i in scored.owner])
        c = det_curve(scored.scores, labels)
        fa, miss = np.clip(c.false_alarm, 1e-4, 1 - 1e-4), np.clip(c.miss, 1e-4, 1 - 1e-4)
        ax.plot(
            probit(fa), probit(miss), label=f"{channel} (EER {eer(scored.scores, labels)[0]:.1%})"
        )
    ticks = [0.001, 0.01, 0.05, 0.2, 0.5, 0.8]
    ax.set_xticks(probit(ticks), [f"{t:g}" for t in ticks])
    ax.set_yticks(probit(ticks), [f"{t:g}" for t in ticks])
    ax.set_xlabel("false alarm rate (human called synthetic)")
    ax.set_ylabel("miss rate (synthetic called human)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(
    items: Sequence[Item], model: OnnxModel, channels: Sequence[Channel]
) -> tuple[dict[str, Any], dict[str, Scored]]:
    """Decode, trim and score every item on every channel; the report and raw scores."""
    audio = [trim_silence(decode(item.path)) for item in items]
    scored: dict[str, Scored] = {c: score_items(model, audio, c) for c in channels}
    report: dict[str, Any] = {
        "model": {"name": model.manifest.name, "version": model.manifest.version},
        "window_s": model.window_samples / model.manifest.sample_rate,
        "files": {
            "human": sum(1 for i in items if not i.label),
            "synthetic": sum(i.label for i in items),
        },
        "channels": {
            c: channel_report(items, s, model.manifest.thresholds) for c, s in scored.items()
        },
    }
    return report, scored


def run_evaluate(
    manifest_or_dir: Path,
    model_path: Path,
    *,
    json_out: Path | None = None,
    plot_out: Path | None = None,
    split: str | None = None,
    channel: str | None = None,
) -> int:
    """The `clonewatch evaluate` command; returns the exit status (0 ok, 2 bad input)."""
    try:
        if channel is not None and channel not in CHANNELS:
            raise ValueError(f"channel {channel!r} is not one of {list(CHANNELS)}")
        items = load_items(manifest_or_dir, split)
        if len({i.label for i in items}) < 2:
            raise ValueError(f"{manifest_or_dir}: need both human and synthetic files")
        model = OnnxModel.load(model_path)
    except (OSError, ValueError) as exc:
        print(f"clonewatch evaluate: {exc}", file=sys.stderr)
        return 2
    channels: tuple[Channel, ...] = (channel,) if channel else DEFAULT_CHANNELS
    report, scored = evaluate(items, model, channels)
    print_report(report)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if plot_out is not None:
        plot_det(scored, items, plot_out)
    return 0
