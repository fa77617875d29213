"""The capacity model of docs/capacity.md, its constants, and its check against a multi-client run.

    scripts/bench --fleet                 # calibrate, predict, run the fleet, compare (~10 min)
    .venv/bin/python -m bench.fleet model --workers 6 --partitions 6   # the capacity table only

`run` starts one local broker and one sandbox serving every client, then:

1. **calibrates** with one worker process: a first sync (baseline) of a small and of a large client
   and a steady sync (1 % changed) of the large one; from each: the worker's CPU seconds per
   customer, the sandbox's and the broker's (they share this machine's cores), the run's wall time
   and its API requests per 1,000 customers (`requestsPer1000` of the run result);
2. **predicts** the fleet's wall time from those constants (`simulate`) and the cores other work
   left free during the calibration: each worker runs the
   requests of the partitions it owns one after the other; the runs in progress share the machine's
   cores (a run can use at most one core for the worker's own work), and each worker's API calls
   are held to its rate limit;
3. **runs the fleet**: `--workers` worker processes (`amili-sync run`) in one consumer group over a
   request topic of `--partitions` partitions, one request per client sent at once, every result
   awaited; the wall time is first request sent to last result received.

The machine's cores are shared with whatever else runs on it: the CPU the fleet did not get is
measured (/proc/stat, all processes, minus the fleet's own) and the prediction is given both for the
idle machine and for the cores that were actually free. The result is written to
bench/results/<time>-fleet.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from bench.infra import ROOT, cpu_seconds, machine, say
from bench.worker_run import ResultWaiter
from testkit.broker import LocalBroker
from testkit.kafka import request_payload
from testkit.sandbox import sandbox_changes
from testkit.worker import WorkerProcess, free_port, worker_env

RESULTS = ROOT / "bench" / "results"
# The same sandbox as `scripts/bench`: true totals, the dense name mix (slicing as real registers need)
SANDBOX_ARGS = ["--total-count", "true", "--name-mix", "dense"]
# 20 clients of mixed sizes (customers, how many): ~136,000 customers in all
DEFAULT_MIX = "30000x2,10000x4,4000x6,1500x8"
CALIBRATION_SIZES = (4_000, 30_000)


# --- the model ------------------------------------------------------------------------------------


@dataclass
class Constants:
    """Measured per-customer costs (seconds) and per-run figures of one worker."""

    worker_cpu_baseline: float  # worker CPU seconds per customer, first sync
    worker_cpu_steady: float  # worker CPU seconds per customer, steady sync (1 % changed)
    side_cpu: float  # sandbox + broker CPU seconds per customer (they share the cores here)
    alone_rate: float  # customers/s of one run alone on the machine (first sync)
    run_overhead_s: float  # fixed seconds of a run (request, token, first page, result)
    requests_per_1000: dict[int, float]  # client size -> API requests per 1,000 customers
    rate_limit: float  # API requests/s of one worker (AMILI_SYNC_API__RATE_LIMIT)
    page_size: int

    def rpk(self, size: int) -> float:
        """API requests per 1,000 customers at `size`: the nearest measured size's (never below the
        unsliced 1,000 / page size)."""
        nearest = min(self.requests_per_1000, key=lambda s: abs(s - size))
        return max(self.requests_per_1000[nearest], 1000 / self.page_size)


@dataclass
class Job:
    client_no: int
    customers: int


def run_rate(c: Constants, job: Job, running: int, cores: float, steady: bool = False) -> float:
    """Customers/s of one run while `running` runs share `cores` (fair share of the CPU the runs and
    their sandbox and broker need; the worker's own work runs on one core, its event loop), held to
    the worker's API rate limit."""
    cpu = c.worker_cpu_steady if steady else c.worker_cpu_baseline
    one_core = 1 / cpu
    shared = cores / (running * (cpu + c.side_cpu))
    api = c.rate_limit * 1000 / c.rpk(job.customers)
    return min(one_core, shared, api)


def simulate(c: Constants, queues: list[list[Job]], cores: float) -> float:
    """Seconds until every worker has run its queue (fluid model: runs progress at `run_rate`)."""
    overhead = [c.run_overhead_s if q else 0.0 for q in queues]
    left = [float(q[0].customers) if q else 0.0 for q in queues]
    at = [0] * len(queues)
    t = 0.0
    while any(a < len(q) for a, q in zip(at, queues, strict=True)):
        busy = [w for w, q in enumerate(queues) if at[w] < len(q) and overhead[w] <= 0]
        rates = {w: run_rate(c, queues[w][at[w]], len(busy), cores) for w in busy}
        steps = [overhead[w] for w, q in enumerate(queues) if at[w] < len(q) and overhead[w] > 0]
        steps += [left[w] / rates[w] for w in busy]
        dt = min(steps)
        t += dt
        for w, q in enumerate(queues):
            if at[w] >= len(q):
                continue
            if overhead[w] > 0:
                overhead[w] -= dt
                continue
            left[w] -= rates[w] * dt
            if left[w] <= 1e-6:
                at[w] += 1
                if at[w] < len(q):
                    overhead[w], left[w] = c.run_overhead_s, float(q[at[w]].customers)
    return t


def partition_of(client_no: int, partitions: int) -> int:
    """The request partition of a client: the producer's default partitioner on the key."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(str(client_no).encode(), every, every))


def queues_of(jobs: list[Job], owners: dict[int, int], workers: int, partitions: int) -> list[list[Job]]:
    """Each worker's runs, in the order the requests were sent; `owners`: partition -> worker."""
    queues: list[list[Job]] = [[] for _ in range(workers)]
    for job in jobs:
        queues[owners[partition_of(job.client_no, partitions)]].append(job)
    return queues


def capacity_table(
    c: Constants, workers: int, partitions: int, counts: list[int], sizes: list[int]
) -> list[dict[str, Any]]:
    """Hours for `workers` workers (a core each; the API and Kafka elsewhere) to sync M clients of
    N customers once (first syncs), and what bounds it."""
    rows = []
    active = min(workers, partitions)  # one run at a time per worker, a partition has one owner
    for size in sizes:
        cpu_rate = 1 / c.worker_cpu_baseline
        api_rate = c.rate_limit * 1000 / c.rpk(size)
        per_run = c.run_overhead_s + size / min(cpu_rate, api_rate)
        for count in counts:
            seconds = -(-count // active) * per_run  # clients spread evenly over the active workers
            bound = "API rate limit" if api_rate < cpu_rate else "CPU"
            if workers > partitions:
                bound += f"; partitions: {workers - partitions} of {workers} workers idle"
            elif count < workers:
                bound += f"; clients: {workers - count} of {workers} workers idle"
            rows.append(
                {
                    "clients": count,
                    "customers": size,
                    "minutes": round(seconds / 60, 1),
                    "clients_per_hour": round(3600 / per_run * min(active, count), 1),
                    "bound": bound,
                }
            )
    return rows


# --- measurements ---------------------------------------------------------------------------------


@dataclass
class Lab:
    bootstrap: str
    sandbox: Any
    workdir: Path
    broker_pid: int | None
    rate_limit: float

    def side_cpu(self) -> float:
        """CPU seconds so far of the sandbox and the broker (the broker when it was started here)."""
        total = cpu_seconds(self.sandbox.process.pid)
        return total + (cpu_seconds(self.broker_pid) if self.broker_pid else 0.0)

    def worker(self, prefix: str, name: str, partitions: int) -> WorkerProcess:
        env = worker_env(
            self.bootstrap,
            prefix,
            self.sandbox,
            self.workdir / f"state-{name}",
            free_port(),
            AMILI_SYNC_TOPICS__PARTITIONS=str(partitions),
            AMILI_SYNC_API__RATE_LIMIT=f"{self.rate_limit:g}",
            AMILI_SYNC_LOG_LEVEL="WARNING",
        )
        return WorkerProcess(env, self.workdir / f"worker-{name}.log")


def busy_cpu_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0))


async def send_requests(bootstrap: str, prefix: str, clients: list[int]) -> dict[str, int]:
    """One request per client, sent at once; requestId -> clientNo."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    sent: dict[str, int] = {}
    try:
        for client_no in clients:
            rid, payload = request_payload(client_no)
            await producer.send(f"{prefix}.fetch-requests", payload, key=str(client_no).encode())
            sent[rid] = client_no
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def one_run(lab: Lab, worker: WorkerProcess, prefix: str, client_no: int) -> dict[str, Any]:
    """One request on a running worker: wall time, result, worker and side CPU per customer."""
    assert worker.proc is not None
    async with ResultWaiter(lab.bootstrap, prefix) as waiter:
        cpu0, side0, t0 = cpu_seconds(worker.proc.pid), lab.side_cpu(), time.monotonic()
        busy0 = busy_cpu_seconds()
        [rid] = await send_requests(lab.bootstrap, prefix, [client_no])
        result = await waiter.wait(rid, timeout=1800)
        wall = waiter.received_at[rid] - t0
        cpu, side = cpu_seconds(worker.proc.pid) - cpu0, lab.side_cpu() - side0
        others = max(0.0, busy_cpu_seconds() - busy0 - cpu - side)
    n = int(result["customersRead"])
    figures = {
        "client": client_no,
        "customers": n,
        "status": result["status"],
        "wall_s": round(wall, 2),
        "engine_s": result["durationSeconds"],
        "worker_cpu_us": round(cpu / n * 1e6, 1),
        "side_cpu_us": round(side / n * 1e6, 1),
        "requests_per_1000": result.get("requestsPer1000"),
        "api_requests": result.get("apiRequests"),
        "cores_used_by_others": round(others / wall, 2),
    }
    say(f"    {figures}")
    return figures


async def calibrate(lab: Lab, small: int, large: int, page_size: int) -> tuple[Constants, dict[str, Any]]:
    say("== calibration: one worker, one run at a time ==")
    worker = lab.worker("cal", "cal", 1)
    await asyncio.to_thread(worker.start, True, 180.0)
    try:
        first_small = await one_run(lab, worker, "cal", small)
        first_large = await one_run(lab, worker, "cal", large)
        size = first_large["customers"]
        spec = {"seed": 5, "balance": 0.005, "address": 0.0025, "registrationStatus": 0.0025}
        await sandbox_changes(lab.sandbox, clientNo=large, created=max(1, size // 5000),
                              deleted=max(1, size // 5000), **spec)  # fmt: skip
        steady = await one_run(lab, worker, "cal", large)
    finally:
        await asyncio.to_thread(worker.stop)
    n1, n2 = first_small["customers"], first_large["customers"]
    w1, w2 = first_small["wall_s"], first_large["wall_s"]
    alone = (n2 - n1) / (w2 - w1) if w2 > w1 else n2 / w2
    overhead = max(0.0, w1 - n1 / alone)
    rpk = {
        n1: float(first_small["requests_per_1000"] or 1000 / page_size),
        n2: float(first_large["requests_per_1000"] or 1000 / page_size),
    }
    constants = Constants(
        worker_cpu_baseline=(first_small["worker_cpu_us"] * n1 + first_large["worker_cpu_us"] * n2) / (n1 + n2) / 1e6,
        worker_cpu_steady=steady["worker_cpu_us"] / 1e6,
        side_cpu=(first_small["side_cpu_us"] * n1 + first_large["side_cpu_us"] * n2) / (n1 + n2) / 1e6,
        alone_rate=alone,
        run_overhead_s=overhead,
        requests_per_1000=rpk,
        rate_limit=lab.rate_limit,
        page_size=page_size,
    )  # fmt: skip
    runs = {"baseline_small": first_small, "baseline_large": first_large, "steady_large": steady}
    return constants, runs


def cores_got(runs: dict[str, Any]) -> float:
    """The cores the calibration's worker, sandbox and broker used (CPU seconds / wall seconds of
    the first syncs). Reported only: one run at a time cannot use every free core (its worker is
    one event loop), so on a quiet machine this is below what a fleet gets."""
    cpu = sum((r["worker_cpu_us"] + r["side_cpu_us"]) * r["customers"] / 1e6 for r in runs.values())
    return float(cpu / sum(r["wall_s"] for r in runs.values()))


def cores_free(runs: dict[str, Any], cores: int) -> float:
    """The cores other work left free during the calibration runs (the machine's cores minus what the
    other processes used, wall-weighted): what a prediction may count on. Counting the cores the
    calibration used instead predicted 23.1 s for a fleet that took 14.4 s on a quiet machine
    (`bench/results/20261202T114944Z-fleet.json`): 1.48 cores used where 1.96 were free."""
    wall = sum(r["wall_s"] for r in runs.values())
    others = sum(r["cores_used_by_others"] * r["wall_s"] for r in runs.values()) / wall
    return max(0.1, cores - others)


async def fleet_run(
    lab: Lab, c: Constants, clients: dict[int, int], workers: int, partitions: int, lab_cores: float
) -> dict[str, Any]:
    say(f"\n== fleet: {len(clients)} clients, {workers} workers, {partitions} partitions ==")
    procs = [lab.worker("fleet", f"fleet-{i}", partitions) for i in range(workers)]
    try:
        for p in procs:
            await asyncio.to_thread(p.start, False)
        owners = await _owners(procs, partitions)
        jobs = [Job(no, n) for no, n in sorted(clients.items(), key=lambda kv: -kv[1])]
        queues = queues_of(jobs, owners, workers, partitions)
        cores = psutil.cpu_count() or 1
        predicted_idle = simulate(c, queues, cores)
        predicted = simulate(c, queues, lab_cores)
        say(f"    owners {owners}; per worker {[sum(j.customers for j in q) for q in queues]} customers")
        say(f"    predicted: {predicted:.1f}s with the {lab_cores:.2f} cores free during the calibration "
            f"({predicted_idle:.1f}s on an idle machine of {cores} cores)")  # fmt: skip
        pids = [p.proc.pid for p in procs if p.proc is not None]
        async with ResultWaiter(lab.bootstrap, "fleet") as waiter:
            cpu0 = sum(cpu_seconds(pid) for pid in pids) + lab.side_cpu()
            busy0, t0 = busy_cpu_seconds(), time.monotonic()
            sent = await send_requests(lab.bootstrap, "fleet", [j.client_no for j in jobs])
            for rid in sent:
                await waiter.wait(rid, timeout=3600)
            wall = max(waiter.received_at[rid] for rid in sent) - t0
            ours = sum(cpu_seconds(pid) for pid in pids) + lab.side_cpu() - cpu0
            others = max(0.0, busy_cpu_seconds() - busy0 - ours)
        fleet_cores = ours / wall
        predicted_after = simulate(c, queues, fleet_cores)
        results = [waiter.results[rid] for rid in sent]
    finally:
        for p in procs:
            await asyncio.to_thread(p.stop)
    customers = sum(int(r["customersRead"]) for r in results)
    predicted_cpu = sum(j.customers for j in jobs) * (c.worker_cpu_baseline + c.side_cpu)
    out = {
        "clients": len(clients),
        "customers": customers,
        "workers": workers,
        "partitions": partitions,
        "owners": owners,
        "customers_per_worker": [sum(j.customers for j in q) for q in queues],
        "statuses": sorted({r["status"] for r in results}),
        "measured_wall_s": round(wall, 1),
        "predicted_s": round(predicted, 1),
        "error": round(wall / predicted - 1, 3),
        "cores_free_at_calibration": round(lab_cores, 2),
        "predicted_idle_s": round(predicted_idle, 1),
        "cores": cores,
        "cores_used_by_others": round(others / wall, 2),
        "cores_fleet_got": round(fleet_cores, 2),
        "predicted_with_cores_fleet_got_s": round(predicted_after, 1),
        "cpu_s_fleet": round(ours, 1),
        "cpu_s_predicted": round(predicted_cpu, 1),
        "requests_per_1000": {str(r["clientNo"]): r.get("requestsPer1000") for r in results},
    }
    say(f"    measured {wall:.1f}s, predicted {predicted:.1f}s ({wall / predicted - 1:+.0%}); the fleet got "
        f"{fleet_cores:.2f} cores (others used {others / wall:.2f}); fleet CPU {ours:.0f}s, predicted "
        f"{predicted_cpu:.0f}s")  # fmt: skip
    return out


async def _owners(procs: list[WorkerProcess], partitions: int, timeout: float = 180.0) -> dict[int, int]:
    """partition -> index of the worker that owns it, once every partition is owned and ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owners: dict[int, int] = {}
        for i, p in enumerate(procs):
            ready = await asyncio.to_thread(p.readyz)
            for partition in (ready or {}).get("partitions") or []:
                owners[int(partition)] = i
        if len(owners) == partitions and len(set(owners.values())) == len(procs):
            return owners
        await asyncio.sleep(1.0)
    raise TimeoutError(f"the fleet's partitions were not all owned and ready within {timeout}s")


def parse_mix(mix: str) -> list[int]:
    sizes = []
    for part in mix.split(","):
        size, _, count = part.partition("x")
        sizes += [int(size)] * int(count or 1)
    return sizes


@contextmanager
def _lab(bootstrap: str | None, clients: dict[int, int], rate_limit: float) -> Iterator[Lab]:
    from service.sandbox.testing import running_sandbox

    workdir = Path(tempfile.mkdtemp(prefix="amili-fleet-"))
    broker = LocalBroker(workdir / "kafka", heap="768m") if not bootstrap else None
    try:
        address = broker.start() if broker else str(bootstrap)
        with running_sandbox(clients, seed=11, extra_args=SANDBOX_ARGS) as sandbox:
            yield Lab(address, sandbox, workdir, broker.pid if broker else None, rate_limit)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # broker data and worker caches: ~300 MB


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = parse_mix(args.mix)
    fleet = {9100 + i: n for i, n in enumerate(sizes)}
    small, large = CALIBRATION_SIZES
    calibration = {9000: small, 9001: large}
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "args": vars(args),
    }
    with _lab(args.bootstrap, {**calibration, **fleet}, args.rate_limit) as lab:
        constants, runs = await calibrate(lab, 9000, 9001, args.page_size)
        say(f"    constants: {constants}")
        report["calibration"] = runs
        report["constants"] = asdict(constants)
        first_syncs = {k: v for k, v in runs.items() if k.startswith("baseline")}
        report["calibration_cores_used"] = round(cores_got(first_syncs), 2)
        lab_cores = cores_free(first_syncs, psutil.cpu_count() or 1)
        report["fleet"] = await fleet_run(lab, constants, fleet, args.workers, args.partitions, lab_cores)
    # the API cost of every size the fleet ran, for the table
    for client, rpk in report["fleet"]["requests_per_1000"].items():
        if rpk is not None:
            constants.requests_per_1000.setdefault(fleet[int(client)], float(rpk))
    report["requests_per_1000_by_size"] = constants.requests_per_1000
    report["capacity"] = capacity_table(constants, 6, 6, [10, 100, 1000], [10_000, 100_000, 1_000_000])
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-fleet.json"
    path.write_text(json.dumps(report, indent=1, default=str))
    say(f"results: {path}")
    return report


def model(args: argparse.Namespace) -> None:
    """The capacity table from the constants of a result file."""
    report = json.loads(Path(args.result).read_text())
    raw = report["constants"]
    raw["requests_per_1000"] = {int(k): v for k, v in raw["requests_per_1000"].items()}
    if args.rate_limit:
        raw["rate_limit"] = args.rate_limit
    if args.requests_per_1000:
        raw["requests_per_1000"].update({int(k): float(v) for k, v in
                                         (kv.split("=") for kv in args.requests_per_1000.split(","))})  # fmt: skip
    c = Constants(**raw)
    say("| clients | customers each | minutes for one sync of all | clients/hour | bound |")
    say("|---|---|---|---|---|")
    for row in capacity_table(
        c, args.workers, args.partitions, [10, 100, 1000], [10_000, 100_000, 1_000_000]
    ):
        say(
            f"| {row['clients']:,} | {row['customers']:,} | {row['minutes']} | {row['clients_per_hour']} | {row['bound']} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="calibrate, predict and run the fleet")
    r.add_argument("--mix", default=DEFAULT_MIX, help="client sizes: SIZExCOUNT,... (default %(default)s)")
    r.add_argument("--workers", type=int, default=3)
    r.add_argument("--partitions", type=int, default=6)
    r.add_argument("--rate-limit", type=float, default=50.0, help="each worker's API requests/s")
    r.add_argument("--page-size", type=int, default=1000)
    r.add_argument("--bootstrap", help="use this broker instead of starting one")
    m = sub.add_parser("model", help="the capacity table from a fleet result file's constants")
    m.add_argument("result", help="bench/results/<time>-fleet.json")
    m.add_argument("--workers", type=int, default=6)
    m.add_argument("--partitions", type=int, default=6)
    m.add_argument("--rate-limit", type=float)
    m.add_argument("--requests-per-1000", help="SIZE=R,... measured elsewhere (e.g. scripts/bench)")
    a = p.parse_args()
    if a.command == "run":
        asyncio.run(run(a))
    else:
        model(a)


if __name__ == "__main__":
    main()
