"""Shared machinery of the benchmarks: the broker, the machine's description, a peak-RSS sampler.

The broker is the project's own `scripts/kafka-local` (a real single-node KRaft broker from the
Maven jars) in a folder of the bench's own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _kafka_local() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kafka_local", ROOT / "scripts" / "kafka_local.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kafka_local = _kafka_local()
KAFKA_LIBS: Path = kafka_local.LIBS


def shown_path(path: Path) -> str:
    """A path as results record it: relative to the repository, or (outside it, e.g. the temporary
    work folder) its name only, so committed results name no machine's folders."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.name


def kafka_version() -> str:
    jars = sorted(KAFKA_LIBS.glob("kafka-clients-*.jar"))
    return jars[0].stem.removeprefix("kafka-clients-") if jars else "?"


# --- the machine -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    java = subprocess.run(
        ["java", "-version"], capture_output=True, text=True, check=False
    ).stderr.splitlines()
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": java[0] if java else "?",
        "kafka": kafka_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- memory of a process -----------------------------------------------------------------------


def vm_hwm_mb(pid: int) -> float | None:
    """The kernel's own peak resident set (VmHWM) of a live process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class RssSampler:
    """Samples a process's RSS every `interval` seconds in a thread (for plots); the peak comes from
    the kernel's VmHWM, which sampling cannot miss."""

    pid: int
    interval: float = 0.1
    tree: bool = False  # the process and its children together (a restore's writer process)
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)

    def _run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
            t0 = time.monotonic()
            while not self._stop.is_set():
                rss = proc.memory_info().rss
                for child in proc.children(recursive=True) if self.tree else ():
                    with contextlib.suppress(psutil.Error):
                        rss += child.memory_info().rss
                self.samples.append((time.monotonic() - t0, rss / 2**20))
                self._stop.wait(self.interval)
        except psutil.Error:
            return

    @property
    def peak_sampled_mb(self) -> float:
        return max((rss for _, rss in self.samples), default=0.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children."""
    try:
        proc = psutil.Process(pid)
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total
    except psutil.Error:
        return 0.0


# --- printing ----------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "FAIL")


def say(msg: str) -> None:
    print(msg, flush=True)
