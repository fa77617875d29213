"""The worker as a separate process (`python -m service run`) and the environment it runs with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.sandbox.testing import SandboxHandle, free_port

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["ROOT", "WorkerProcess", "free_port", "worker_env"]


def worker_env(
    bootstrap: str, prefix: str, sandbox: SandboxHandle, state_dir: Path, health_port: int, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMILI_SYNC_")}
    env.update(
        {
            "AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "AMILI_SYNC_KAFKA__GROUP_ID": f"{prefix}.worker",
            "AMILI_SYNC_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "AMILI_SYNC_TOPICS__PREFIX": prefix,
            "AMILI_SYNC_TOPICS__PARTITIONS": "3",
            "AMILI_SYNC_API__BASE_URL": sandbox.base_url,
            "AMILI_SYNC_API__TOKEN_URL": sandbox.token_url,
            "AMILI_SYNC_API__CLIENT_ID": sandbox.client_id,
            "AMILI_SYNC_API__CLIENT_SECRET": sandbox.client_secret,
            "AMILI_SYNC_API__RETRY_WAIT_INITIAL": "0.05",
            "AMILI_SYNC_API__RATE_LIMIT": "1000",
            "AMILI_SYNC_STATE_DIR": str(state_dir),
            "AMILI_SYNC_HEALTH_PORT": str(health_port),
            "AMILI_SYNC_HEALTH_HOST": "127.0.0.1",
            "AMILI_SYNC_LOG_FORMAT": "json",
        }
    )
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    module: str = "service"  # `python -m <module> run` (the fault suite injects faults with its own)

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.env['AMILI_SYNC_HEALTH_PORT']}"

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "run"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready:
            self.wait_ready(timeout)

    def readyz(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(f"{self.health_url}/readyz", timeout=2)
        except httpx.HTTPError:
            return None
        return dict(r.json()) if r.status_code == 200 else None

    def wait_ready(self, timeout: float = 60.0, partitions: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail_log()}")
            ready = self.readyz()
            if ready and (ready.get("partitions") or not partitions):
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.tail_log()}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process stays alive but does nothing (a zombie-to-be: GC pause, stuck node)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def tail_log(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""
