"""The shipped Prometheus config, alert rules and dashboard queries pass promtool.

`promtool` comes with the Debian package `prometheus` (`make test` installs it).
Besides syntax, every alert is unit-tested with `promtool test rules` against synthetic
series: it fires on the condition it names and stays quiet on healthy input.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promql import PROMETHEUS_CONFIG, RULES, dashboard_exprs, rules, substitute_grafana_vars

pytestmark = pytest.mark.unit

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
T = 'job="clonewatch", instance="cw:8080"'  # the target labels of every test series
TL = {"job": "clonewatch", "instance": "cw:8080"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_is_installed() -> None:
    assert Path(PROMTOOL).exists(), "install the Debian package `prometheus`"


def test_check_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_severity_and_annotations() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool has no offline query parser, but it checks recording rules' expressions.
    records = [
        {"record": f"clonewatch:dashboard_{i}", "expr": substitute_grafana_vars(expr)}
        for i, (_, expr) in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(records)} rules found" in result.stdout


def test_a_broken_expression_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    bad = {"alert": "Bad", "expr": "sum(rate(x_total[5m])"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [bad]}]}))
    assert promtool("check", "rules", str(path)).returncode != 0


def _alert(name: str, at: str, *labels: dict[str, str]) -> dict[str, Any]:
    exp = [{"exp_labels": each} for each in labels]
    return {"eval_time": at, "alertname": name, "exp_alerts": exp}


def _case(series: dict[str, str], *alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": list(alerts),
    }


# (test id, input series, expected alerts)
CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "down",
        _case(
            {f"up{{{T}}}": "1 1 0x10"},
            _alert("ClonewatchDown", "2m"),
            _alert("ClonewatchDown", "6m", {**TL, "severity": "critical"}),
        ),
    ),
    (
        "no-audio",
        _case(
            {
                f'clonewatch_calls_active{{{T}, ingress="sip"}}': "2x15",
                f'clonewatch_audio_seconds_total{{{T}, ingress="sip"}}': "0+60x3 180x12",
                # webrtc calls up, its audio counter never even created
                f'clonewatch_calls_active{{{T}, ingress="webrtc"}}': "0 0 1x13",
                f'clonewatch_calls_active{{{T}, ingress="siprec"}}': "3x15",
                f'clonewatch_audio_seconds_total{{{T}, ingress="siprec"}}': "0+60x15",
            },
            _alert("ClonewatchNoAudio", "4m"),
            _alert(
                "ClonewatchNoAudio",
                "12m",
                {**TL, "ingress": "sip", "severity": "critical"},
                {**TL, "ingress": "webrtc", "severity": "critical"},
            ),
        ),
    ),
    (
        "packet-loss",
        _case(
            {
                f'clonewatch_rtp_packets_total{{{T}, ingress="sip"}}': "0+2700x20",
                f'clonewatch_rtp_packets_lost_total{{{T}, ingress="sip"}}': "0+300x20",
                f'clonewatch_rtp_packets_total{{{T}, ingress="siprec"}}': "0+2970x20",
                f'clonewatch_rtp_packets_lost_total{{{T}, ingress="siprec"}}': "0+30x20",
            },
            _alert(
                "ClonewatchPacketLossHigh", "15m", {**TL, "ingress": "sip", "severity": "warning"}
            ),
        ),
    ),
    (
        "score-latency",
        _case(
            {
                f'clonewatch_score_latency_seconds_bucket{{{T}, le="1.0"}}': "0+10x20",
                f'clonewatch_score_latency_seconds_bucket{{{T}, le="2.0"}}': "0+10x20",
                f'clonewatch_score_latency_seconds_bucket{{{T}, le="3.0"}}': "0+10x5 50+100x15",
                f'clonewatch_score_latency_seconds_bucket{{{T}, le="+Inf"}}': "0+10x5 50+100x15",
            },
            _alert("ClonewatchScoreLatencyHigh", "5m"),
            _alert("ClonewatchScoreLatencyHigh", "16m", {**TL, "severity": "warning"}),
        ),
    ),
    (
        "dropped",
        _case(
            {
                f'clonewatch_dropped_total{{{T}, stage="runtime", reason="overload"}}': (
                    "0x5 0+4x10"
                ),
            },
            _alert("ClonewatchWindowsDropped", "4m"),
            _alert(
                "ClonewatchWindowsDropped",
                "9m",
                {**TL, "stage": "runtime", "reason": "overload", "severity": "warning"},
            ),
        ),
    ),
    (
        "model-on-cpu",
        _case(
            {
                'clonewatch_model_info{job="clonewatch", instance="gpu:8080", name="m", '
                'version="1", provider="CPUExecutionProvider", '
                'configured_providers="CUDAExecutionProvider,CPUExecutionProvider"}': "1x5",
                'clonewatch_model_info{job="clonewatch", instance="cpu:8080", name="m", '
                'version="1", provider="CPUExecutionProvider", '
                'configured_providers="CPUExecutionProvider"}': "1x5",
                'clonewatch_model_info{job="clonewatch", instance="ok:8080", name="m", '
                'version="1", provider="CUDAExecutionProvider", '
                'configured_providers="CUDAExecutionProvider,CPUExecutionProvider"}': "1x5",
            },
            _alert(
                "ClonewatchModelOnCpu",
                "2m",
                {
                    "job": "clonewatch",
                    "instance": "gpu:8080",
                    "name": "m",
                    "version": "1",
                    "provider": "CPUExecutionProvider",
                    "configured_providers": "CUDAExecutionProvider,CPUExecutionProvider",
                    "severity": "warning",
                },
            ),
        ),
    ),
    (
        "alert-storm",
        _case(
            {
                f'clonewatch_alerts_total{{{T}, kind="raised"}}': "0+1x10 10+5x10",
                f'clonewatch_alerts_total{{{T}, kind="acknowledged"}}': "0+10x20",
            },
            _alert("ClonewatchAlertStorm", "9m"),
            _alert("ClonewatchAlertStorm", "18m", {**TL, "severity": "warning"}),
        ),
    ),
    (
        "sink-failures",
        _case(
            {
                f'clonewatch_sink_failures_total{{{T}, sink="webhook"}}': "0+3x30",
                f'clonewatch_sink_deliveries_total{{{T}, sink="webhook"}}': "0+10x15 150x15",
                f'clonewatch_sink_deliveries_total{{{T}, sink="jsonl"}}': "0+10x30",
            },
            _alert("ClonewatchSinkFailures", "5m"),
            _alert(
                "ClonewatchSinkFailures", "12m", {**TL, "sink": "webhook", "severity": "warning"}
            ),
            _alert("ClonewatchSinkDown", "12m"),
            _alert("ClonewatchSinkDown", "28m", {**TL, "sink": "webhook", "severity": "critical"}),
        ),
    ),
]


def _rules_without_annotations(tmp_path: Path) -> Path:
    """The shipped rules minus annotations, so a case states only the labels it expects."""
    data = yaml.safe_load(RULES.read_text())
    for group in data["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(("case", "test"), CASES, ids=[c for c, _ in CASES])
def test_alert_fires_on_its_condition_only(case: str, test: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / f"{case}.yml"
    rule_file = _rules_without_annotations(tmp_path)
    spec = {"rule_files": [str(rule_file)], "evaluation_interval": "1m", "tests": [test]}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_annotations_render(tmp_path: Path) -> None:
    test = _case(
        {
            f'clonewatch_rtp_packets_total{{{T}, ingress="sip"}}': "0+2700x20",
            f'clonewatch_rtp_packets_lost_total{{{T}, ingress="sip"}}': "0+300x20",
        },
    )
    test["alert_rule_test"] = [
        {
            "eval_time": "15m",
            "alertname": "ClonewatchPacketLossHigh",
            "exp_alerts": [
                {
                    "exp_labels": {**TL, "ingress": "sip", "severity": "warning"},
                    "exp_annotations": {
                        "summary": "RTP packet loss above 5% on cw:8080 (sip)",
                        "description": "10% of RTP packets are lost on cw:8080 (sip). Scores "
                        "on lossy audio are less reliable; check the network path from the "
                        "SBC or recorder.",
                    },
                }
            ],
        }
    ]
    path = tmp_path / "annotations.yml"
    path.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "tests": [test]}))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_promtool_case() -> None:
    tested = {a["alertname"] for _, t in CASES for a in t["alert_rule_test"]}
    assert tested == {r["alert"] for r in rules()}


def test_promtool_test_would_catch_a_wrong_expectation(tmp_path: Path) -> None:
    wrong = _case(
        {f"up{{{T}}}": "1x10"}, _alert("ClonewatchDown", "6m", {**TL, "severity": "critical"})
    )
    path = tmp_path / "wrong.yml"
    path.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "tests": [wrong]}))
    assert promtool("test", "rules", str(path)).returncode != 0
