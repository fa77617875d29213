"""Security at the edges: no default API base URL, plain http only to loopback unless allowed,
a private cache folder and files, request filter values masked in logs."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import SettingsError, load_settings
from service.logs import configure_logging, get_logger
from service.snapshot.store import SnapshotStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("AMILI_SYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return monkeypatch


def test_the_base_url_has_no_default_and_is_required_to_call_the_api(clean_env: pytest.MonkeyPatch) -> None:
    assert load_settings().api.base_url == ""  # commands that do not call the API still load
    with pytest.raises(SettingsError) as info:
        load_settings(require_api=True)
    assert "AMILI_SYNC_API__BASE_URL" in str(info.value) and "required" in str(info.value)


@pytest.mark.parametrize("command", ["run", "sync"])
def test_start_up_without_a_base_url_fails_with_one_line_naming_it(command: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMILI_SYNC_")}
    args = [sys.executable, "-m", "service", command] + (["--client", "2218"] if command == "sync" else [])
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "AMILI_SYNC_API__BASE_URL" in lines[0], out.stderr


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.amili.example/arm/v1", True),
        ("http://127.0.0.1:8700/arm/v1", True),
        ("http://127.8.0.1:8700/arm/v1", True),
        ("http://localhost:8700/arm/v1", True),
        ("http://[::1]:8700/arm/v1", True),
        ("http://api.amili.example/arm/v1", False),
        ("http://10.0.0.7/arm/v1", False),
        ("http://sandbox:8700/arm/v1", False),
        ("ftp://api.amili.example/arm/v1", False),
        ("api.amili.example/arm/v1", False),
    ],
)
def test_plain_http_is_refused_to_hosts_that_are_not_loopback(
    clean_env: pytest.MonkeyPatch, url: str, allowed: bool
) -> None:
    clean_env.setenv("AMILI_SYNC_API__BASE_URL", url)
    if allowed:
        assert load_settings(require_api=True).api.base_url == url
    else:
        with pytest.raises(SettingsError, match="AMILI_SYNC_API__BASE_URL"):
            load_settings(require_api=True)


def test_insecure_http_can_be_allowed_explicitly(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AMILI_SYNC_API__BASE_URL", "http://sandbox:8700/arm/v1")
    clean_env.setenv("AMILI_SYNC_API__TOKEN_URL", "http://sandbox:8700/token")
    clean_env.setenv("AMILI_SYNC_API__CLIENT_ID", "c")
    clean_env.setenv("AMILI_SYNC_API__CLIENT_SECRET", "s")
    with pytest.raises(SettingsError, match="AMILI_SYNC_API__TOKEN_URL"):
        load_settings(require_api=True)
    clean_env.setenv("AMILI_SYNC_API__ALLOW_INSECURE_HTTP", "true")
    assert load_settings(require_api=True).api.token_url == "http://sandbox:8700/token"


def test_the_cache_folder_is_0700_and_its_files_0600(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "state"
    store = SnapshotStore(folder / "snapshot.sqlite")
    store.db.execute("CREATE TABLE IF NOT EXISTS probe (x)")
    store.db.execute("INSERT INTO probe VALUES (1)")  # creates the -wal and -shm files
    try:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        files = sorted(folder.iterdir())
        assert {f.name for f in files} >= {"snapshot.sqlite", "snapshot.sqlite-wal"}
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    finally:
        store.close()


def test_an_existing_cache_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    (folder / "snapshot.sqlite").touch(mode=0o644)
    SnapshotStore(folder / "snapshot.sqlite").close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "snapshot.sqlite").stat().st_mode) == 0o600


def test_request_filter_values_are_masked_in_logs() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    get_logger("test").info(
        "run started",
        filters={"name": "Ola Nordmann", "customercategory": "CONS"},
        slice="slice name='Kari Nordmann'",
        result={"filters": {"name": "Per Hansen"}},
        clientNo=2218,
    )
    text = stream.getvalue()
    for name in ("Ola Nordmann", "Kari Nordmann", "Per Hansen", "CONS"):
        assert name not in text
    line = json.loads(text.splitlines()[0])
    assert line["filters"] == {"name": "***", "customercategory": "***"}
    assert line["clientNo"] == 2218
