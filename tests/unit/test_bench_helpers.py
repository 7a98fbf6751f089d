"""The capacity benchmark's arithmetic: histogram quantiles and the falling-behind verdict."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.load import behind
from benchmarks.service import Sample, delta, quantile

pytestmark = pytest.mark.unit
NAME = "clonewatch_score_latency_seconds"


def _histogram(counts: dict[str, float], total: float = 0.0) -> Sample:
    """Cumulative bucket counts by upper edge, plus a counter."""
    sample: Sample = {(f"{NAME}_bucket", (("le", le),)): v for le, v in counts.items()}
    sample[("clonewatch_windows_scored_total", ())] = total
    return sample


def test_quantile_interpolates_inside_the_bucket_between_snapshots() -> None:
    before = _histogram({"0.1": 10, "0.5": 10, "1.0": 10, "+Inf": 10})
    # 100 new observations: 50 below 0.1 s, 40 in (0.1, 0.5], 10 in (0.5, 1.0].
    after = _histogram({"0.1": 60, "0.5": 100, "1.0": 110, "+Inf": 110})
    assert quantile(after, before, NAME, 0.5) == pytest.approx(0.1)
    assert quantile(after, before, NAME, 0.7) == pytest.approx(0.1 + 0.4 * 20 / 40)
    assert quantile(after, before, NAME, 0.99) == pytest.approx(0.5 + 0.5 * 9 / 10)


def test_quantile_of_no_observations_is_none_and_overflow_is_the_last_edge() -> None:
    same = _histogram({"0.1": 5, "+Inf": 5})
    assert quantile(same, same, NAME, 0.5) is None
    after = _histogram({"0.1": 5, "+Inf": 15})
    assert quantile(after, same, NAME, 0.99) == pytest.approx(0.1)


def test_delta_sums_matching_labels() -> None:
    a: Sample = {("x_total", (("stage", "rtp"),)): 1.0, ("x_total", (("stage", "runtime"),)): 2.0}
    b: Sample = {("x_total", (("stage", "rtp"),)): 4.0, ("x_total", (("stage", "runtime"),)): 7.0}
    assert delta(b, a, "x_total") == 8.0
    assert delta(b, a, "x_total", stage="runtime") == 5.0


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "generator": {"established": 10},
        "calls": 10,
        "streams": 10,
        "audio_s_per_s": 9.8,
        "latency_p99_s": 0.3,
        "rtp_packets_lost": 0.0,
        "udp_socket_drops": 0,
        "packets_expected_per_s": 500,
        "interval_s": 20.0,
        "rtp_packets_dropped": 0.0,
        "windows_dropped": 0.0,
    }
    row.update(changes)
    return row


def test_a_level_is_behind_for_latency_drops_loss_or_refused_calls() -> None:
    assert behind(_row(), 10) == []
    assert "p99" in behind(_row(latency_p99_s=1.2), 10)[0]
    assert "p99" in behind(_row(latency_p99_s=None), 10)[0]
    assert "dropped" in behind(_row(windows_dropped=3.0), 10)[0]
    assert "lost" in behind(_row(udp_socket_drops=50), 10)[0]
    assert behind(_row(udp_socket_drops=5), 10) == []  # within 0.1 % of 10000 packets
    assert "set up" in behind(_row(generator={"established": 9}), 10)[0]
    assert "backlog" in behind(_row(audio_s_per_s=9.0), 10)[0]
