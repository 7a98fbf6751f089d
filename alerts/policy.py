"""Per-participant verdict policy: window scores in, verdict changes out, with hysteresis.

The verdict of a participant is an explicit state machine whose states are the
`Verdict` values (STYLE.md rule 28)::

    LISTENING --min_windows scored--> HUMAN | SUSPECT | SYNTHETIC (by the aggregate)

    HUMAN     --agg >= suspect--------------------> SUSPECT (or SYNTHETIC if >= synthetic)
    SUSPECT   --agg >= synthetic------------------> SYNTHETIC
    SUSPECT   --agg <  suspect - margin-----------> HUMAN
    SYNTHETIC --agg <  synthetic - margin---------> SUSPECT (or HUMAN if < suspect - margin)

Rising is immediate; falling needs the aggregate to drop `release_margin` below the
threshold the verdict was entered at, so a score hovering at a threshold does not flap.

The aggregate is the *median* of the last `history_windows` window scores, not the mean.
A calibrated detector's scores are close to bimodal (near 0 or near 1); one odd window
(a cough, a codec glitch, a burst of packet loss) can score 0.99 in a human call and
would move a 4-window mean by about 0.25, enough to cross a threshold. The median only
moves when at least half of the recent windows agree, so a single outlier can never
flip a verdict once `history_windows` >= 3, while a sustained change still shows up
within about half the history.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alerts.config import VerdictConfig
from alerts.types import Verdict, WindowScore

MANIFEST_SUSPECT_KEY = "eer"  # manifest thresholds entry used for `suspect`
MANIFEST_SYNTHETIC_KEY = "fpr_1pct"  # manifest thresholds entry used for `synthetic`


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Score thresholds (in [0, 1]) at which a participant becomes suspect or synthetic."""

    suspect: float
    synthetic: float

    def __post_init__(self) -> None:
        for name, value in (("suspect", self.suspect), ("synthetic", self.synthetic)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} threshold {value} is outside [0, 1]")
        if self.suspect > self.synthetic:
            raise ValueError(
                f"suspect threshold {self.suspect} is above synthetic threshold {self.synthetic}"
            )


def resolve_thresholds(
    config: VerdictConfig,
    manifest_thresholds: Mapping[str, float],
    default: float,
    line: str,
) -> Thresholds:
    """The thresholds that apply to participants on `line`.

    Precedence, per threshold: the line's override in `config.lines[line]`, the global
    config value, the manifest's `thresholds["eer"]` (suspect) or
    `thresholds["fpr_1pct"]` (synthetic), and finally the manifest's single `threshold`.

    Args:
        config: The verdict settings.
        manifest_thresholds: The model manifest's `thresholds` object.
        default: The model manifest's `threshold`.
        line: The monitored line or trunk ("" when unknown).

    Returns:
        The resolved thresholds.

    Raises:
        ValueError: The resolved suspect threshold is above the synthetic one.
    """
    override = config.lines.get(line)
    suspect = _first(
        override.suspect_threshold if override else None,
        config.suspect_threshold,
        manifest_thresholds.get(MANIFEST_SUSPECT_KEY),
        default,
    )
    synthetic = _first(
        override.synthetic_threshold if override else None,
        config.synthetic_threshold,
        manifest_thresholds.get(MANIFEST_SYNTHETIC_KEY),
        default,
    )
    try:
        return Thresholds(suspect=float(suspect), synthetic=float(synthetic))
    except ValueError as exc:
        where = f'verdict.lines."{line}"' if override else "verdict"
        raise ValueError(
            f"{where}: {exc} (thresholds not set there come from [verdict] or the model "
            "manifest; set suspect_threshold too)"
        ) from None


def peak_aggregate(scores: Sequence[float], config: VerdictConfig) -> float | None:
    """The highest synthetic threshold at which these window scores reach SYNTHETIC.

    The policy enters SYNTHETIC at the first window, from the `min_windows`-th on, whose
    aggregate reaches the synthetic threshold, whatever the suspect threshold and the
    path there; so a participant is alerted at threshold t exactly when t <= this value.
    None when there are fewer than `min_windows` scores (never alerted). Used to set a
    line's threshold from its own human calls (`clonewatch evaluate`).
    """
    recent: deque[float] = deque(maxlen=config.history_windows)
    peak: float | None = None
    for k, score in enumerate(scores):
        recent.append(score)
        if k + 1 >= config.min_windows:
            aggregate = statistics.median(recent)
            peak = aggregate if peak is None else max(peak, aggregate)
    return peak


def _first(*values: float | None) -> float:
    for value in values:
        if value is not None:
            return value
    raise ValueError("no threshold given")  # unreachable: the last value is never None


class VerdictPolicy:
    """The verdict state machine of one participant; not thread-safe, runs on the loop.

    Args:
        config: Window counts and release margin.
        thresholds: The thresholds of the participant's line.
    """

    __slots__ = ("_config", "_recent", "_thresholds", "aggregate", "state", "windows")

    def __init__(self, config: VerdictConfig, thresholds: Thresholds) -> None:
        self._config = config
        self._thresholds = thresholds
        self._recent: deque[float] = deque(maxlen=config.history_windows)
        self.state = Verdict.LISTENING
        self.windows = 0  # windows scored so far
        self.aggregate: float | None = None  # None until the first window

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds this policy decides with."""
        return self._thresholds

    def push(self, score: WindowScore) -> Verdict | None:
        """Feed the next window score of this participant, in window order.

        Returns:
            The new verdict when it changed, else None.
        """
        self._recent.append(score.score)
        self.windows += 1
        self.aggregate = statistics.median(self._recent)
        handler = {
            Verdict.LISTENING: self._from_listening,
            Verdict.HUMAN: self._from_human,
            Verdict.SUSPECT: self._from_suspect,
            Verdict.SYNTHETIC: self._from_synthetic,
        }[self.state]
        new = handler(self.aggregate)
        if new == self.state:
            return None
        self.state = new
        return new

    def _rising(self, agg: float) -> Verdict:
        if agg >= self._thresholds.synthetic:
            return Verdict.SYNTHETIC
        if agg >= self._thresholds.suspect:
            return Verdict.SUSPECT
        return Verdict.HUMAN

    def _from_listening(self, agg: float) -> Verdict:
        if self.windows < self._config.min_windows:
            return Verdict.LISTENING
        return self._rising(agg)

    def _from_human(self, agg: float) -> Verdict:
        return self._rising(agg)

    def _from_suspect(self, agg: float) -> Verdict:
        if agg >= self._thresholds.synthetic:
            return Verdict.SYNTHETIC
        if agg < self._thresholds.suspect - self._config.release_margin:
            return Verdict.HUMAN
        return Verdict.SUSPECT

    def _from_synthetic(self, agg: float) -> Verdict:
        margin = self._config.release_margin
        if agg >= self._thresholds.synthetic - margin:
            return Verdict.SYNTHETIC
        if agg >= self._thresholds.suspect - margin:
            return Verdict.SUSPECT
        return Verdict.HUMAN
