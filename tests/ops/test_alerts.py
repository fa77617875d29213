"""The Prometheus alert rules (deploy/prometheus/alerts.yaml) and the worker's metrics exposition:
structure, metric names, `promtool check rules` / `test rules` / `check metrics`, chart copy."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.promql import metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"
CHART_COPY = ROOT / "deploy" / "helm" / "amili-customer-sync" / "files" / "alerts.yaml"
SEVERITIES = {"info", "warning", "critical"}
# What the rules must cover.
REQUIRED_ALERTS = {
    "AmiliSyncNoRecentSuccess",
    "AmiliSyncDeadLettersGrowing",
    "AmiliSyncRunsFailing",
    "AmiliSyncRestoreStuck",
    "AmiliSyncWorkerDown",
}


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("groups"), list) and data["groups"]
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_rules_are_complete_alerts(rules: list[dict[str, Any]]) -> None:
    names = [r.get("alert") for r in rules]
    assert all(names), "every rule is an alert (no recording rules here)"
    assert len(names) == len(set(names)), names
    assert set(names) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(names)
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"].get("summary"), rule["alert"]
        assert rule["annotations"].get("description"), rule["alert"]


def test_rules_use_only_known_metrics(rules: list[dict[str, Any]], known_metric_names: set[str]) -> None:
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = names - known_metric_names
        assert not unknown, f"{rule['alert']} uses {sorted(unknown)}: not exported by service/metrics.py"


def test_unit_tests_cover_at_least_two_alerts(rules: list[dict[str, Any]]) -> None:
    data = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    tested = {c["alertname"] for t in data["tests"] for c in t.get("alert_rule_test", [])}
    assert tested <= {r["alert"] for r in rules}, tested
    firing = {
        c["alertname"] for t in data["tests"] for c in t.get("alert_rule_test", []) if c.get("exp_alerts")
    }
    assert len(firing) >= 2, f"unit tests expect only {firing} to fire"


def test_promtool_check_rules(promtool: Path) -> None:
    result = subprocess.run(
        [str(promtool), "check", "rules", str(RULES), str(CHART_COPY)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(promtool: Path) -> None:
    result = subprocess.run(
        [str(promtool), "test", "rules", str(RULES_TEST)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_metrics_on_the_real_exposition(promtool: Path, exposition_text: str) -> None:
    """The /metrics text of the worker (prometheus-client, every metric touched) passes
    promtool's lint (`_total` counters, base units, help text, ...)."""
    assert "amili_sync_runs_total" in exposition_text
    result = subprocess.run(
        [str(promtool), "check", "metrics"],
        input=exposition_text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_worker_metric_is_exposed(worker_metric_names: set[str]) -> None:
    from tests.ops.exposition import worker_metrics

    for metric in worker_metrics():
        assert metric._name in worker_metric_names or f"{metric._name}_total" in worker_metric_names


def test_chart_ships_the_same_rules() -> None:
    assert CHART_COPY.read_bytes() == RULES.read_bytes(), (
        "the chart's files/alerts.yaml differs from deploy/prometheus/alerts.yaml: "
        "cp deploy/prometheus/alerts.yaml deploy/helm/amili-customer-sync/files/alerts.yaml"
    )
