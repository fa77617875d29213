"""deploy/prometheus/alerts.yaml: the chart's alert rules rendered with its default values.

    .venv/bin/python scripts/lib/render_alerts.py --write   # regenerate
    .venv/bin/python scripts/lib/render_alerts.py --check   # exit 1 when the file is out of date
    .venv/bin/python scripts/lib/render_alerts.py --values deploy/helm/ci/all-on-values.yaml  # print

The source is deploy/helm/amili-customer-sync/files/alerts.yaml, whose placeholders the chart fills
in (templates/prometheusrule.yaml). The rendered file is what `promtool check rules` and
`promtool test rules` (deploy/prometheus/alerts.test.yaml) read: the unit tests run against exactly
the rules a default install ships. helm comes from HELM_BIN or the cache scripts/check-deploy fills.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "amili-customer-sync"
OUTPUT = ROOT / "deploy" / "prometheus" / "alerts.yaml"
# the release name whose full name is the chart's: job="amili-customer-sync" in the rendered rules
RELEASE = "amili-customer-sync"
REQUIRED = ["config.kafka.bootstrap_servers=kafka:9092", "config.api.base_url=https://api.invalid/arm/v1"]
HEADER = """\
# GENERATED from deploy/helm/amili-customer-sync/files/alerts.yaml with the chart's default values
# (scripts/lib/render_alerts.py --write; tests/ops fails when it is out of date). Edit the source.
# Unit tests: alerts.test.yaml beside this file (`promtool test rules`, run by scripts/check-ops).
"""


def helm_binary() -> str:
    given = os.environ.get("HELM_BIN")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "amili-sync" / "bin" / "helm"
    found = given or (str(cache) if cache.is_file() else shutil.which("helm"))
    if not found:
        sys.exit("helm not found: scripts/check-deploy installs it (or set HELM_BIN)")
    return found


def rendered_rules(values_files: list[Path] | None = None, release: str = RELEASE) -> dict[str, Any]:
    """The PrometheusRule's `spec` (a rules file: `groups:`) for the given values files."""
    args = [helm_binary(), "template", release, str(CHART), "--kube-version", "1.34.0"]
    args += ["--show-only", "templates/prometheusrule.yaml"]
    for f in values_files or []:
        args += ["-f", str(f)]
    if not values_files:
        args += [arg for s in REQUIRED for arg in ("--set", s)]
    args += ["--set", "prometheusRule.enabled=true"]
    out = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"helm template failed: {out.stderr}")
    spec: dict[str, Any] = yaml.safe_load(out.stdout)["spec"]
    return spec


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_text(rules: dict[str, Any]) -> str:
    body = yaml.dump(rules, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--values", type=Path, nargs="+", help="print the rules rendered with these values")
    args = parser.parse_args(argv)
    if args.values:
        sys.stdout.write(to_text(rendered_rules(args.values)))
        return 0
    text = to_text(rendered_rules())
    if args.write:
        OUTPUT.write_text(text, encoding="utf-8")
        return 0
    if OUTPUT.read_text(encoding="utf-8") != text:
        print(
            f"{OUTPUT.relative_to(ROOT)} is out of date: run scripts/lib/render_alerts.py --write",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
