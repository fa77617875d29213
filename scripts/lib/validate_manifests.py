"""Validate rendered Kubernetes manifests strictly, offline.

    .venv/bin/python scripts/lib/validate_manifests.py [-k 1.34.0] FILE.yaml...

Built-in kinds: kubernetes-validate --strict against the Kubernetes version's OpenAPI schemas
(unknown fields fail). Custom resources (ServiceMonitor, PrometheusRule, ScaledObject,
TriggerAuthentication): the JSON schemas vendored in deploy/schemas/<group>/<kind>_<version>.json,
made strict at the top level too (only apiVersion, kind, metadata, spec; known metadata fields).
A kind with no schema fails. Exit status 1 when any document is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "deploy" / "schemas"
DEFAULT_K8S = "1.34.0"

_METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def crd_schema_path(api_version: str, kind: str) -> Path | None:
    if "/" not in api_version:
        return None
    group, version = api_version.split("/", 1)
    path = SCHEMAS / group / f"{kind.lower()}_{version}.json"
    return path if path.is_file() else None


def is_builtin(api_version: str) -> bool:
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return group == "" or "." not in group or group.endswith(".k8s.io")


def _crd_errors(doc: dict[str, Any], schema_file: Path) -> list[str]:
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    strict = dict(schema)
    strict["additionalProperties"] = False
    strict["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    props = dict(schema.get("properties", {}))
    props["metadata"] = _METADATA
    props.pop("status", None)  # a rendered manifest has no status
    strict["properties"] = props
    validator = jsonschema.Draft7Validator(strict)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def validate_document(doc: dict[str, Any], k8s_version: str = DEFAULT_K8S) -> list[str]:
    """Errors of one manifest (empty: valid)."""
    api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    if not api_version or not kind:
        return ["apiVersion and kind are required"]
    schema_file = crd_schema_path(api_version, kind)
    if schema_file:
        return _crd_errors(doc, schema_file)
    if not is_builtin(api_version):
        return [f"no schema for {api_version} {kind}: vendor one in deploy/schemas/"]
    try:
        kubernetes_validate.validate(doc, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path) or "<root>"
        return [f"{path}: {exc.message}"]
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
        return [f"no schema: {exc}"]
    return []


def documents(text: str) -> Iterable[dict[str, Any]]:
    for doc in yaml.safe_load_all(text):
        if doc:
            yield doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--kubernetes-version", default=DEFAULT_K8S)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    failed = 0
    for path in args.files:
        for doc in documents(path.read_text(encoding="utf-8")):
            name = f"{path.name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            errors = validate_document(doc, args.kubernetes_version)
            if errors:
                failed += 1
                for err in errors:
                    print(f"INVALID {name}: {err}", file=sys.stderr)
            else:
                print(f"ok      {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
