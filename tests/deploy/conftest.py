"""Fixtures of the deploy tests: a real helm binary and rendered manifests of the chart.

helm is found in `HELM_BIN` (scripts/check-deploy sets it), else in the cache that
scripts/check-deploy fills (~/.cache/amili-sync/bin/helm), else on PATH. Without one the tests
FAIL with the command that installs it; they never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "amili-customer-sync"
CI_VALUES = ROOT / "deploy" / "helm" / "ci"
KUBE_VERSION = "1.34.0"
HELM_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "amili-sync" / "bin" / "helm"

if str(ROOT / "scripts" / "lib") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts" / "lib"))

SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in CI_VALUES.glob("*-values.yaml"))


def find_helm() -> Path | None:
    env = os.environ.get("HELM_BIN")
    if env:
        return Path(env) if Path(env).is_file() else None
    if HELM_CACHE.is_file():
        return HELM_CACHE
    found = shutil.which("helm")
    return Path(found) if found else None


@dataclass
class Rendered:
    returncode: int
    stdout: str
    stderr: str

    @property
    def docs(self) -> list[dict[str, Any]]:
        assert self.returncode == 0, f"helm template failed:\n{self.stderr}"
        return [d for d in yaml.safe_load_all(self.stdout) if d]


class Helm:
    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self._cache: dict[tuple[Any, ...], Rendered] = {}

    def run(self, *args: str) -> Rendered:
        out = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, check=False, timeout=120
        )
        return Rendered(out.returncode, out.stdout, out.stderr)

    def template(
        self, *values_files: Path | str, sets: Sequence[str] = (), release: str = "rel", namespace: str = "ns"
    ) -> Rendered:
        key = (tuple(str(f) for f in values_files), tuple(sets), release, namespace)
        if key not in self._cache:
            args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
            for f in values_files:
                args += ["-f", str(f)]
            for s in sets:
                args += ["--set", s]
            self._cache[key] = self.run(*args)
        return self._cache[key]

    def scenario(self, name: str, sets: Sequence[str] = ()) -> list[dict[str, Any]]:
        return self.template(CI_VALUES / f"{name}-values.yaml", sets=sets).docs


@pytest.fixture(scope="session")
def helm() -> Helm:
    binary = find_helm()
    if binary is None:
        pytest.fail(
            "helm not found (HELM_BIN unset or wrong, nothing at ~/.cache/amili-sync/bin/helm, none on PATH). "
            "Run scripts/check-deploy (installs it), or: GOBIN=~/.cache/amili-sync/bin "
            "go install helm.sh/helm/v3/cmd/helm@v3.22.0",
            pytrace=False,
        )
    return Helm(binary)


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: Iterable[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, (
        f"expected one {kind} named *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


WORKLOAD_KINDS = ("StatefulSet", "Deployment")


def workload(docs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The worker's StatefulSet or Deployment (exactly one of them)."""
    found = [d for d in docs if d.get("kind") in WORKLOAD_KINDS]
    assert len(found) == 1, (
        f"expected one worker workload, got {[(d['kind'], d['metadata']['name']) for d in found]}"
    )
    return found[0]


def pod_specs(docs: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(description, pod spec) of every workload: StatefulSet, Deployment, CronJob, Job, bare Pod."""
    out = []
    for d in docs:
        kind, name = d.get("kind"), d["metadata"]["name"]
        if kind in WORKLOAD_KINDS:
            out.append((f"{kind}/{name}", d["spec"]["template"]["spec"]))
        elif kind == "CronJob":
            out.append((f"CronJob/{name}", d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif kind == "Job":
            out.append((f"Job/{name}", d["spec"]["template"]["spec"]))
        elif kind == "Pod":
            out.append((f"Pod/{name}", d["spec"]))
    return out
