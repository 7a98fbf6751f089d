"""Error-rate arithmetic of a detector's scores (numpy only): DET curve, EER, thresholds.

Convention: a window alarms (is called synthetic) when its score >= threshold. Label 1 is
spoof (machine-generated), 0 is bona fide (human). False alarm = human called synthetic;
miss = synthetic called human.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
TARGET_FPR = 0.01
INTERVAL_RESAMPLES = 1000


@dataclass(frozen=True, slots=True)
class DetCurve:
    """Miss and false-alarm rates at every distinct threshold, thresholds ascending.

    The last point has threshold +inf (nothing alarms: miss 1, false alarm 0).
    """

    thresholds: FloatArray
    miss: FloatArray
    false_alarm: FloatArray


def _split(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in length")
    human, synthetic = s[y == 0], s[y == 1]
    if human.size == 0 or synthetic.size == 0:
        raise ValueError("need at least one human (0) and one synthetic (1) score")
    return human, synthetic


def det_curve(scores: npt.ArrayLike, labels: npt.ArrayLike) -> DetCurve:
    """Miss and false-alarm rates for thresholds at each distinct score, and at +inf."""
    human, synthetic = _split(scores, labels)
    thresholds = np.unique(np.concatenate([human, synthetic]))
    human_sorted, synth_sorted = np.sort(human), np.sort(synthetic)
    # alarms when score >= t: misses are synthetic scores < t, false alarms human >= t
    miss = np.searchsorted(synth_sorted, thresholds, side="left") / synthetic.size
    fa = (human.size - np.searchsorted(human_sorted, thresholds, side="left")) / human.size
    return DetCurve(
        thresholds=np.append(thresholds, np.inf),
        miss=np.append(miss, 1.0),
        false_alarm=np.append(fa, 0.0),
    )


def eer(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[float, float]:
    """Equal error rate and the threshold at it.

    Walks the DET curve to where misses overtake false alarms and interpolates linearly
    between the two neighbouring operating points (the ROC convex step), so a perfectly
    separable set gives 0.0 and identical score distributions give 0.5.
    """
    curve = det_curve(scores, labels)
    diff = curve.miss - curve.false_alarm  # rises from <= 0 to 1
    i = int(np.argmax(diff >= 0.0))
    if i == 0 or diff[i] == 0.0:
        rate = float(curve.miss[i] + curve.false_alarm[i]) / 2.0
        return rate, float(curve.thresholds[i])
    d0, d1 = float(diff[i - 1]), float(diff[i])
    w = d0 / (d0 - d1)
    m = (1 - w) * curve.miss[i - 1] + w * curve.miss[i]
    f = (1 - w) * curve.false_alarm[i - 1] + w * curve.false_alarm[i]
    threshold = curve.thresholds[i] if np.isfinite(curve.thresholds[i]) else curve.thresholds[i - 1]
    return float(m + f) / 2.0, float(threshold)


def threshold_at_fpr(
    scores: npt.ArrayLike, labels: npt.ArrayLike, fpr: float = TARGET_FPR
) -> tuple[float, float, float]:
    """Lowest threshold whose false-alarm rate on human speech is at most `fpr`.

    Returns (threshold, false-alarm rate, miss rate) at that threshold.
    """
    curve = det_curve(scores, labels)
    ok = np.flatnonzero(curve.false_alarm <= fpr + 1e-12)
    i = int(ok[0])
    return float(curve.thresholds[i]), float(curve.false_alarm[i]), float(curve.miss[i])


def rates_at(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> tuple[float, float]:
    """(false-alarm rate, miss rate) when alarming at score >= threshold; NaN for a lone class."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    human, synthetic = s[y == 0], s[y == 1]
    fa = float(np.mean(human >= threshold)) if human.size else math.nan
    miss = float(np.mean(synthetic < threshold)) if synthetic.size else math.nan
    return fa, miss


def eer_interval(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    groups: npt.ArrayLike,
    level: float = 0.95,
    resamples: int = INTERVAL_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap interval of the EER that resamples whole groups, within each class.

    A group is what windows share (a file, a speaker): windows of one file share its
    voice, words and recording chain and err together, so resampling single windows
    would make the interval far narrower than what a new set of files would show. Each
    class keeps its number of groups, so every resample has both classes.

    Returns the (lower, upper) percentiles of the resampled EERs at `level`.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    g = np.asarray(groups).reshape(-1)
    if not s.shape == y.shape == g.shape:
        raise ValueError(f"scores {s.shape}, labels {y.shape} and groups {g.shape} differ")
    _split(s, y)  # both classes present
    classes = [_grouped_rows(np.flatnonzero(y == label), g[y == label]) for label in (0, 1)]
    rng = np.random.default_rng(seed)
    rates = np.empty(resamples)
    for k in range(resamples):
        idx = np.concatenate([_draw_groups(rng, *rows) for rows in classes])
        rates[k] = eer(s[idx], y[idx])[0]
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(rates, [tail, 100.0 - tail])
    return float(low), float(high)


def _grouped_rows(
    rows: npt.NDArray[np.intp], groups: npt.NDArray[np.generic]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """`rows` ordered by group, with where each group starts in that order and its size."""
    order = np.argsort(groups, kind="stable")
    _, starts, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    return rows[order], starts, sizes


def _draw_groups(
    rng: np.random.Generator,
    rows: npt.NDArray[np.intp],
    starts: npt.NDArray[np.intp],
    sizes: npt.NDArray[np.intp],
) -> npt.NDArray[np.intp]:
    """The rows of as many groups as there are, drawn with replacement (vectorised)."""
    picks = rng.integers(0, len(starts), size=len(starts))
    n = sizes[picks]
    first_out = np.cumsum(n) - n  # where each drawn group begins in the output
    return rows[np.repeat(starts[picks] - first_out, n) + np.arange(int(n.sum()))]
