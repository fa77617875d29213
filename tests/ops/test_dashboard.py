"""The Grafana dashboard (deploy/grafana/dashboard.json): a schema check of the JSON, every query
on metrics that exist, PromQL that Prometheus parses, and the chart's copy identical."""

from __future__ import annotations

import json
import subprocess
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.promql import grafana_variables, metric_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"
CHART_COPY = ROOT / "deploy" / "helm" / "amili-customer-sync" / "files" / "dashboard.json"

PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "text", "row"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}
# What the dashboard must show (the metric each required panel is built on).
REQUIRED_METRICS = {
    "runs by status": "amili_sync_runs_total",
    "run duration": "amili_sync_run_duration_seconds_bucket",
    "consumer lag": "kafka_consumergroup_lag",
    "change events by type": "amili_sync_change_events_total",
    "API calls by status": "amili_sync_api_calls_total",
    "retries by cause": "amili_sync_api_retries_total",
    "DLQ records": "amili_sync_dlq_records_total",
    "staleness per client": "amili_sync_last_success_timestamp_seconds",
    "restore lag": "amili_sync_restore_lag_records",
    "partitions owned": "amili_sync_partitions_owned",
    "API latency by route": "amili_sync_api_request_seconds_bucket",
    "API error ratio": "amili_sync_api_request_seconds_count",
    "workers by version": "amili_sync_build_info",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows
    return out


def _queries(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(p, t) for p in _panels(dashboard) for t in p.get("targets", [])]


def test_top_level(dashboard: dict[str, Any]) -> None:
    for key, kind in {
        "uid": str,
        "title": str,
        "schemaVersion": int,
        "panels": list,
        "templating": dict,
        "time": dict,
    }.items():
        assert isinstance(dashboard.get(key), kind), key
    assert dashboard["panels"], "no panels"
    assert 0 < len(dashboard["uid"]) <= 40
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert len(names) == len(set(names)), names
    assert any(
        v["type"] == "datasource" and v["query"] == "prometheus" for v in dashboard["templating"]["list"]
    )


def test_panel_ids_unique_and_grid_positions_valid(dashboard: dict[str, Any]) -> None:
    panels = _panels(dashboard)
    ids = [p.get("id") for p in panels]
    assert all(isinstance(i, int) and i > 0 for i in ids), ids
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    for p in panels:
        assert p.get("type") in PANEL_TYPES, (p.get("id"), p.get("type"))
        assert p.get("title"), p["id"]
        grid = p.get("gridPos")
        assert isinstance(grid, dict), f"panel {p['id']} has no gridPos"
        assert all(isinstance(grid.get(k), int) for k in "xywh"), (p["id"], grid)
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0, (p["id"], grid)
        assert grid["x"] + grid["w"] <= 24, f"panel {p['id']} is wider than the 24-column grid"
    boxes = [(p["id"], p["gridPos"]) for p in dashboard["panels"]]
    for (a, ga), (b, gb) in combinations(boxes, 2):
        overlap = (
            ga["x"] < gb["x"] + gb["w"]
            and gb["x"] < ga["x"] + ga["w"]
            and ga["y"] < gb["y"] + gb["h"]
            and gb["y"] < ga["y"] + ga["h"]
        )
        assert not overlap, f"panels {a} and {b} overlap"


def test_every_panel_queries_prometheus(dashboard: dict[str, Any]) -> None:
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for p in _panels(dashboard):
        if p["type"] in {"row", "text"}:
            continue
        targets = p.get("targets")
        assert targets, f"panel {p['id']} ({p['title']}) has no targets"
        refs = [t.get("refId") for t in targets]
        assert len(refs) == len(set(refs)) and all(refs), (p["id"], refs)
        for t in targets:
            source = t.get("datasource") or p.get("datasource")
            assert isinstance(source, dict), f"panel {p['id']} target {t['refId']} has no datasource"
            assert source.get("type") == "prometheus", (p["id"], source)
            uid = source.get("uid", "")
            if uid.startswith("$"):
                assert grafana_variables(uid) <= variables, (p["id"], uid)
            assert isinstance(t.get("expr"), str) and t["expr"].strip(), (p["id"], t["refId"])


def test_queries_use_only_known_metrics(dashboard: dict[str, Any], known_metric_names: set[str]) -> None:
    for p, t in _queries(dashboard):
        names = metric_names(t["expr"])
        assert names, f"panel {p['id']} {t['refId']}: no metric in {t['expr']!r}"
        unknown = names - known_metric_names
        assert not unknown, (
            f"panel {p['id']} ({p['title']}) uses {sorted(unknown)}: not in service/metrics.py nor "
            f"in tests/ops/conftest.py EXTERNAL_METRICS"
        )


def test_query_variables_are_defined(dashboard: dict[str, Any]) -> None:
    variables = {v["name"] for v in dashboard["templating"]["list"]} | GRAFANA_BUILTINS
    for p, t in _queries(dashboard):
        assert grafana_variables(t["expr"]) <= variables, (p["id"], t["expr"])


def test_required_panels_are_there(dashboard: dict[str, Any]) -> None:
    used = set().union(*(metric_names(t["expr"]) for _, t in _queries(dashboard)))
    missing = {what: metric for what, metric in REQUIRED_METRICS.items() if metric not in used}
    assert not missing, f"the dashboard lacks panels for {missing}"


def _substitute(expr: str) -> str:
    for variable, value in {
        "${datasource}": "",
        "$__rate_interval": "2m",
        "$__interval": "1m",
        "$__range": "1d",
        "$namespace": ".*",
        "$consumergroup": "amili-customer-sync",
    }.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"add a substitution for the variable in {expr!r}"
    return expr


def test_queries_parse_as_promql(dashboard: dict[str, Any], promtool: Path, tmp_path: Path) -> None:
    """Every query (variables substituted) as a recording rule, checked by `promtool check rules`."""
    rules = [
        {"record": f"dashboard:panel_{p['id']}_{t['refId']}", "expr": _substitute(t["expr"])}
        for p, t in _queries(dashboard)
    ]
    path = tmp_path / "dashboard-queries.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    result = subprocess.run(
        [str(promtool), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_ships_the_same_dashboard() -> None:
    assert CHART_COPY.read_bytes() == DASHBOARD.read_bytes(), (
        "the chart's files/dashboard.json differs from deploy/grafana/dashboard.json: "
        "cp deploy/grafana/dashboard.json deploy/helm/amili-customer-sync/files/dashboard.json"
    )
