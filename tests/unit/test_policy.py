"""Verdict hysteresis and threshold resolution."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.config import LineThresholds, VerdictConfig
from alerts.policy import Thresholds, VerdictPolicy, peak_aggregate, resolve_thresholds
from alerts.types import Verdict, WindowScore

pytestmark = pytest.mark.unit

THRESHOLDS = Thresholds(suspect=0.5, synthetic=0.8)
CONFIG = VerdictConfig(min_windows=2, history_windows=4, release_margin=0.1)


def _feed(policy: VerdictPolicy, scores: list[float]) -> list[Verdict | None]:
    out = []
    for score in scores:
        index = policy.windows
        window = WindowScore("c", "p", index, index * 0.5, index * 0.5 + 2.0, score, 1.0, 0.01)
        out.append(policy.push(window))
    return out


def test_listening_until_min_windows() -> None:
    policy = VerdictPolicy(VerdictConfig(min_windows=3), THRESHOLDS)
    assert _feed(policy, [0.1, 0.1]) == [None, None]
    assert policy.state == Verdict.LISTENING
    assert _feed(policy, [0.1]) == [Verdict.HUMAN]


def test_listening_can_go_straight_to_synthetic() -> None:
    policy = VerdictPolicy(CONFIG, THRESHOLDS)
    assert _feed(policy, [0.95, 0.97]) == [None, Verdict.SYNTHETIC]


def test_one_odd_window_does_not_flip_human() -> None:
    policy = VerdictPolicy(CONFIG, THRESHOLDS)
    changes = _feed(policy, [0.1, 0.1, 0.1, 0.1, 0.99, 0.1, 0.1])
    assert [c for c in changes if c is not None] == [Verdict.HUMAN]
    assert policy.state == Verdict.HUMAN


def test_one_odd_window_does_not_release_synthetic() -> None:
    policy = VerdictPolicy(CONFIG, THRESHOLDS)
    _feed(policy, [0.9, 0.9, 0.9, 0.9])
    assert policy.state == Verdict.SYNTHETIC
    assert _feed(policy, [0.0, 0.9, 0.9]) == [None, None, None]


def test_sustained_high_then_low_round_trip() -> None:
    policy = VerdictPolicy(CONFIG, THRESHOLDS)
    changes = _feed(policy, [0.1, 0.1] + [0.95] * 6 + [0.05] * 6)
    # The median crosses the suspect band on the way up and down.
    assert [c for c in changes if c is not None] == [
        Verdict.HUMAN,
        Verdict.SUSPECT,
        Verdict.SYNTHETIC,
        Verdict.SUSPECT,
        Verdict.HUMAN,
    ]


def test_hysteresis_holds_inside_release_margin() -> None:
    policy = VerdictPolicy(CONFIG, THRESHOLDS)
    _feed(policy, [0.85] * 4)
    assert policy.state == Verdict.SYNTHETIC
    # 0.75 is below the synthetic threshold but within the 0.1 release margin.
    assert _feed(policy, [0.75] * 4) == [None] * 4
    # 0.65 is past the margin: down to suspect, not human.
    assert [c for c in _feed(policy, [0.65] * 4) if c] == [Verdict.SUSPECT]
    # 0.45 stays suspect (margin), 0.35 releases to human.
    assert _feed(policy, [0.45] * 4) == [None] * 4
    assert [c for c in _feed(policy, [0.35] * 4) if c] == [Verdict.HUMAN]


def test_suspect_rises_to_synthetic() -> None:
    policy = VerdictPolicy(CONFIG, THRESHOLDS)
    changes = _feed(policy, [0.6] * 4 + [0.9] * 4)
    assert [c for c in changes if c] == [Verdict.SUSPECT, Verdict.SYNTHETIC]


def test_aggregate_is_median_of_history() -> None:
    policy = VerdictPolicy(CONFIG, THRESHOLDS)
    _feed(policy, [0.0, 0.2, 0.4, 1.0, 0.6])  # history keeps the last four
    assert policy.aggregate == pytest.approx(0.5)


def test_resolve_prefers_line_then_global_then_manifest() -> None:
    manifest = {"eer": 0.4, "fpr_1pct": 0.7}
    config = VerdictConfig(
        synthetic_threshold=0.85,
        lines={"+1555": LineThresholds(suspect_threshold=0.3, synthetic_threshold=0.95)},
    )
    assert resolve_thresholds(config, manifest, 0.5, "+1555") == Thresholds(0.3, 0.95)
    assert resolve_thresholds(config, manifest, 0.5, "other") == Thresholds(0.4, 0.85)
    assert resolve_thresholds(VerdictConfig(), manifest, 0.5, "") == Thresholds(0.4, 0.7)


def test_resolve_falls_back_to_manifest_threshold() -> None:
    assert resolve_thresholds(VerdictConfig(), {}, 0.6, "x") == Thresholds(0.6, 0.6)
    assert resolve_thresholds(VerdictConfig(), {"eer": 0.3}, 0.6, "x") == Thresholds(0.3, 0.6)


def test_inverted_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="above synthetic"):
        resolve_thresholds(VerdictConfig(suspect_threshold=0.9), {"fpr_1pct": 0.8}, 0.5, "")


@given(
    level=st.floats(0.0, 1.0),
    outlier=st.floats(0.0, 1.0),
    before=st.integers(4, 10),
    after=st.integers(0, 10),
)
def test_a_single_outlier_never_changes_a_settled_verdict(
    level: float, outlier: float, before: int, after: int
) -> None:
    policy = VerdictPolicy(CONFIG, THRESHOLDS)
    _feed(policy, [level] * before)
    settled = policy.state
    assert _feed(policy, [outlier] + [level] * after) == [None] * (after + 1)
    assert policy.state == settled


@given(
    scores=st.lists(st.floats(0.0, 1.0), max_size=12),
    suspect=st.floats(0.0, 1.0),
    synthetic=st.floats(0.0, 1.0),
    min_windows=st.integers(1, 4),
    history=st.integers(1, 5),
)
def test_alerted_exactly_at_thresholds_up_to_the_peak_aggregate(
    scores: list[float], suspect: float, synthetic: float, min_windows: int, history: int
) -> None:
    config = VerdictConfig(min_windows=min_windows, history_windows=history, release_margin=0.1)
    thresholds = Thresholds(min(suspect, synthetic), synthetic)
    policy = VerdictPolicy(config, thresholds)
    alerted = Verdict.SYNTHETIC in _feed(policy, scores)
    peak = peak_aggregate(scores, config)
    assert alerted == (peak is not None and synthetic <= peak)


def test_peak_aggregate_is_the_highest_median_after_min_windows() -> None:
    assert peak_aggregate([0.9], CONFIG) is None  # fewer than min_windows: never alerted
    assert peak_aggregate([0.99, 0.1, 0.1, 0.1, 0.2], CONFIG) == pytest.approx(0.545)
    assert peak_aggregate([0.1, 0.2, 0.9, 0.95, 0.3], CONFIG) == pytest.approx(0.6)
