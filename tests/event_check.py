"""Checks applied to every event a test produces: CloudEvents SDK parse + JSON Schema of its type."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas" / "events"


@cache
def validator(event_type: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{event_type}.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def check_event(
    key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | dict[str, bytes]
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
    validator(attrs["type"]).validate(data)
    assert attrs["subject"] == data["customerNo"]
    assert key == f"{data['clientNo']}/{data['customerNo']}".encode()
    text = value.decode()
    assert '"ssn"' not in text
    assert '"dateOfBirth"' not in text
    return {"id": attrs["id"], "type": attrs["type"], **data}
