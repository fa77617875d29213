"""Settings: env names, one-line errors, `.env.example` kept in step; the CLI's --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import SettingsError, iter_settings, load_settings, render_env_example

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("run", "request", "tail", "sync", "sandbox", "config")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=60,
    )


def test_env_example_lists_every_setting_with_its_default() -> None:
    committed = (ROOT / ".env.example").read_text()
    assert committed == render_env_example(), "regenerate with scripts/gen-docs"
    names = [line.split("=", 1)[0] for line in committed.splitlines() if line and not line.startswith("#")]
    assert names == [env for env, _, _ in iter_settings()]
    assert "AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS" in names and "AMILI_SYNC_STATE_DIR" in names


def test_nested_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("AMILI_SYNC_TOPICS__PREFIX", "acme.arm")
    monkeypatch.setenv("AMILI_SYNC_API__CLIENT_SECRET", "shh")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.topics.requests_topic == "acme.arm.fetch-requests"
    assert settings.api.client_secret is not None and "shh" not in repr(settings)


def test_invalid_setting_raises_a_one_line_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMILI_SYNC_KAFKA__SECURITY_PROTOCOL", "FOO")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "AMILI_SYNC_KAFKA__SECURITY_PROTOCOL" in str(info.value) and "\n" not in str(info.value)


def test_a_secret_value_is_never_echoed_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMILI_SYNC_API__TOKEN_URL", "https://idp/token")
    monkeypatch.setenv("AMILI_SYNC_API__CLIENT_SECRET", "s3cr3t-value")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "client_id" in str(info.value) and "s3cr3t-value" not in str(info.value)


@pytest.mark.parametrize(
    "entry", [["amili-sync"], [sys.executable, "-m", "service"]], ids=["script", "module"]
)
def test_wrong_setting_stops_start_up_with_one_line(entry: list[str]) -> None:
    exe = [str(Path(sys.executable).parent / entry[0])] if entry == ["amili-sync"] else entry
    out = _run(*exe, "run", env={"AMILI_SYNC_KAFKA__SECURITY_PROTOCOL": "FOO"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "AMILI_SYNC_KAFKA__SECURITY_PROTOCOL" in lines[0] and "FOO" in lines[0]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "entry", [["amili-sync"], [sys.executable, "-m", "service"]], ids=["script", "module"]
)
def test_help_lists_the_subcommands(entry: list[str]) -> None:
    exe = [str(Path(sys.executable).parent / entry[0])] if entry == ["amili-sync"] else entry
    out = _run(*exe, "--help")
    assert out.returncode == 0
    for name in SUBCOMMANDS:
        assert name in out.stdout


def test_readme_configuration_table_is_generated_from_the_settings() -> None:
    from service.config import render_markdown_table

    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- settings:start -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert block == render_markdown_table(), "regenerate with scripts/gen-docs"
