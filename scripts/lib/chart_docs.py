"""The values table of the chart's README, generated from values.yaml (helm-docs style `# --` comments).

    .venv/bin/python scripts/lib/chart_docs.py --write   # after changing values.yaml
    .venv/bin/python scripts/lib/chart_docs.py --check   # exit 1 when README.md is stale

A key preceded by a `# -- text` comment (continued by further `# ` lines) is one row, its whole value
the default; keys without one are descended into. Every leaf must end up documented: an undocumented
leaf is an error, so a new value cannot be added without a description.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "amili-customer-sync"
BEGIN = "<!-- values-table:begin (scripts/lib/chart_docs.py --write) -->"
END = "<!-- values-table:end -->"
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")


def documented_paths(text: str) -> dict[tuple[str, ...], str]:
    """Map key path -> description, from the `# --` comments of values.yaml."""
    docs: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# -- "):
            pending = [stripped[5:]]
            continue
        if stripped.startswith("#"):
            if pending is not None and stripped.startswith("# "):
                pending.append(stripped[2:])
            continue
        match = _KEY.match(line)
        if not match:
            if stripped and not stripped.startswith("-"):
                pending = None
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if pending is not None:
            docs[tuple(k for _, k in stack)] = " ".join(pending)
            pending = None
    return docs


def _leaves(value: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    if isinstance(value, dict) and value:
        out: list[tuple[str, ...]] = []
        for key, sub in value.items():
            out.extend(_leaves(sub, (*path, str(key))))
        return out
    return [path]


def _lookup(values: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        values = values[part]
    return values


def _type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def rows() -> list[tuple[str, str, str, str]]:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    docs = documented_paths(text)
    missing = [".".join(leaf) for leaf in _leaves(values, ()) if not any(leaf[: len(p)] == p for p in docs)]
    if missing:
        raise SystemExit(
            "chart_docs: values without a `# --` description in values.yaml: " + ", ".join(missing)
        )
    out = []
    for path in sorted(docs, key=lambda p: list(docs).index(p)):
        value = _lookup(values, path)
        default = json.dumps(value, ensure_ascii=False)
        out.append((".".join(path), _type(value), default, docs[path]))
    return out


def table() -> str:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, typ, default, desc in rows():
        default, desc = default.replace("|", "\\|"), desc.replace("|", "\\|")
        lines.append(f"| `{key}` | {typ} | `{default}` | {desc} |")
    return "\n".join(lines)


def render(readme: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END)
    return readme[: start + len(BEGIN)] + "\n" + table() + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    path = CHART / "README.md"
    old = path.read_text(encoding="utf-8")
    new = render(old)
    if args.check:
        if new != old:
            print(
                "chart_docs: deploy/helm/amili-customer-sync/README.md values table is stale; "
                "run: .venv/bin/python scripts/lib/chart_docs.py --write",
                file=sys.stderr,
            )
            return 1
        return 0
    if new != old:
        path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
