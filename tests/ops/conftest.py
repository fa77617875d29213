"""Fixtures of the ops checks: the metric names the worker exports, and the external tools.

The tools come from scripts/check-ops, which installs them (cached outside git) and passes their
paths in `PROMTOOL` and `ASYNCAPI_SPECS_DIR` with `AMILI_OPS_REQUIRE_TOOLS=1`: there a missing
tool is a failure. Elsewhere (plain `pytest`) the cached tools are used when they are there, and
a missing tool is a failure too, with the command that installs it: these tests never skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("AMILI_SYNC_CACHE", Path.home() / ".cache" / "amili-sync"))

# Metrics that dashboard and alerts use but the worker does not export, and where they come from.
EXTERNAL_METRICS = {
    "up": "Prometheus: scrape health of each target",
    "kafka_consumergroup_lag": "kafka-exporter (danielqsj/kafka_exporter): labels consumergroup, topic, partition",
}


def _missing(what: str, how: str) -> None:
    pytest.fail(f"{what} not found ({how}); scripts/check-ops installs it", pytrace=False)


@pytest.fixture(scope="session")
def promtool() -> Path:
    given = os.environ.get("PROMTOOL")
    if given:
        path = Path(given)
    else:
        cached = sorted((CACHE / "bin").glob("promtool-v*"))
        path = cached[-1] if cached else Path("promtool-not-installed")
    if not (path.is_file() and os.access(path, os.X_OK)):
        _missing("promtool", f"PROMTOOL={given or ''}, cache {CACHE / 'bin'}")
    return path


# Alike promtool() in shape (kept): each tool has its own variable, cache layout and check.
@pytest.fixture(scope="session")
def asyncapi_specs_dir() -> Path:
    given = os.environ.get("ASYNCAPI_SPECS_DIR")
    if given:
        path = Path(given)
    else:
        found = sorted((CACHE / "npm").glob("*/node_modules/@asyncapi/specs/schemas"))
        path = found[-1] if found else Path("asyncapi-specs-not-installed")
    if not path.is_dir():
        _missing("the JSON Schemas of @asyncapi/specs", f"ASYNCAPI_SPECS_DIR={given or ''}")
    return path


@pytest.fixture(scope="session")
def exposition_text() -> str:
    """The worker's /metrics text with every metric touched (rendered in a separate process)."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.ops.exposition"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return out.stdout.decode()


@pytest.fixture(scope="session")
def worker_metric_names(exposition_text: str) -> set[str]:
    """Every name a query can use for the worker's metrics: families and their samples
    (`_total`, `_created`, `_bucket`, `_sum`, `_count`)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition_text):
        if not family.name.startswith("amili_sync_"):
            continue  # process_* / python_* collectors of prometheus-client
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture(scope="session")
def known_metric_names(worker_metric_names: set[str]) -> set[str]:
    return worker_metric_names | set(EXTERNAL_METRICS)
