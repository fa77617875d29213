"""The Helm chart's `config` values, generated from the service's settings (service/config.py).

The chart's `config:` block in values.yaml and the `config` part of values.schema.json mirror the
settings model one to one (`config.kafka.bootstrap_servers` -> AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS),
so they are generated, never edited by hand:

    .venv/bin/python scripts/lib/chart_settings.py --write   # regenerate after changing service/config.py
    .venv/bin/python scripts/lib/chart_settings.py --check   # exit 1 when the chart is stale (CI, tests)

Secret settings (SecretStr) are not in `config`: the chart takes them from `secrets.*` or an
existing Secret. Defaults are the code's defaults except CHART_OVERRIDES below.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "amili-customer-sync"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
BEGIN = "  # BEGIN generated settings"
END = "  # END generated settings"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.config import ENV_PREFIX, NESTED_DELIMITER, Settings  # noqa: E402

# env name -> (values key under `secrets`, key in the Secret)
SECRET_SETTINGS: dict[str, tuple[str, str]] = {
    "AMILI_SYNC_KAFKA__PASSWORD": ("kafkaPassword", "kafka-password"),
    "AMILI_SYNC_API__TOKEN": ("apiToken", "api-token"),
    "AMILI_SYNC_API__CLIENT_SECRET": ("apiClientSecret", "api-client-secret"),
}

# Where the chart's default differs from the code's, and why.
CHART_OVERRIDES: dict[tuple[str, ...], tuple[Any, str]] = {
    ("kafka", "bootstrap_servers"): ("", "required: the cluster's Kafka bootstrap servers"),
    ("api", "base_url"): ("", "required: the Amili ARM API base URL, ending in /arm/v1"),
    ("state_dir",): ("/var/lib/amili-sync", "the emptyDir volume of the snapshot cache"),
    ("log_format",): ("json", "JSON logs for the cluster's log collector"),
}
# Extra constraints the chart needs (the probes and the Service need a real port).
SCHEMA_OVERLAY: dict[tuple[str, ...], dict[str, Any]] = {
    ("health_port",): {"minimum": 1},
}


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + NESTED_DELIMITER.join(p.upper() for p in path)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {k: v for k, v in node.items() if k != "$ref"}
        return {**_resolve(target, defs), **merged}
    return node


def _field_schema(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A pydantic property schema, reduced to what a values schema needs. Optional -> also ""/null."""
    prop = _resolve(prop, defs)
    out: dict[str, Any] = {}
    options = prop.get("anyOf")
    nullable = False
    if options:
        non_null = [_resolve(o, defs) for o in options if o.get("type") != "null"]
        nullable = len(non_null) < len(options)
        if len(non_null) != 1:
            raise SystemExit(f"chart_settings: unsupported union {prop}")
        base = non_null[0]
    else:
        base = prop
    for key in (
        "type",
        "enum",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "items",
        "additionalProperties",
        "minLength",
        "maxLength",
    ):
        if key in base:
            out[key] = copy.deepcopy(base[key])
    if "items" in out:
        out["items"] = _field_schema(out["items"], defs)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _field_schema(out["additionalProperties"], defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if nullable:
        # unset: null, or "" for strings (the code's default applies; nothing is rendered)
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], "", None]
    if "description" in prop:
        out["description"] = prop["description"]
    return out


def _is_secret(prop: dict[str, Any]) -> bool:
    options = prop.get("anyOf", [prop])
    return any(o.get("format") == "password" and o.get("writeOnly") for o in options)


def settings_tree() -> list[tuple[tuple[str, ...], dict[str, Any], Any, bool]]:
    """(path, property schema, code default, is_secret) for every setting, in model order."""
    schema = Settings.model_json_schema()
    defs = schema.get("$defs", {})
    rows: list[tuple[tuple[str, ...], dict[str, Any], Any, bool]] = []
    for name, field in Settings.model_fields.items():
        prop = _resolve(schema["properties"][name], defs)
        if (
            prop.get("type") == "object"
            and "properties" in prop
            and field.annotation is not None
            and hasattr(field.annotation, "model_fields")
        ):
            model = field.annotation
            for sub, subfield in model.model_fields.items():
                subprop = prop["properties"][sub]
                default = subfield.get_default(call_default_factory=True)
                rows.append(((name, sub), subprop, default, _is_secret(subprop)))
        else:
            default = field.get_default(call_default_factory=True)
            rows.append(
                ((name,), schema["properties"][name], default, _is_secret(schema["properties"][name]))
            )
    return rows


def _plain(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def chart_defaults() -> dict[str, Any]:
    """The `config` values: code defaults, CHART_OVERRIDES applied, secrets left out."""
    tree: dict[str, Any] = {}
    for path, _prop, default, secret in settings_tree():
        if secret:
            continue
        value = CHART_OVERRIDES[path][0] if path in CHART_OVERRIDES else _plain(default)
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def config_schema() -> dict[str, Any]:
    schema = Settings.model_json_schema()
    defs = schema.get("$defs", {})
    root: dict[str, Any] = {
        "type": "object",
        "description": "Settings of the service (AMILI_SYNC_*), rendered into the ConfigMap. Keys are the "
        "settings' own names: config.kafka.bootstrap_servers -> AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS. "
        "Empty values are not rendered (the code's default applies). Generated by "
        "scripts/lib/chart_settings.py from service/config.py.",
        "additionalProperties": False,
        "properties": {},
    }
    for path, prop, _default, secret in settings_tree():
        if secret:
            continue
        node = root
        for part in path[:-1]:
            node = node["properties"].setdefault(
                part,
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {},
                    "description": f"AMILI_SYNC_{part.upper()}__* settings",
                },
            )
        field = _field_schema(prop, defs)
        field.update(SCHEMA_OVERLAY.get(path, {}))
        if path in CHART_OVERRIDES and CHART_OVERRIDES[path][0] == "" and "minLength" not in field:
            field["description"] = field.get("description", "") + " (required)"
        node["properties"][path[-1]] = field
    return root


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)  # a double-quoted YAML string


def values_block() -> str:
    """The generated lines between BEGIN and END in values.yaml (under `config:`)."""
    descriptions = {path: prop for path, prop, _d, _s in settings_tree()}
    schema = Settings.model_json_schema()
    defs = schema.get("$defs", {})
    lines: list[str] = []

    def emit(tree: dict[str, Any], prefix: tuple[str, ...], indent: int) -> None:
        for key, value in tree.items():
            path = (*prefix, key)
            pad = " " * indent
            if isinstance(value, dict) and path not in descriptions:
                lines.append(f"{pad}{key}:")
                emit(value, path, indent + 2)
                continue
            prop = _resolve(descriptions[path], defs)
            text = prop.get("description", "")
            lines.append(f"{pad}# -- {text} ({env_name(path)})")
            if path in CHART_OVERRIDES:
                lines.append(f"{pad}# chart default: {CHART_OVERRIDES[path][1]}")
            lines.append(f"{pad}{key}: {_yaml_scalar(value)}")

    emit(chart_defaults(), (), 2)
    return "\n".join(lines)


def render_values(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END)
    head = text[: start + len(BEGIN)]
    head = head[: head.rindex("\n") + 1] + BEGIN + " (scripts/lib/chart_settings.py --write; do not edit)\n"
    return head + values_block() + "\n" + text[end:]


def render_schema(text: str) -> str:
    data = json.loads(text)
    data["properties"]["config"] = config_schema()
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate values.yaml and values.schema.json")
    mode.add_argument("--check", action="store_true", help="exit 1 if they are stale")
    args = parser.parse_args(argv)
    stale = []
    for path, render in ((VALUES, render_values), (SCHEMA, render_schema)):
        old = path.read_text(encoding="utf-8")
        new = render(old)
        if new != old:
            stale.append(path)
            if args.write:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(
            f"chart_settings: {names} out of date with service/config.py; "
            "run: .venv/bin/python scripts/lib/chart_settings.py --write",
            file=sys.stderr,
        )
        return 1
    if args.write:
        print("chart_settings: " + (", ".join(str(p.relative_to(ROOT)) for p in stale) or "up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
