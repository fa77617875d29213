"""One measured run of the real worker process (`amili-sync run`) against the sandbox and broker.

The worker is started as a subprocess (as in production and in tests/e2e), a request is sent to the
request topic, and the run result is awaited on the results topic with a read_committed consumer.
Its RSS is sampled while it runs and its peak taken from the kernel (VmHWM) before it is stopped.
Optionally py-spy records its stacks for the duration of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.infra import ROOT, RssSampler, cpu_seconds, shown_path, vm_hwm_mb
from testkit.kafka import send_request
from testkit.worker import WorkerProcess

# py-spy samples per second. The profiler shares the machine with the measured worker (the floors
# run without it): at 100 a second it used 0.60-0.69 CPU s during a first sync of 100,000 (~9 s), at
# 25 0.13 s (docs/performance.md, 4.21), and a 100,000 run still gets ~200 samples.
PROFILE_RATE = 25


class ResultWaiter:
    """read_committed reader of one prefix's sync-results topic."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.topic = f"{prefix}.sync-results"
        self.consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        self.results: dict[str, dict[str, Any]] = {}
        self.received_at: dict[str, float] = {}

    async def __aenter__(self) -> ResultWaiter:
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def wait(self, request_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while request_id not in self.results:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no run result for {request_id} within {timeout}s")
            batch = await self.consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    result = json.loads(r.value)
                    self.results[result["requestId"]] = result
                    self.received_at[result["requestId"]] = now
        return self.results[request_id]


@dataclass
class RunFigures:
    result: dict[str, Any]
    wall_s: float  # request sent -> result received
    peak_rss_mb: float
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    worker_cpu_s: float = 0.0
    profile: Path | None = None
    # CPU seconds the other processes on the machine used during the run (the broker, the sandbox,
    # the profiler): on two cores, what they take is what the worker waits for
    neighbour_cpu_s: dict[str, float] = field(default_factory=dict)
    profile_rate: int = PROFILE_RATE  # py-spy samples per second, when profiled

    @property
    def engine_s(self) -> float:
        return float(self.result["durationSeconds"])

    @property
    def customers(self) -> int:
        return int(self.result["customersRead"])

    @property
    def customers_per_s(self) -> float:
        return self.customers / self.engine_s if self.engine_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.result["status"],
            "customers": self.customers,
            "pages": self.result["pages"],
            "slices": self.result["slices"],
            "counts": self.result["counts"],
            "engine_s": self.engine_s,
            "wall_s": round(self.wall_s, 3),
            "customers_per_s": round(self.customers_per_s),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "worker_cpu_s": round(self.worker_cpu_s, 2),
            **{f"{name}_cpu_s": round(cpu, 2) for name, cpu in self.neighbour_cpu_s.items()},
            "profile": shown_path(self.profile) if self.profile else None,
        }


def py_spy_binary() -> Path:
    """py-spy, copied out of the venv (a concurrent `uv sync` without the bench group removes it)."""
    kept = ROOT / ".cache" / "bench" / "py-spy"
    venv = ROOT / ".venv" / "bin" / "py-spy"
    if venv.exists() and (not kept.exists() or kept.stat().st_size != venv.stat().st_size):
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(venv, kept)
    if not kept.exists():
        raise RuntimeError("py-spy is missing: uv sync --group bench")
    return kept


def _start_py_spy(pid: int, out: Path, rate: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(py_spy_binary()), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
         "--nonblocking", "--subprocesses", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def measured_run(
    worker: WorkerProcess,
    bootstrap: str,
    prefix: str,
    client_no: int,
    *,
    timeout: float,
    profile_to: Path | None = None,
    profile_rate: int = PROFILE_RATE,
    neighbours: dict[str, int] | None = None,
) -> RunFigures:
    """Start the worker, send one request, wait for its result, stop the worker. `neighbours`: name ->
    pid of other processes whose CPU seconds during the run are reported beside the worker's."""
    spy = None
    try:
        await asyncio.to_thread(worker.start, True, 180.0)
        assert worker.proc is not None
        pid = worker.proc.pid
        spy = _start_py_spy(pid, profile_to, profile_rate) if profile_to else None
        # the profiler too: it shares the machine with the worker (the floors run without it)
        watched = {**(neighbours or {}), **({"profiler": spy.pid} if spy else {})}
        async with ResultWaiter(bootstrap, prefix) as waiter:
            cpu0 = cpu_seconds(pid)
            others0 = {name: cpu_seconds(p) for name, p in watched.items()}
            with RssSampler(pid) as sampler:
                t0 = time.monotonic()
                rid = await send_request(bootstrap, prefix, client_no)
                result = await waiter.wait(rid, timeout)
                wall = waiter.received_at[rid] - t0
            cpu = cpu_seconds(pid) - cpu0
            others = {name: cpu_seconds(p) - others0[name] for name, p in watched.items()}
            peak = vm_hwm_mb(pid) or sampler.peak_sampled_mb
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(60)
        await asyncio.to_thread(worker.stop)
    return RunFigures(result, wall, peak, sampler.samples, cpu, profile_to, others, profile_rate)


def top_frames(raw_profile: Path, n: int = 20) -> list[tuple[str, float, float]]:
    """(function, self share, inclusive share) of the busiest frames of a py-spy raw (collapsed) profile."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw_profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        if frames:
            self_t[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    if not total:
        return []
    return [(f, c / total, incl[f] / total) for f, c in self_t.most_common(n)]
