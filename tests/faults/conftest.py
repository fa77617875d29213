"""Fault-suite fixtures: its own broker (so it can be restarted mid-run) and its own sandbox."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.sandbox.testing import SandboxHandle, running_sandbox

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = [sys.executable, str(ROOT / "scripts" / "kafka_local.py")]
CLIENTS = {
    5000: 3_000,
    5100: 3_000,
    5200: 3_000,
    5300: 3_000,
    5400: 3_000,
    5500: 200,  # remove / re-create / remove
    5600: 300,  # failure after the final commit
    5700: 40,  # suddenly reads as empty
    5800: 3_000,  # restore failing on assignment
    5900: 1_000,  # a partition returns after compaction
    6000: 100,  # fails every time (partition 0 of 3)
    6100: 100,  # served while 6000 backs off (partition 1 of 3)
}


@dataclass
class OwnBroker:
    data_dir: Path
    bootstrap: str

    def restart(self) -> None:
        self._run("restart")

    def stop(self) -> None:
        self._run("stop")

    def start(self) -> None:
        self._run("start")

    def _run(self, command: str) -> None:
        out = subprocess.run(
            [*SCRIPT, command, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr


@pytest.fixture(scope="session")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    data_dir = tmp_path_factory.mktemp("fault-broker")
    out = subprocess.run(
        [*SCRIPT, "start", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    if out.returncode != 0:
        pytest.fail(f"could not start the fault suite's broker:\n{out.stderr}", pytrace=False)
    bootstrap = next(
        line.split("=", 1)[1] for line in out.stdout.split() if line.startswith("KAFKA_BOOTSTRAP")
    )
    try:
        yield OwnBroker(data_dir, bootstrap)
    finally:
        subprocess.run([*SCRIPT, "stop", "--data-dir", str(data_dir)], check=False, timeout=60)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox(CLIENTS, seed=11) as handle:
        yield handle
