"""Packaging: every module of `service/` imports in an environment with the runtime dependencies only
(built like the image: `uv sync --frozen --no-default-groups --no-editable`), and the version comes from one
place (pyproject.toml, read through the package metadata)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from service.entrypoints.cli import main
from service.version import VERSION
from tests.conftest import ROOT

# dev-group packages the service must never need at runtime
DEV_ONLY = ("yaml", "cloudevents", "jsonschema", "pytest", "psutil")

IMPORT_ALL = """
import importlib, importlib.util, pkgutil, sys
import service
assert service.__file__.startswith(sys.prefix), service.__file__  # the installed copy, not the tree
names = sorted(
    m.name for m in pkgutil.walk_packages(service.__path__, "service.") if not m.name.endswith(".__main__")
)
for name in names:
    importlib.import_module(name)
present = [p for p in sys.argv[1:] if importlib.util.find_spec(p) is not None]
assert not present, f"dev-only packages installed: {present}"
print(" ".join(names))
"""


def pyproject_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def source_modules() -> set[str]:
    """Dotted names of the modules under service/ (packages by their name), but `__main__`s."""
    names = set()
    for path in (ROOT / "service").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__" and len(parts) > 1:
            names.add(".".join(parts))
    return names


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the runtime-only environment (python3 -m pip install uv)"
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON": sys.executable}
    # uv caches the project's wheel by pyproject.toml alone: --reinstall-package rebuilds it from
    # the tree as it is
    sync = ["sync", "--frozen", "--no-default-groups", "--no-editable", "--quiet"]
    out = subprocess.run(
        [uv, *sync, "--reinstall-package", "amili-customer-sync"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return venv


def test_every_module_imports_with_runtime_dependencies_only(runtime_venv: Path, tmp_path: Path) -> None:
    python = runtime_venv / "bin" / "python"
    out = subprocess.run(
        [str(python), "-c", IMPORT_ALL, *DEV_ONLY],
        cwd=tmp_path,  # not the source tree: `service` must come from the environment
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) == source_modules()
    # the two __main__ modules, run as the image runs them
    for module in ("service", "service.sandbox"):
        run = subprocess.run(
            [str(python), "-m", module, "--help"], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, run.stderr


def test_the_installed_version_is_the_one_in_pyproject(runtime_venv: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [str(runtime_venv / "bin" / "amili-sync"), "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"amili-sync {pyproject_version()}"


def test_version_flag_and_no_other_copy_of_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"amili-sync {VERSION}"
    assert pyproject_version() == VERSION
    quoted = f'"{VERSION}"'
    copies = [p for p in (ROOT / "service").rglob("*.py") if quoted in p.read_text()]
    assert copies == []


def test_the_copies_outside_python_follow_pyproject() -> None:
    """Helm needs the chart's appVersion in Chart.yaml, and the image's version label is a build
    argument: both are checked against pyproject.toml rather than trusted."""
    import re

    import yaml

    chart = yaml.safe_load((ROOT / "deploy" / "helm" / "amili-customer-sync" / "Chart.yaml").read_text())
    assert chart["appVersion"] == pyproject_version()
    default = re.search(r"^ARG VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert default is None or default.group(1) == pyproject_version()
