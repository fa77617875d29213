"""Checks applied to every event a test produces: CloudEvents SDK parse + JSON Schema of its type.

A built-in type is validated against its committed schema file (`schemas/events/`); a configured
group's type against the schema of the model the event-kind registry derives for it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from service.sync import kinds

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas" / "events"


@cache
def validator(event_type: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{event_type}.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def derived_validator(
    event_type: str, groups: Mapping[str, Sequence[str]]
) -> jsonschema.Draft202012Validator:
    kind = next((k for k in kinds.all_kinds(groups) if k.ce_type == event_type), None)
    assert kind is not None, f"{event_type} is not a type of the configured groups {sorted(groups)}"
    return jsonschema.Draft202012Validator(
        kind.model.model_json_schema(), format_checker=jsonschema.FormatChecker()
    )


def check_event(
    key: bytes | None,
    value: bytes,
    headers: list[tuple[str, bytes]] | dict[str, bytes],
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Parse a binary-mode event with the official SDK, validate its data, return the data."""
    hdrs = dict(headers) if not isinstance(headers, dict) else headers
    event = from_binary_event(KafkaMessage(headers=hdrs, key=key, value=value))
    attrs = event.get_attributes()
    assert attrs["specversion"] == "1.0"
    assert attrs["type"].startswith("amili.customer.")
    assert attrs["subject"]
    assert attrs["dataschema"].endswith(f"{attrs['type']}.json")
    assert hdrs["content-type"] == b"application/json"
    data = json.loads(value)
    if attrs["type"] in kinds.EVENT_MODELS:
        validator(attrs["type"]).validate(data)
    else:
        derived_validator(attrs["type"], groups or kinds.default_groups()).validate(data)
    assert attrs["subject"] == data["customerNo"]
    assert key == f"{data['clientNo']}/{data['customerNo']}".encode()
    text = value.decode()
    assert '"ssn"' not in text
    assert '"dateOfBirth"' not in text
    return {"id": attrs["id"], "type": attrs["type"], **data}
