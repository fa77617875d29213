"""scripts/kafka-local: start is idempotent and waits for a metadata answer; stop leaves no java."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kafka-local"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False)


def _java_processes_of(data_dir: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "kafka.Kafka" in cmdline and str(data_dir) in cmdline:
                found.append(cmdline)
    return found


@pytest.mark.kafka  # starts its own real broker process
def test_start_is_idempotent_status_reports_and_stop_leaves_no_java(tmp_path: Path) -> None:
    data_dir = tmp_path / "broker"
    t0 = time.monotonic()
    first = _run("start", "--data-dir", str(data_dir))
    cold = time.monotonic() - t0
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:")
    assert _java_processes_of(data_dir)
    t0 = time.monotonic()
    second = _run("start", "--data-dir", str(data_dir))
    assert second.returncode == 0
    assert second.stdout == first.stdout, "a second start reuses the running broker"
    assert "already running" in second.stderr
    assert time.monotonic() - t0 < cold
    status = _run("status", "--data-dir", str(data_dir))
    assert status.returncode == 0
    assert "running" in status.stderr
    assert _run("stop", "--data-dir", str(data_dir)).returncode == 0
    assert _java_processes_of(data_dir) == []
    assert _run("status", "--data-dir", str(data_dir)).returncode == 3
    print(f"kafka-local cold start to ready: {cold:.1f}s")
