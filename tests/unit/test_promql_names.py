"""Every metric the dashboard and the alert rules query is one the service exposes.

A renamed or removed metric (or label) in `alerts/metrics.py` breaks this test instead of
silently emptying a Grafana panel or disarming an alert.
"""

from __future__ import annotations

import pytest
from prometheus_client.metrics import MetricWrapperBase

from alerts.metrics import Metrics
from tests.promql import (
    SCRAPE_SERIES,
    TARGET_LABELS,
    dashboard_exprs,
    exposed_names,
    metric_names,
    rule_exprs,
    selectors,
)

pytestmark = pytest.mark.unit

ALL_EXPRS = dashboard_exprs() + rule_exprs()
# Labels of the info metric are its values: what the composition root passes to `.info()`.
MODEL_INFO_LABELS = {"name", "version", "provider", "configured_providers"}


def _labelnames(metrics: Metrics) -> dict[str, set[str]]:
    """Family name -> label names, from the metric objects (families may have no samples)."""
    out: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            out[value._name] = set(value._labelnames)
    return out


# --- the extractor itself -------------------------------------------------------------


def test_extracts_names_not_functions_labels_or_durations() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, job) (rate(a_bucket{job="x", le!="+Inf"}[5m])))'
        " / on (job) group_left (ingress) sum without (instance) (b_total offset 1h)"
        ' > bool 2e-3 unless c and label_replace(d, "dst", "$1", "src", "(.*)")'
        ' or count_values("v", e[10m:1m]) or {__name__=\'f\', job="y"}'
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "d", "e", "f"}
    by_name = {s.metric: s.labels for s in selectors(expr)}
    assert by_name["a_bucket"] == {"job", "le"}
    assert by_name["f"] == {"__name__", "job"}


def test_grafana_variables_are_not_names() -> None:
    expr = 'sum(rate(x_total{instance=~"$instance", job="${job}"}[$__rate_interval]))'
    assert metric_names(expr) == {"x_total"}


def test_unknown_function_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown PromQL function"):
        metric_names("rat(x_total[5m])")


def test_unbalanced_matcher_is_an_error() -> None:
    with pytest.raises(ValueError, match="unbalanced"):
        metric_names('x{job="a"')


def test_exposed_names_include_suffixes_and_process_metrics() -> None:
    names = exposed_names(Metrics().registry)
    for name in (
        "clonewatch_calls_total",  # labelled counter with no sample yet
        "clonewatch_calls_active",
        "clonewatch_score_latency_seconds_bucket",
        "clonewatch_score_latency_seconds_count",
        "clonewatch_model_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert name in names
    assert "clonewatch_calls" not in names  # a counter is only exposed with `_total`


def test_a_renamed_metric_would_be_caught() -> None:
    names = exposed_names(Metrics().registry)
    assert metric_names("rate(clonewatch_call_total[5m])") - set(names) == {"clonewatch_call_total"}


# --- the shipped dashboard and rules --------------------------------------------------


def test_sources_are_not_empty() -> None:
    where = {w.split()[0] for w, _ in ALL_EXPRS}
    assert where == {"panel", "variable", "rule"}
    assert len(ALL_EXPRS) > 30


@pytest.mark.parametrize(("where", "expr"), ALL_EXPRS, ids=[w for w, _ in ALL_EXPRS])
def test_every_metric_is_exposed(where: str, expr: str) -> None:
    exposed = set(exposed_names(Metrics().registry)) | SCRAPE_SERIES
    names = metric_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    assert names <= exposed, f"{where}: not exposed: {sorted(names - exposed)}"


@pytest.mark.parametrize(("where", "expr"), ALL_EXPRS, ids=[w for w, _ in ALL_EXPRS])
def test_every_matcher_label_exists(where: str, expr: str) -> None:
    metrics = Metrics()
    family_of = exposed_names(metrics.registry)
    labelnames = _labelnames(metrics)
    labelnames["clonewatch_model"] = MODEL_INFO_LABELS
    for sel in selectors(expr):
        if sel.metric in SCRAPE_SERIES:
            continue
        known = labelnames.get(family_of[sel.metric], set()) | TARGET_LABELS
        assert sel.labels <= known, f"{where}: {sel.metric} has no {sorted(sel.labels - known)}"


def test_every_clonewatch_family_is_on_the_dashboard() -> None:
    metrics = Metrics()
    family_of = exposed_names(metrics.registry)
    used = {family_of[n] for _, e in dashboard_exprs() for n in metric_names(e) if n in family_of}
    ours = {f for f in family_of.values() if f.startswith("clonewatch_")}
    assert ours - used == set()
