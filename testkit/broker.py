"""A real single-node Kafka broker in a folder of its own, run by `scripts/kafka_local.py`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = [sys.executable, str(ROOT / "scripts" / "kafka_local.py")]


class BrokerError(RuntimeError):
    """`scripts/kafka_local.py` could not start or restart the broker (its stderr is the message)."""


@dataclass
class LocalBroker:
    """A broker whose data, logs and state live in `data_dir`.

    `scram` ("user:password") adds a SASL_PLAINTEXT listener with that SCRAM user; `heap` sets the
    JVM heap (the script's default otherwise).
    """

    data_dir: Path
    scram: str | None = None
    heap: str | None = None
    bootstrap: str = ""
    sasl_bootstrap: str | None = None

    def start(self, timeout: float = 180.0) -> str:
        args = ["start", "--data-dir", str(self.data_dir)]
        if self.scram:
            args += ["--scram", self.scram]
        if self.heap:
            args += ["--heap", self.heap]
        env = self._run(args, timeout)
        self.bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
        self.sasl_bootstrap = env.get("KAFKA_SASL_BOOTSTRAP_SERVERS")
        return self.bootstrap

    def restart(self, timeout: float = 120.0) -> None:
        self._run(["restart", "--data-dir", str(self.data_dir)], timeout)

    def stop(self, timeout: float = 60.0) -> None:
        subprocess.run(
            [*SCRIPT, "stop", "--data-dir", str(self.data_dir)],
            capture_output=True,
            check=False,
            timeout=timeout,
        )

    @property
    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "state.json").read_text()))

    @property
    def pid(self) -> int:
        return int(self.state["pid"])

    @property
    def port(self) -> int:
        return int(self.state["port"])

    def _run(self, args: list[str], timeout: float) -> dict[str, str]:
        """Run the script; its `KEY=value` output lines as a dict."""
        out = subprocess.run([*SCRIPT, *args], capture_output=True, text=True, check=False, timeout=timeout)
        if out.returncode != 0:
            raise BrokerError(
                f"kafka-local {args[0]} failed (JDK 17+ and Maven needed):\n{out.stderr[-3000:]}"
            )
        return dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)
