"""`clonewatch evaluate`: error rates of a model on labelled audio (numpy and onnxruntime only).

Each file is decoded to 16 kHz mono, its leading and trailing silence trimmed (the service
scores speech only), passed through a simulated channel, cut into non-overlapping windows of
the model's `window_s` and scored. Reported per channel: window-level EER and its threshold,
with a 95% interval from resampling the files (how far the figure could move on another set of
files like these), the threshold at 1% false alarms on human speech with the miss rate there,
file-level EER (mean score per file), and a per-system table; optionally a DET plot and a JSON
report.

Then what the service would do with each file: every window at the model's hop through the
verdict policy, the share of human and synthetic files alerted at the model's threshold,
and the line threshold, the lowest `synthetic_threshold` at which at most 1% of the human
files alert. Human files alone are enough for that part: a line's own recorded calls give
its `[verdict.lines."..."]` threshold.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.config import VerdictConfig
from alerts.policy import Thresholds, peak_aggregate, resolve_thresholds
from inference.channels import CHANNELS, Channel, apply_channel
from inference.eer import det_curve, eer, eer_interval, rates_at, threshold_at_fpr
from inference.evaldata import (
    Audio,
    Item,
    decode,
    hop_windows,
    load_items,
    trim_silence,
    windows_of,
)
from inference.model import OnnxModel

logger = logging.getLogger(__name__)
DEFAULT_CHANNELS: tuple[Channel, ...] = ("wideband", "telephone")
MAX_WINDOWS_PER_FILE = 6
BATCH = 32
LINE_FALSE_ALARMS = 0.01  # share of a line's human calls its threshold may let alert


@dataclass(frozen=True, slots=True)
class Scored:
    """Window scores of one channel: score and file index per window."""

    scores: npt.NDArray[np.float64]
    owner: npt.NDArray[np.int64]


def score_items(
    model: OnnxModel,
    audio: list[npt.NDArray[np.float32]],
    channel: Channel,
    every_hop: bool = False,
) -> Scored:
    """Window scores of every (trimmed) file after the channel, in order within a file.

    Up to MAX_WINDOWS_PER_FILE side by side, or with `every_hop` every window the service
    would score.
    """
    n = model.window_samples
    hop = round(model.manifest.hop_s * model.manifest.sample_rate)
    windows: list[npt.NDArray[np.float32]] = []
    owner: list[int] = []
    for i, x in enumerate(audio):
        heard = apply_channel(x, channel)
        cut = (
            hop_windows(heard, n, hop) if every_hop else windows_of(heard, n, MAX_WINDOWS_PER_FILE)
        )
        windows += cut
        owner += [i] * len(cut)
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
    low, high = eer_interval(s, labels, scored.owner)
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
        "eer_95_by_file": [low, high],
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


def line_threshold(human_peaks: npt.NDArray[np.float64], rate: float) -> float | None:
    """The lowest threshold (4 decimals) at which at most `rate` of these files alert.

    `human_peaks` are the files' peak aggregates (-inf: never alerted). None when no
    threshold up to 1 keeps that few quiet (the files' scores reach 1.0).
    """
    allowed = int(rate * len(human_peaks))  # files that may still alert
    ordered = np.sort(human_peaks)[::-1]
    if allowed >= len(ordered) or not np.isfinite(ordered[allowed]):
        return 0.0
    above = math.floor(float(ordered[allowed]) * 10_000) / 10_000 + 0.0001
    return None if above > 1.0 else round(above, 4)


def _peak(scores: npt.NDArray[np.float64], verdict: VerdictConfig) -> float:
    """A file's peak aggregate; -inf for a file too short to be alerted."""
    peak = peak_aggregate(scores.tolist(), verdict)
    return -math.inf if peak is None else peak


def call_report(
    items: Sequence[Item], scored: Scored, verdict: VerdictConfig, thresholds: Thresholds
) -> dict[str, Any]:
    """Files alerted through the verdict policy, and the line threshold for the human ones.

    `scored` holds every window of each file at the model's hop; `thresholds` are those the
    service would use (config, else the model manifest).
    """
    counts = np.bincount(scored.owner, minlength=len(items))
    per_file = np.split(scored.scores, np.cumsum(counts)[:-1])
    peaks = np.array([_peak(s, verdict) for s in per_file], dtype=np.float64)
    labels = np.array([i.label for i in items])
    human, synthetic = peaks[labels == 0], peaks[labels == 1]
    threshold = line_threshold(human, LINE_FALSE_ALARMS)

    def alerted(p: npt.NDArray[np.float64], t: float | None) -> float | None:
        return None if t is None or not len(p) else float(np.mean(p >= t))

    return {
        "policy": {"min_windows": verdict.min_windows, "history_windows": verdict.history_windows},
        "files": {"human": len(human), "synthetic": len(synthetic)},
        "thresholds": {"suspect": thresholds.suspect, "synthetic": thresholds.synthetic},
        "alerted": {
            "human": alerted(human, thresholds.synthetic),
            "synthetic": alerted(synthetic, thresholds.synthetic),
        },
        "line_false_alarms": LINE_FALSE_ALARMS,
        "line_threshold": threshold,
        "alerted_at_line_threshold": {
            "human": alerted(human, threshold),
            "synthetic": alerted(synthetic, threshold),
        },
    }


def print_report(report: dict[str, Any], out: Any = sys.stdout) -> None:
    """Human-readable tables: one summary line per channel, then its systems; then calls."""
    for channel, r in report["channels"].items():
        t = r["thresholds"]
        low, high = r["eer_95_by_file"]
        print(
            f"[{channel}] EER {r['eer']:.2%} (95% interval {100 * low:.1f}-{high:.1%}, files "
            f"resampled; file EER {r['file_eer']:.2%}) threshold {t['eer']:.4f}; "
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
    for channel, calls in report.get("calls", {}).items():
        print_calls(channel, calls, out)


def print_calls(channel: str, calls: dict[str, Any], out: Any = sys.stdout) -> None:
    """Files alerted through the verdict policy, and the line threshold as config lines."""
    files, alerted, at_line = calls["files"], calls["alerted"], calls["alerted_at_line_threshold"]
    counts = f"human {alerted['human']:.2%} of {files['human']}"
    if files["synthetic"]:
        counts += f", synthetic {alerted['synthetic']:.2%} of {files['synthetic']}"
    synthetic = calls["thresholds"]["synthetic"]
    print(f"[{channel}] files alerted at synthetic threshold {synthetic:.4f}: {counts}", file=out)
    line, rate = calls["line_threshold"], calls["line_false_alarms"]
    if line is None:
        print(f"  no threshold up to 1 keeps all but {rate:.0%} of the human files quiet", file=out)
        return
    if files["human"] * rate < 1:
        print(f"  (fewer than {1 / rate:.0f} human files: no file of these may alert)", file=out)
    caught = f", synthetic {at_line['synthetic']:.2%}" if files["synthetic"] else ""
    print(
        f"  at most {rate:.0%} of the human files alert from {line:.4f} (human "
        f"{at_line['human']:.2%}{caught}); for a line with audio like this:",
        file=out,
    )
    print('    [verdict.lines."LINE"]', file=out)
    if line < calls["thresholds"]["suspect"]:  # the suspect threshold may not lie above it
        print(f"    suspect_threshold = {line:.4f}", file=out)
    print(f"    synthetic_threshold = {line:.4f}", file=out)


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


def read_audio(items: Sequence[Item]) -> tuple[list[Item], list[Audio], dict[str, str]]:
    """Decoded, trimmed audio of each item that decodes; the others by path, with the reason."""
    kept: list[Item] = []
    audio: list[Audio] = []
    skipped: dict[str, str] = {}
    for item in items:
        try:
            audio.append(trim_silence(decode(item.path)))
        except (OSError, ValueError) as exc:
            skipped[str(item.path)] = str(exc)
            continue
        kept.append(item)
    return kept, audio, skipped


def evaluate(
    items: Sequence[Item],
    audio: list[Audio],
    model: OnnxModel,
    channels: Sequence[Channel],
    policy: tuple[VerdictConfig, Thresholds] | None = None,
) -> tuple[dict[str, Any], dict[str, Scored]]:
    """Score every item's (trimmed) audio on every channel; the report and raw scores.

    Window error rates need both classes. With `policy` (the service's verdict settings and
    thresholds) the report also says which files the service would alert on (`calls`, see
    `call_report`); human files alone suffice for that.
    """
    scored: dict[str, Scored] = {}
    if len({i.label for i in items}) == 2:
        scored = {c: score_items(model, audio, c) for c in channels}
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
    if policy is not None:
        report["calls"] = {
            c: call_report(items, score_items(model, audio, c, every_hop=True), *policy)
            for c in channels
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
    verdict: VerdictConfig | None = None,
) -> int:
    """The `clonewatch evaluate` command; returns the exit status.

    0 ok; 1 the report was made without the files that could not be decoded (each named
    on stderr and in the JSON's `skipped`); 2 bad input, no report.
    """
    try:
        if channel is not None and channel not in CHANNELS:
            raise ValueError(f"channel {channel!r} is not one of {list(CHANNELS)}")
        model = OnnxModel.load(model_path)
        verdict = verdict or VerdictConfig()
        m = model.manifest
        thresholds = resolve_thresholds(verdict, m.thresholds, m.threshold, "")
        items, audio, skipped = read_audio(load_items(manifest_or_dir, split))
        for reason in skipped.values():
            print(f"clonewatch evaluate: skipped {reason}", file=sys.stderr)
        if not any(i.label == 0 for i in items):
            raise ValueError(
                f"{manifest_or_dir}: no human (bonafide) files, which every figure needs"
            )
        if plot_out is not None and all(i.label == 0 for i in items):
            raise ValueError("a DET plot needs both human and synthetic files")
    except (OSError, ValueError) as exc:
        print(f"clonewatch evaluate: {exc}", file=sys.stderr)
        return 2
    channels: tuple[Channel, ...] = (channel,) if channel else DEFAULT_CHANNELS
    report, scored = evaluate(items, audio, model, channels, (verdict, thresholds))
    report["skipped"] = skipped
    print_report(report)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if plot_out is not None:
        plot_det(scored, items, plot_out)
    return 1 if skipped else 0
