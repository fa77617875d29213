"""The Prometheus alert rules: the chart's templated rules (files/alerts.yaml, filled in from values),
their rendering with the defaults (deploy/prometheus/alerts.yaml, unit-tested by promtool), the
rendering for every deploy/helm/ci/*-values.yaml, metric names, runbook links, and the worker's
metrics exposition (`promtool check metrics`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.promql import metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"
CI_VALUES = ROOT / "deploy" / "helm" / "ci"
RUNBOOK = ROOT / "docs" / "runbook.md"
SEVERITIES = {"info", "warning", "critical"}
REQUIRED_ALERTS = {
    "AmiliSyncNoRecentSuccess",
    "AmiliSyncDeadLettersGrowing",
    "AmiliSyncRunsFailing",
    "AmiliSyncRestoreStuck",
    "AmiliSyncWorkerDown",
    "AmiliSyncApiUnauthorized",
    "AmiliSyncApiErrors",
    "AmiliSyncApiSlow",
}
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in CI_VALUES.glob("*-values.yaml"))

if str(ROOT / "scripts" / "lib") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts" / "lib"))
import render_alerts  # noqa: E402


def alerts_of(rules_file: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules_file["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("groups"), list) and data["groups"]
    return alerts_of(data)


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """The PrometheusRule spec rendered by helm for every ci scenario (prometheusRule.enabled on)."""
    return {
        s: render_alerts.rendered_rules([CI_VALUES / f"{s}-values.yaml"], release="amili-sync")
        for s in SCENARIOS
    }


def github_anchors(markdown: str) -> set[str]:
    """The fragment ids GitHub gives the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            text = m.group(1).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_rules_are_complete_alerts(rules: list[dict[str, Any]]) -> None:
    names = [r.get("alert") for r in rules]
    assert all(names), "every rule is an alert (no recording rules here)"
    assert len(names) == len(set(names)), names
    assert set(names) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(names)
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), f"{rule['alert']} has no {key}"


def test_every_runbook_url_resolves_to_a_heading_of_the_runbook(
    rules: list[dict[str, Any]], rendered: dict[str, dict[str, Any]]
) -> None:
    anchors = github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    for scenario, spec in {
        "defaults (deploy/prometheus/alerts.yaml)": {"groups": [{"rules": rules}]},
        **rendered,
    }.items():
        for rule in alerts_of(spec):
            url = rule["annotations"]["runbook_url"]
            page, _, fragment = url.partition("#")
            assert page.endswith("/docs/runbook.md"), f"{scenario} {rule['alert']}: {url}"
            assert fragment in anchors, (
                f"{scenario} {rule['alert']}: no heading #{fragment} in docs/runbook.md"
            )
            assert fragment == rule["alert"].lower(), "each alert links to its own section"
    section = re.compile(r"^## (\w+)$", re.M)
    assert set(section.findall(RUNBOOK.read_text(encoding="utf-8"))) >= {r["alert"] for r in rules}


def test_runbook_url_follows_the_values(rendered: dict[str, dict[str, Any]]) -> None:
    all_on = yaml.safe_load((CI_VALUES / "all-on-values.yaml").read_text())["prometheusRule"]["runbookUrl"]
    for rule in alerts_of(rendered["all-on"]):
        assert rule["annotations"]["runbook_url"].startswith(all_on + "#")


def test_rules_use_only_known_metrics(rules: list[dict[str, Any]], known_metric_names: set[str]) -> None:
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = names - known_metric_names
        assert not unknown, f"{rule['alert']} uses {sorted(unknown)}: not exported by service/metrics.py"


def test_rules_are_templated_from_the_values(rendered: dict[str, dict[str, Any]]) -> None:
    """job, consumer group, request topic and the freshness threshold come from the values."""
    keda = {r["alert"]: r for r in alerts_of(rendered["keda"])}  # topics.prefix "" in keda-values
    lag = keda["AmiliSyncRequestsNotConsumed"]["expr"]
    assert 'consumergroup="amili-customer-sync"' in lag and 'topic="fetch-requests"' in lag
    assert 'job="amili-sync-amili-customer-sync"' in keda["AmiliSyncWorkerDown"]["expr"]
    for scenario, spec in rendered.items():
        for rule in alerts_of(spec):
            if "amili_sync_" in rule["expr"] or "up{" in rule["expr"]:
                assert "job=" in rule["expr"], (
                    f"{scenario} {rule['alert']} is not scoped to the release's job"
                )
    # all-on: requestCron "30 1 * * *" (daily) -> 24 h + 2 h of slack
    fresh = {r["alert"]: r for r in alerts_of(rendered["all-on"])}["AmiliSyncNoRecentSuccess"]
    assert "> 26 * 3600" in fresh["expr"] and "in 26 hours" in fresh["annotations"]["summary"]


@pytest.mark.parametrize(
    ("schedule", "hours"),
    [("0 */6 * * *", 8), ("15 3 * * 1", 170), ("5 * * * *", 3), ("@daily", 26), ("0 1 1 * *", 746)],
)
def test_freshness_threshold_follows_the_schedule(tmp_path: Path, schedule: str, hours: int) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "config": {"kafka": {"bootstrap_servers": "k:9092"}, "api": {"base_url": "https://a/arm/v1"}},
                "requestCron": {"enabled": True, "clients": [1], "schedule": schedule},
            }
        )
    )
    (fresh,) = [
        r
        for r in alerts_of(render_alerts.rendered_rules([values]))
        if r["alert"] == "AmiliSyncNoRecentSuccess"
    ]
    assert f"> {hours} * 3600" in fresh["expr"]


def test_default_rendering_is_current() -> None:
    assert render_alerts.main(["--check"]) == 0, "run: .venv/bin/python scripts/lib/render_alerts.py --write"


def test_unit_tests_cover_the_alerts(rules: list[dict[str, Any]]) -> None:
    data = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    tested = {c["alertname"] for t in data["tests"] for c in t.get("alert_rule_test", [])}
    assert tested <= {r["alert"] for r in rules}, tested
    firing = {
        c["alertname"] for t in data["tests"] for c in t.get("alert_rule_test", []) if c.get("exp_alerts")
    }
    assert firing >= {"AmiliSyncApiUnauthorized", "AmiliSyncApiErrors", "AmiliSyncApiSlow"}, firing
    assert len(firing) >= 6, f"unit tests expect only {firing} to fire"


def test_promtool_check_rules(promtool: Path, rendered: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """The default rendering and the templated rules of every ci scenario."""
    files = [RULES]
    for scenario, spec in rendered.items():
        path = tmp_path / f"{scenario}.rules.yaml"
        path.write_text(yaml.safe_dump(spec))
        files.append(path)
    result = subprocess.run(
        [str(promtool), "check", "rules", *map(str, files)], capture_output=True, text=True, timeout=60
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
