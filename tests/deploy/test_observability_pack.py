"""The Grafana dashboard and the Prometheus alert rules reference only series (and
labels, and /v1/chat stages) that the gateway's /metrics output really has."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest
import yaml
from litestar import Controller
from litestar.handlers import HTTPRouteHandler
from prometheus_client.parser import text_string_to_metric_families

import adapters.http.controllers as controllers
from adapters.telemetry.metrics import RequestMetrics
from domain.stages import TIMED_STAGES

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "gateway-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Series Prometheus itself adds to every scrape, and the labels it adds to every series.
PROMETHEUS_SERIES = {"up"}
TARGET_LABELS = {"job", "instance"}
# PromQL words that look like metric names.
PROMQL_WORDS = {
    "sum", "rate", "irate", "increase", "histogram_quantile", "by", "without", "and", "or",
    "unless", "on", "ignoring", "group_left", "group_right", "min", "max", "avg", "count",
    "clamp_min", "clamp_max", "abs", "bool", "offset", "humanizePercentage",
    "humanizeDuration",
}  # fmt: skip
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*\"([^\"]*)\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


@pytest.fixture(scope="module")
def exposed() -> dict[str, set[str]]:
    """Every series name of the gateway's Prometheus output, with its label names."""
    metrics = RequestMetrics()
    metrics.record("/v1/chat", "POST", 200, 0.2)
    metrics.record("/v1/models", "GET", 401, 0.001)
    for stage in TIMED_STAGES:
        metrics.record_stage(stage, 0.05)
    metrics.dependency("max_serve", up=True)
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.prometheus().decode()):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def route_templates() -> set[str]:
    """The paths the gateway's controllers serve: what the ``route`` label holds."""
    routes = set()
    for module in pkgutil.iter_modules(controllers.__path__):
        namespace = vars(importlib.import_module(f"{controllers.__name__}.{module.name}"))
        for cls in namespace.values():
            if isinstance(cls, type) and issubclass(cls, Controller) and cls is not Controller:
                for handler in vars(cls).values():
                    if isinstance(handler, HTTPRouteHandler):
                        routes |= {cls.path + (p if p != "/" else "") for p in handler.paths}
    return routes


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", GROUPING.sub("", without_strings))
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", without_ranges))
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("__")}


EXPRESSIONS = [pytest.param(e, id=f"dashboard-{i}") for i, e in enumerate(dashboard_exprs())] + [
    pytest.param(e, id=f"alert-{i}") for i, e in enumerate(alert_exprs())
]


def test_the_pack_has_what_the_checklist_asks() -> None:
    titles = " | ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"])
    for needed in ("Request rate", "Error rate", "p50 / p95 / p99", "Auth failures", "stage"):
        assert needed in titles, needed
    alerts = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert {"GatewayHighErrorRate", "GatewayChatLatencyOverBudget", "GatewayUpstreamFailing"} <= (
        alerts
    )


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_every_metric_exists(expr: str, exposed: dict[str, set[str]]) -> None:
    names = metric_names(expr)
    assert names, f"no metric found in {expr}"
    missing = names - set(exposed) - PROMETHEUS_SERIES
    assert not missing, f"not in the gateway's /metrics: {sorted(missing)}"


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_every_label_exists(expr: str, exposed: dict[str, set[str]]) -> None:
    known = TARGET_LABELS | {label for labels in exposed.values() for label in labels}
    for name, matchers in SELECTOR.findall(expr):
        labels = exposed.get(name, set()) | TARGET_LABELS
        for label, _, _ in MATCHER.findall(matchers):
            assert label in labels, f"{name} has no label {label}"
    for grouping in GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in grouping.split(","))):
            assert label in known, f"no series has the label {label}"


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_stages_and_routes_exist(expr: str) -> None:
    known = {"stage": set(TIMED_STAGES), "route": route_templates()}
    for label, operator, value in MATCHER.findall(expr):
        if label in known and operator in ("=", "=~"):
            for alternative in value.split("|") if operator == "=~" else [value]:
                assert alternative in known[label], f"no {label} {alternative}"


def test_alerts_are_complete_rules() -> None:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
