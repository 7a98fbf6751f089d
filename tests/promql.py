"""PromQL of the shipped dashboard and alert rules, and the metric names it refers to.

A small PromQL tokenizer, enough to find every series selector in an expression: an
identifier that is not a function, aggregation or keyword, with the label names of its
`{...}` matchers. Strings, range/subquery brackets, `by (...)`-style label lists and
numbers/durations are skipped. Grafana variables are replaced by plain values first, so
the same expressions can also be sent to a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "configs" / "grafana" / "clonewatch.json"
RULES = ROOT / "configs" / "prometheus" / "clonewatch-rules.yml"
PROMETHEUS_CONFIG = ROOT / "configs" / "prometheus" / "prometheus.yml"

# Values for Grafana's variables, so a dashboard query becomes plain PromQL.
GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$job": "clonewatch",
    "$instance": ".*",
}

AGGREGATIONS = frozenset(
    "sum avg count min max group stddev stdvar topk bottomk quantile count_values".split()
)
FUNCTIONS = frozenset(
    """abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month
    day_of_week day_of_year days_in_month delta deriv exp floor histogram_quantile
    histogram_count histogram_sum histogram_fraction holt_winters hour idelta increase irate
    label_join label_replace ln log2 log10 minute month predict_linear rate resets round
    scalar sgn sort sort_desc sqrt time timestamp vector year avg_over_time min_over_time
    max_over_time sum_over_time count_over_time quantile_over_time stddev_over_time
    stdvar_over_time last_over_time present_over_time mad_over_time acos acosh asin asinh
    atan atanh cos cosh sin sinh tan tanh deg rad pi""".split()
)
LABEL_LIST_KEYWORDS = frozenset("by without on ignoring group_left group_right".split())
KEYWORDS = frozenset("and or unless bool offset atan2 inf nan start end".split())
# Series Prometheus itself adds to every scrape target.
SCRAPE_SERIES = frozenset(
    """up scrape_duration_seconds scrape_samples_scraped scrape_samples_post_metric_relabeling
    scrape_series_added""".split()
)
# Labels Prometheus attaches to every scraped series (plus `le` on histogram buckets).
TARGET_LABELS = frozenset({"job", "instance", "le", "__name__"})

_TOKEN = re.compile(
    r"""(?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
      |(?P<bracket>\[[^\]]*\])
      |(?P<num>(?:0x[0-9a-fA-F]+|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)[a-z]*)
      |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
      |(?P<space>\s+)
      |(?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)


@dataclass
class Selector:
    """One series selector: a metric name and the label names its matchers use."""

    metric: str
    labels: set[str] = field(default_factory=set)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(expr):
        kind = m.lastgroup or "other"
        if kind != "space":
            out.append((kind, m.group()))
    return out


def _matchers(tokens: list[tuple[str, str]], i: int) -> tuple[set[str], str | None, int]:
    """Read `{...}` from tokens[i] (the `{`): its label names, a `__name__` value, and the end."""
    labels: set[str] = set()
    name = None
    i += 1
    while tokens[i][1] != "}":
        kind, text = tokens[i]
        if kind == "ident":
            labels.add(text)
            if text == "__name__" and tokens[i + 1][1] == "=" and tokens[i + 2][0] == "str":
                name = tokens[i + 2][1][1:-1]
        i += 1
    return labels, name, i + 1


def _skip_parens(tokens: list[tuple[str, str]], i: int) -> int:
    """Index after the parenthesised group that starts at tokens[i]."""
    depth = 0
    while True:
        text = tokens[i][1]
        depth += text == "("
        depth -= text == ")"
        i += 1
        if depth == 0:
            return i


def selectors(expr: str) -> list[Selector]:
    """Every series selector in the PromQL `expr` (Grafana variables replaced first).

    Raises:
        ValueError: an unknown function is called, or a bracket is not closed.
    """
    tokens = _tokens(substitute_grafana_vars(expr)) + [("end", "")]
    found: list[Selector] = []
    i = 0
    try:
        while tokens[i][0] != "end":
            i = _step(tokens, i, found)
    except IndexError:
        raise ValueError(f"unbalanced expression: {expr!r}") from None
    return found


def _step(tokens: list[tuple[str, str]], i: int, found: list[Selector]) -> int:
    kind, text = tokens[i]
    nxt = tokens[i + 1][1]
    if kind == "other" and text == "{":  # a selector with no name: {__name__="..."}
        labels, name, end = _matchers(tokens, i)
        if name is not None:
            found.append(Selector(name, labels))
        return end
    if kind != "ident":
        return i + 1
    if text in LABEL_LIST_KEYWORDS:
        return _skip_parens(tokens, i + 1) if nxt == "(" else i + 1
    if text in KEYWORDS or text in AGGREGATIONS or text in FUNCTIONS:
        return i + 1
    if nxt == "(":
        raise ValueError(f"unknown PromQL function {text!r}")
    selector = Selector(text)
    found.append(selector)
    if nxt == "{":
        selector.labels, _, end = _matchers(tokens, i + 1)
        return end
    return i + 1


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` refers to."""
    return {s.metric for s in selectors(expr)}


def substitute_grafana_vars(expr: str) -> str:
    """Replace Grafana's `$var` / `${var}` by plain values (longest names first)."""
    expr = re.sub(r"\$\{(\w+)\}", r"$\1", expr)
    for var in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(var, GRAFANA_VARS[var])
    return expr


def _walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _walk_panels(panel.get("panels", []))


def dashboard() -> dict[str, Any]:
    """The dashboard JSON."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable of the dashboard.

    A `label_values(SELECTOR, label)` variable query contributes its SELECTOR.
    """
    data = dashboard()
    out = []
    for panel in _walk_panels(data["panels"]):
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in data["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query, re.DOTALL)
        out.append((f"variable {var['name']}", m.group(1) if m else query))
    return out


def rules() -> list[dict[str, Any]]:
    """Every rule of the alert rules file."""
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def rule_exprs() -> list[tuple[str, str]]:
    """(where, PromQL) of every alerting and recording rule."""
    return [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for r in rules()]


def exposed_names(registry: CollectorRegistry) -> dict[str, str]:
    """Every sample name the registry exposes, mapped to its family name.

    A family without samples yet (labelled metrics not yet observed) still counts: its
    names follow from its type, as the text exposition writes them.
    """
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: dict[str, str] = {}
    for family in registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names[family.name + suffix] = family.name
        for sample in family.samples:
            names[sample.name] = family.name
    return names
