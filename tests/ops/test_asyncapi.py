"""The AsyncAPI document (docs/asyncapi.yaml): current with the code, complete, and valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from service.entrypoints import asyncapi
from service.entrypoints.contract import publications, subscriber_options
from service.sync.requests import FetchRequest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
REGENERATE = "python -m service.entrypoints.asyncapi > docs/asyncapi.yaml"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    return doc


def test_committed_document_is_current() -> None:
    committed = DOC.read_text(encoding="utf-8")
    rendered = asyncapi.render()
    assert committed == rendered, (
        f"docs/asyncapi.yaml is out of date with the code (event models, contract or settings): "
        f"regenerate it with `{REGENERATE}` and commit it"
    )


def test_render_ignores_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    expected = asyncapi.render()
    monkeypatch.setenv("AMILI_SYNC_TOPICS__PREFIX", "elsewhere")
    monkeypatch.setenv("AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS", "kafka.example:9093")
    (tmp_path / ".env").write_text("AMILI_SYNC_KAFKA__GROUP_ID=other-group\n")
    monkeypatch.chdir(tmp_path)
    assert asyncapi.render() == expected


def test_json_form_is_the_same_document() -> None:
    assert json.loads(asyncapi.render("json")) == yaml.safe_load(asyncapi.render())


def _schema_of(document: dict[str, Any], message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ref = message["payload"]["$ref"]
    name = ref.removeprefix("#/components/schemas/")
    return name, document["components"]["schemas"][name]


def _message(document: dict[str, Any], channel: dict[str, Any]) -> dict[str, Any]:
    (msg_ref,) = [m["$ref"] for m in channel["messages"].values()]
    name = msg_ref.removeprefix("#/components/messages/")
    msg: dict[str, Any] = document["components"]["messages"][name]
    return msg


def _fields(model: type[Any]) -> tuple[set[str], set[str]]:
    fields = model.model_fields
    return set(fields), {n for n, f in fields.items() if f.is_required()}


def test_request_channel_shows_the_request_schema(document: dict[str, Any]) -> None:
    settings = asyncapi.default_settings()
    title = subscriber_options(settings)["title"]
    channel = document["channels"][title]
    assert channel["address"] == settings.topics.requests_topic
    receives = [op for op in document["operations"].values() if op["action"] == "receive"]
    assert [op["channel"]["$ref"] for op in receives] == [f"#/channels/{title}"]
    name, schema = _schema_of(document, _message(document, channel))
    assert name == "FetchRequest"
    properties, required = _fields(FetchRequest)
    assert set(schema["properties"]) == properties
    assert set(schema["required"]) == required
    assert schema["additionalProperties"] is False


def test_every_publication_is_a_send_operation(document: dict[str, Any]) -> None:
    settings = asyncapi.default_settings()
    sends = {
        op["channel"]["$ref"].removeprefix("#/channels/")
        for op in document["operations"].values()
        if op["action"] == "send"
    }
    seen = set()
    for topic, model, _description in publications(settings):
        matches = [
            key
            for key in sends
            if document["channels"][key]["address"] == topic
            and _schema_of(document, _message(document, document["channels"][key]))[0] == model.__name__
        ]
        assert len(matches) == 1, f"{topic} / {model.__name__}: {matches}"
        _name, schema = _schema_of(document, _message(document, document["channels"][matches[0]]))
        properties, required = _fields(model)
        assert set(schema["properties"]) == properties, model.__name__
        assert set(schema.get("required", [])) == required, model.__name__
        seen.update(matches)
    assert seen == sends, f"send operations that are not in contract.publications: {sends - seen}"


def test_valid_against_the_official_asyncapi_json_schema(
    document: dict[str, Any], asyncapi_specs_dir: Path
) -> None:
    """The JSON Schema of the spec version the document declares, from the npm package
    @asyncapi/specs (a second, independent check besides `asyncapi validate` in scripts/check-ops)."""
    version = document["asyncapi"]
    schema = json.loads((asyncapi_specs_dir / f"{version}-without-$id.json").read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


def test_internal_references_resolve(document: dict[str, Any]) -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(document):
        assert ref.startswith("#/"), ref
        node: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
            node = node[part]


def test_faststream_cli_generates_the_same_document(tmp_path: Path) -> None:
    """`faststream docs gen service.entrypoints.asyncapi:app` works and documents the same contract
    (FastStream lists channels in its own order, so compare after our sorting)."""
    out = tmp_path / "asyncapi.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMILI_SYNC_")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "faststream",
            "docs",
            "gen",
            "service.entrypoints.asyncapi:app",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    generated = json.loads(out.read_text(encoding="utf-8"))
    assert asyncapi.document() == {
        **generated,
        "channels": dict(sorted(generated["channels"].items())),
        "operations": dict(sorted(generated["operations"].items())),
        "components": {
            section: dict(sorted(entries.items())) for section, entries in generated["components"].items()
        },
    }
