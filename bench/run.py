"""The benchmark: every figure measured in one run, on one machine, against one sandbox
and one broker, each printed with its target and PASS/FAIL. Entry point: `scripts/bench`.

    scripts/bench                 # 100,000 and 1,000,000 customers
    scripts/bench --rss-series    # the same plus 300,000 (RSS over time at three sizes)
    scripts/bench --quick         # 10,000 and 50,000 customers (about two minutes)
    scripts/bench --sizes 30000,300000 --profile --keep

First, unmeasured, one first sync of a client of its own (`--warmup`, 50,000 customers) warms the
broker's JIT, which a production broker has long done (see WARMUP_CUSTOMERS).

For each size N (one client of N customers in the sandbox, with the realistic `dense` name mix and
true totals: the 10,000 cap makes every reader slice by name, as in production; see
SANDBOX_TOTAL_COUNT and SANDBOX_NAME_MIX):

  client floor  fetch + parse of every page with the Amili client alone (`bench.client_bench.
                measure_floor`, same API settings and concurrency as the worker) in a fresh process
                with the worker's start-up tuning, measured right before and right after each worker
                run; a run's ratio is against the mean of those two (one more client floor with
                Python's default gc is printed for reference)
  raw floor     the list requests the first and the last client floor sent, replayed in a fresh
                process (same tuning) with plain httpx and decoded with `orjson.loads` alone
                (`bench.raw_floor`): what the same pages cost without the client's models and guards
  baseline      first sync: the worker process (`amili-sync run`, fresh state dir and topics) gets
                one request; customers/s = customers / the run's own durationSeconds; every
                customer read gets exactly one baseline event
  steady        the sandbox changes 1% of the customers (balance, address, registration status,
                created, deleted); the worker restarted on the same state dir syncs again; the result
                must count exactly the sandbox's changes
  breakdown     µs per customer of decode, state, diff, event, Kafka, SQLite, ... in the baseline and
                the steady run, from py-spy profiles of those very runs (`bench.breakdown`)
  neighbours    the CPU seconds the broker (when the bench started it), the sandbox and py-spy
                (in a profiled run) used during each measured run, beside the worker's: on a small
                machine what they take the worker waits for
  RSS           the kernel's peak resident set (VmHWM) of each worker process, sampled every 0.1 s too;
                also of a worker started on an empty state dir (restore on start)

For the largest N also: restore of the snapshot partition into an empty cache against a plain
read_committed consume of the same records, and the worker's transactional publish rate against
Kafka's ProducerPerformance at the same record size and transaction size (`bench.publish`).
Results go to bench/results/<timestamp>.json; `--plots` redraws docs/perf/*.png from such files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.infra import ROOT, machine, say, verdict
from testkit.broker import LocalBroker
from testkit.oracle import expected_counts

RESULTS = ROOT / "bench" / "results"
# True totals: the slicing planner proves coverage by sums (probing where a shortfall remains), and the
# run result reports its cost (slices, probe queries, API requests per 1,000 customers). The `dense`
# name mix has families far beyond the cap that continue through non-ASCII letters, spaces,
# apostrophes, full stops and hyphens, as real registers do (service/sandbox/README.md).
SANDBOX_TOTAL_COUNT = "true"
SANDBOX_NAME_MIX = "dense"

TARGETS = {
    "client_raw_ratio": 0.7,  # client floor / raw floor
    "baseline_ratio": 0.6,  # first sync / client floor
    "steady_ratio": 0.9,  # steady state (1% changed) / client floor
    "rss_mb": 200.0,  # worker peak RSS at every size (the largest: 1,000,000 by default)
    "rss_flat": 1.15,  # peak at the largest N / peak at the smallest N
    "restore_ratio": 3.0,  # restore of the largest snapshot / plain read_committed consume of it
    "publish_ratio": 1.0,  # transactional publish / ProducerPerformance
}
RSS_SERIES_SIZE = 300_000  # `--rss-series` adds this size to the default ones
# One unmeasured first sync of a client of its own warms the broker before the first measured run.
# Its JIT compiles its hot paths under the first heavy transactional load: during a first sync of
# 100,000 a fresh broker used 3.9 and 4.1 CPU s, one that had served a run before 2.2 s, on the same
# two cores as the worker. Only the smallest size, measured first, paid that; a production broker is
# long warm. The floors do not use the broker.
WARMUP_CLIENT = 8999
WARMUP_CUSTOMERS = 50_000


@dataclass
class Context:
    bootstrap: str
    sandbox: Any
    workdir: Path
    concurrency: int
    page_size: int
    profile: bool
    profile_rate: int  # py-spy samples per second of the measured runs (`--profile-rate`)
    breakdown: bool = True
    # name -> pid of the other processes on the machine (the broker, when the bench started it, and
    # the sandbox) whose CPU seconds each measured run reports
    neighbours: dict[str, int] = field(default_factory=dict)
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def figure(self, name: str, value: str, target: str, ok: bool | None) -> None:
        self.rows.append((name, value, target, verdict(ok)))
        say(f"  {verdict(ok)}  {name}: {value}   (target {target})")


def worker_extra(ctx: Context) -> dict[str, str]:
    return {
        "AMILI_SYNC_API__CONCURRENCY": str(ctx.concurrency),
        "AMILI_SYNC_API__PAGE_SIZE": str(ctx.page_size),
        "AMILI_SYNC_LOG_LEVEL": "INFO",
    }


async def floor(
    ctx: Context,
    client_no: int,
    gc_mode: str = "worker",
    *,
    record: Path | None = None,
    raw: Path | None = None,
    names: Path | None = None,
) -> dict[str, Any]:
    """One floor measurement in a fresh process (`bench.floor`), like the worker's own process: the
    client floor (recording its list requests to `record`; its planner taught the snapshot's `names`
    as the worker's is), or with `raw` the raw floor replaying recorded requests."""
    sb = ctx.sandbox
    cmd = [
        sys.executable, "-m", "bench.floor", "--base-url", sb.base_url, "--token-url", sb.token_url,
        "--client-id", sb.client_id, "--client-secret", sb.client_secret, "--client", str(client_no),
        "--concurrency", str(ctx.concurrency), "--page-size", str(ctx.page_size), "--gc", gc_mode,
    ]  # fmt: skip
    if record is not None:
        cmd += ["--record", str(record)]
    if raw is not None:
        cmd += ["--raw", str(raw)]
    if names is not None:
        cmd += ["--known-names", str(names)]
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"floor measurement failed:\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    what = "raw floor" if raw is not None else f"client floor ({gc_mode} gc)"
    say(
        f"    {what}: {result['customers']} customers in {result['seconds']:.1f}s = "
        f"{result['customers_per_s']}/s, cpu {result['client_cpu_share']:.0%}"
        + (f", {result['pages']} pages, {result['slices']} slices" if "pages" in result else "")
    )
    return result


def snapshot_names(state_dir: Path, client_no: int, to: Path) -> tuple[int, str]:
    """What the worker's state teaches its slicing planner in a steady run, read after the worker
    stopped through the store's own queries and written to `to` for the floors: the name prefixes
    its last read left (`{"prefixes": ..., "customers": n}`), or, where it has none (a tree from
    before them), the snapshot's names (a JSON list). How many customers or names, and which."""
    from service.snapshot.store import SnapshotStore

    store = SnapshotStore(state_dir / "snapshot.sqlite")
    try:
        raw = store.name_prefixes(client_no) if hasattr(store, "name_prefixes") else None
        if raw is not None:
            to.write_bytes(raw)
            return int(json.loads(raw)["customers"]), "name prefixes"
        names = list(store.names(client_no))
    finally:
        store.close()
    to.write_text(json.dumps(names))
    return len(names), "names"


def change_spec(n: int, seed: int) -> dict[str, Any]:
    """1% of the customers changed: balance 0.5%, address 0.25%, status 0.25%, plus 0.02% created and
    0.02% deleted (each deletion is confirmed with a GET by the worker)."""
    small = max(1, round(n * 0.0002))
    return {
        "seed": seed,
        "balance": 0.005,
        "address": 0.0025,
        "registrationStatus": 0.0025,
        "created": small,
        "deleted": small,
    }


def cached_customers(state_dir: Path, client_no: int, customer_nos: list[str]) -> set[str]:
    """Which of these customers the worker's snapshot cache holds (read after the worker stopped)."""
    db = sqlite3.connect(f"file:{state_dir / 'snapshot.sqlite'}?mode=ro", uri=True)
    try:
        found: set[str] = set()
        for i in range(0, len(customer_nos), 500):
            chunk = customer_nos[i : i + 500]
            rows = db.execute(
                f"SELECT customer_no FROM customers WHERE client_no = ? AND customer_no IN ({','.join('?' * len(chunk))})",  # noqa: S608
                (client_no, *chunk),
            )
            found.update(r[0] for r in rows)
        return found
    finally:
        db.close()


async def restore_on_start(ctx: Context, env: dict[str, str], n: int) -> dict[str, Any]:
    """A worker with an empty state dir: seconds until ready (every owned partition restored), peak RSS
    (the worker's own, or with its restore's writer process added where that is more)."""
    from bench.infra import RssSampler, vm_hwm_mb
    from testkit.worker import WorkerProcess, free_port

    fresh = {**env, "AMILI_SYNC_STATE_DIR": str(ctx.workdir / f"state-{n}-fresh"),
             "AMILI_SYNC_HEALTH_PORT": str(free_port())}  # fmt: skip
    worker = WorkerProcess(fresh, ctx.workdir / f"worker-{n}-restore.log")
    t0 = time.monotonic()
    try:
        starting = asyncio.create_task(asyncio.to_thread(worker.start, True, 600.0))
        while worker.proc is None and not starting.done():
            await asyncio.sleep(0.01)
        assert worker.proc is not None
        with RssSampler(worker.proc.pid, tree=True) as sampler:
            await starting
        seconds = time.monotonic() - t0
        peak = max(vm_hwm_mb(worker.proc.pid) or 0.0, sampler.peak_sampled_mb)
    finally:
        await asyncio.to_thread(worker.stop)
    return {"seconds_to_ready": round(seconds, 2), "peak_rss_mb": round(peak, 1)}


async def warm_up(ctx: Context, client_no: int) -> dict[str, Any]:
    """The unmeasured first sync that warms the broker, on topics of its own."""
    from bench.worker_run import measured_run
    from testkit.worker import WorkerProcess, free_port, worker_env

    prefix = f"warmup{uuid.uuid4().hex[:8]}.amili.customers"
    env = worker_env(
        ctx.bootstrap, prefix, ctx.sandbox, ctx.workdir / "state-warmup", free_port(), **worker_extra(ctx)
    )
    worker = WorkerProcess(env, ctx.workdir / "worker-warmup.log")
    run = await measured_run(
        worker, ctx.bootstrap, prefix, client_no, timeout=600.0, neighbours=ctx.neighbours
    )
    assert run.result["status"] == "succeeded", run.result
    say(f"warm-up (not measured): {run.summary()}")
    return run.summary()


def run_breakdown(ctx: Context, run: Any, name: str) -> dict[str, Any] | None:
    """µs per customer by part of one measured run, from its py-spy profile (`bench.breakdown`)."""
    from bench.breakdown import breakdown, describe

    if run.profile is None:
        return None
    if not run.profile.exists() or not run.profile.stat().st_size:
        say(f"    {name} breakdown: py-spy wrote no profile")
        return {"error": "py-spy wrote no profile"}
    b = breakdown(run.profile, run.customers, run.profile_rate, cpu_s=run.worker_cpu_s, wall_s=run.engine_s)
    say(f"    {name} breakdown (µs per customer): {describe(b)}")
    return b


async def bench_size(ctx: Context, n: int, client_no: int) -> dict[str, Any]:
    from bench.worker_run import RunFigures, measured_run
    from service.entrypoints.oneshot import client_partition
    from testkit.sandbox import sandbox_changes
    from testkit.worker import WorkerProcess, free_port, worker_env

    say(f"\n== {n:,} customers (client {client_no}) ==")
    prefix = f"bench{uuid.uuid4().hex[:8]}.amili.customers"
    state = ctx.workdir / f"state-{n}"
    env = worker_env(ctx.bootstrap, prefix, ctx.sandbox, state, free_port(), **worker_extra(ctx))
    timeout = max(600.0, n / 500)
    spied = ctx.profile or ctx.breakdown
    out: dict[str, Any] = {"n": n, "client": client_no, "prefix": prefix}
    out["partition"] = client_partition(client_no, int(env["AMILI_SYNC_TOPICS__PARTITIONS"]))

    async def measure(worker: WorkerProcess, prof: Path | None) -> RunFigures:
        """One measured run of this size's client (the first sync, then the steady one)."""
        return await measured_run(
            worker, ctx.bootstrap, prefix, client_no, timeout=timeout, profile_to=prof,
            profile_rate=ctx.profile_rate, neighbours=ctx.neighbours,
        )  # fmt: skip

    plans = [ctx.workdir / f"plan-{n}-first.json", ctx.workdir / f"plan-{n}-last.json"]
    floors = [await floor(ctx, client_no, record=plans[0])]
    raws = [await floor(ctx, client_no, raw=plans[0])]

    worker = WorkerProcess(env, ctx.workdir / f"worker-{n}-baseline.log")
    prof = ctx.workdir / f"profile-{n}-baseline.txt" if spied else None
    base = await measure(worker, prof)
    say(f"    baseline: {base.summary()}")
    assert base.result["status"] == "succeeded", base.result
    baseline_exact = base.result["counts"] == {"baseline": base.customers}
    out["unreachable"] = n - base.customers
    out["slicing"] = {
        key: base.result.get(key)
        for key in ("coverage", "slices", "apiRequests", "requestsPer1000", "unreachable", "sliceGapCount")
    }
    say(f"    slicing: {out['slicing']}")
    floors.append(await floor(ctx, client_no))
    # from here on the worker's planner learns from what its first read split: the floors get the same
    names = ctx.workdir / f"names-{n}.json"
    out["known_names"], out["taught"] = await asyncio.to_thread(snapshot_names, state, client_no, names)

    spec = change_spec(n, seed=n % 9973)
    changes = await sandbox_changes(ctx.sandbox, clientNo=client_no, **spec)
    known = cached_customers(state, client_no, [c["customerNo"] for c in changes if c["kind"] != "created"])
    seen_changes = [c for c in changes if c["kind"] == "created" or c["customerNo"] in known]
    expected = expected_counts(seen_changes)
    out["changes_of_unreachable_customers"] = len(changes) - len(seen_changes)
    sandbox_count_after = n + spec["created"] - spec["deleted"]
    floors.append(await floor(ctx, client_no, names=names))  # the sandbox serves changed data a little slower
    worker = WorkerProcess(env, ctx.workdir / f"worker-{n}-steady.log")
    prof = ctx.workdir / f"profile-{n}-steady.txt" if spied else None
    steady = await measure(worker, prof)
    say(f"    steady: {steady.summary()}")
    assert steady.result["status"] == "succeeded", steady.result
    exact = steady.result["counts"] == dict(expected)
    floors.append(await floor(ctx, client_no, record=plans[1], names=names))
    raws.append(await floor(ctx, client_no, raw=plans[1]))
    default_gc = await floor(ctx, client_no, "default", names=names)
    restore = await restore_on_start(ctx, env, n)
    say(f"    a new worker on an empty state dir: {restore}")

    rates = [f["customers_per_s"] for f in floors]
    raw_rates = [r["customers_per_s"] for r in raws]
    # the raw floor replays exactly the requests of the client floor it follows: same count, same customers
    same_pages = all(
        r["requests"] == f["recorded_requests"] and r["customers"] == f["customers"]
        for r, f in zip(raws, (floors[0], floors[3]), strict=True)
    )
    out.update(
        floors=rates,
        floor_detail=floors,
        raw_floors=raw_rates,
        raw_floor_detail=raws,
        raw_floor_same_pages=same_pages,
        floor_default_gc=default_gc["customers_per_s"],
        baseline=base.summary(),
        steady=steady.summary(),
        restore_on_start=restore,
        baseline_rss=base.rss_samples,
        steady_rss=steady.rss_samples,
        changes=dict(expected),
        baseline_counts_exact=baseline_exact,
        steady_counts_exact=exact,
        sandbox_count_after_changes=sandbox_count_after,
        client_raw_ratio=round(statistics.mean((rates[0], rates[3])) / statistics.mean(raw_rates), 3),
        baseline_ratio=round(base.customers_per_s / statistics.mean(rates[0:2]), 3),
        steady_ratio=round(steady.customers_per_s / statistics.mean(rates[2:4]), 3),
        breakdown={
            "baseline": run_breakdown(ctx, base, "baseline") if ctx.breakdown else None,
            "steady": run_breakdown(ctx, steady, "steady") if ctx.breakdown else None,
        },
    )
    first = floors[0]
    out["slicing"].update(
        sliceQueries=base.result.get("sliceQueries", first.get("slice_queries")),
        probeQueries=base.result.get("probeQueries", first.get("probe_queries")),
    )
    ctx.figure(
        f"client floor N={n:,}",
        f"{round(statistics.mean(rates)):,} customers/s (runs: {', '.join(f'{r:,}' for r in rates)}; "
        f"Python's default gc: {default_gc['customers_per_s']:,}/s); {first['pages']} pages, "
        f"{first['slices']} slices",
        "reference",
        None,
    )
    ctx.figure(
        f"client floor / raw floor N={n:,}",
        f"{out['client_raw_ratio']:.3f} (raw floor: httpx + orjson.loads, "
        f"{', '.join(f'{r:,}' for r in raw_rates)}/s; same requests and customers as the client floor: "
        f"{'yes' if same_pages else 'NO'})",
        f">= {TARGETS['client_raw_ratio']}",
        out["client_raw_ratio"] >= TARGETS["client_raw_ratio"] and same_pages,
    )
    ctx.figure(
        f"slicing N={n:,}",
        f"coverage {base.result.get('coverage')}, {base.result['slices']} slices, "
        f"{out['slicing']['sliceQueries']} count queries ({out['slicing']['probeQueries']} probes), "
        f"{base.result.get('apiRequests')} API requests ({base.result.get('requestsPer1000')} per 1,000 "
        f"customers), gaps {base.result.get('sliceGapCount')}; pages / slices read: first sync "
        f"{base.result['pages']} / {base.result['slices']} (client floor {first['pages']} / {first['slices']}), "
        f"steady {steady.result['pages']} / {steady.result['slices']} (client floor taught as the worker is, "
        f"the {out['taught']} of {out['known_names']:,}: {floors[3]['pages']} / {floors[3]['slices']})",
        "reported",
        None,
    )
    every = base.customers == n and steady.customers == sandbox_count_after
    ctx.figure(
        f"every customer read N={n:,}",
        f"first sync {base.customers:,} of the sandbox's {n:,}; steady {steady.customers:,} of "
        f"{sandbox_count_after:,}; client floor {first['customers']:,}",
        "all",
        every,
    )
    ctx.figure(
        f"first sync (baseline) N={n:,}",
        f"{round(base.customers_per_s):,} customers/s, {base.engine_s:.1f}s, ratio to client floor "
        f"{out['baseline_ratio']:.3f}",
        f">= {TARGETS['baseline_ratio']}",
        out["baseline_ratio"] >= TARGETS["baseline_ratio"],
    )
    ctx.figure(
        f"first sync events N={n:,}",
        f"{base.result['counts']} for {base.customers:,} customers read",
        "exactly one baseline per customer",
        baseline_exact,
    )
    ctx.figure(
        f"steady state (1% changed) N={n:,}",
        f"{round(steady.customers_per_s):,} customers/s, {steady.engine_s:.1f}s, ratio to client floor "
        f"{out['steady_ratio']:.3f}",
        f">= {TARGETS['steady_ratio']}",
        out["steady_ratio"] >= TARGETS["steady_ratio"],
    )
    note = (
        f", {out['changes_of_unreachable_customers']} changes of customers the first sync never saw left out"
        if out["changes_of_unreachable_customers"]
        else ""
    )
    ctx.figure(
        f"steady-state events N={n:,}",
        f"{steady.result['counts']}; the sandbox changed {dict(expected)}{note}",
        "exactly the sandbox's changes",
        exact,
    )
    peak = max(base.peak_rss_mb, steady.peak_rss_mb, restore["peak_rss_mb"])
    out["peak_rss_mb"] = round(peak, 1)
    ctx.figure(
        f"worker peak RSS N={n:,}",
        f"{peak:.0f} MB (first sync {base.peak_rss_mb:.0f} MB, steady sync {steady.peak_rss_mb:.0f} MB, "
        f"restore on start {restore['peak_rss_mb']:.0f} MB in {restore['seconds_to_ready']:.1f}s)",
        f"<= {TARGETS['rss_mb']:.0f} MB",
        peak <= TARGETS["rss_mb"],
    )
    return out


async def bench_restore(ctx: Context, size: dict[str, Any]) -> dict[str, Any]:
    from bench.restore import compare_restore

    say(f"\n== restore of client {size['client']}'s snapshot partition into an empty cache ==")
    r = await compare_restore(
        ctx.bootstrap, f"{size['prefix']}.snapshot", size["partition"], ctx.workdir / "restore"
    )
    say(f"    {r}")
    ctx.figure(
        f"restore {r['records']:,} snapshot records (N={size['n']:,}) / plain read_committed consume",
        f"{r['ratio']:.2f}: restore {r['restore_s']:.1f}s ({r['restore_per_s']:,}/s), consume "
        f"{r['consume_s']:.1f}s ({r['consume_per_s']:,}/s)",
        f"<= {TARGETS['restore_ratio']:.0f}x",
        r["ratio"] <= TARGETS["restore_ratio"] and r["consumed"] == r["records"],
    )
    return r


async def bench_publish(ctx: Context, size: dict[str, Any], records: int) -> dict[str, Any]:
    from bench.publish import compare

    say("\n== transactional publish: the worker's PartitionPublisher vs Kafka's ProducerPerformance ==")
    # the worker commits a transaction per `pages_per_transaction` (1) x `page_size` customers
    r = await compare(ctx.bootstrap, size["prefix"], size["partition"], ctx.page_size, records)
    say(f"    worker: {r['worker']}")
    say(f"    kafka:  { {k: v for k, v in r['kafka'].items() if k != 'command'} }")
    ctx.figure(
        "transactional publish / ProducerPerformance",
        f"{r['ratio']:.2f}: worker {r['worker']['records_per_s']:,} records/s, ProducerPerformance "
        f"{r['kafka']['records_per_s']:,} records/s ({r['record_size']} B records, ~{r['records_per_txn']} "
        f"records/transaction)",
        f">= {TARGETS['publish_ratio']}",
        r["ratio"] >= TARGETS["publish_ratio"],
    )
    return r


def print_breakdowns(sizes: list[dict[str, Any]]) -> None:
    from bench.breakdown import PARTS

    rows = [
        (f"{s['n']:,} {run}", b)
        for s in sizes
        for run, b in (s.get("breakdown") or {}).items()
        if b and "us_per_customer" in b
    ]
    if not rows:
        return
    say(
        "\n== µs per customer, by part (shares of py-spy samples x the kernel's CPU time; bench.breakdown) =="
    )
    say(
        f"{'run':<18}" + "".join(f"{p:>8}" for p in PARTS)
        + f"{'= CPU':>8}{'+ no core':>10}{'+ idle':>8}{'= wall':>8}"
    )  # fmt: skip
    for name, b in rows:
        us = b["us_per_customer"]
        say(
            f"{name:<18}" + "".join(f"{us[p]:>8.1f}" for p in PARTS)
            + f"{b['cpu_us']:>8.1f}{b['waiting_for_cpu_us']:>10.1f}{b['idle_us']:>8.1f}{b['wall_us']:>8.1f}"
        )  # fmt: skip


async def main_async(args: argparse.Namespace) -> int:
    from service.logs import configure_logging
    from service.sandbox.testing import running_sandbox

    configure_logging("console", "WARNING")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.profile or not args.no_breakdown:
        from bench.worker_run import py_spy_binary

        py_spy_binary()
    results: Path = args.results_dir or RESULTS
    t_start = time.monotonic()
    info = machine()
    say(f"machine: {info}")
    workdir = Path(tempfile.mkdtemp(prefix="amili-bench-"))
    broker = LocalBroker(workdir / "kafka", heap="768m") if not args.bootstrap else None
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "machine": info,
        "args": vars(args),
        "targets": TARGETS,
    }
    ok = True
    try:
        if broker is not None:
            bootstrap = broker.start()
            say(f"broker: {bootstrap} (data {broker.data_dir})")
        else:
            bootstrap = args.bootstrap
            say(f"broker: {bootstrap} (given)")
        clients = {9000 + i: n for i, n in enumerate(sizes)}
        warmup = {WARMUP_CLIENT: args.warmup} if args.warmup else {}
        t0 = time.monotonic()
        sandbox_args = ["--total-count", SANDBOX_TOTAL_COUNT, "--name-mix", SANDBOX_NAME_MIX]
        served = {**warmup, **clients}
        with running_sandbox(served, seed=11, extra_args=sandbox_args) as sandbox:
            say(f"sandbox: {sandbox.base_url} with {served} ({time.monotonic() - t0:.1f}s to start)")
            ctx = Context(
                bootstrap,
                sandbox,
                workdir,
                args.concurrency,
                args.page_size,
                args.profile,
                args.profile_rate,
                not args.no_breakdown,
                neighbours={"sandbox": sandbox.process.pid, **({"broker": broker.pid} if broker else {})},
            )
            if warmup:
                report["warmup"] = await warm_up(ctx, WARMUP_CLIENT)
            report["sizes"] = []
            for client_no, n in clients.items():
                report["sizes"].append(await bench_size(ctx, n, client_no))
            largest = report["sizes"][-1]
            smallest = report["sizes"][0]
            if len(report["sizes"]) > 1:
                growth = largest["peak_rss_mb"] / smallest["peak_rss_mb"]
                ctx.figure(
                    f"RSS flat in N ({smallest['n']:,} -> {largest['n']:,})",
                    f"{smallest['peak_rss_mb']:.0f} MB -> {largest['peak_rss_mb']:.0f} MB (x{growth:.2f})",
                    f"<= x{TARGETS['rss_flat']}",
                    growth <= TARGETS["rss_flat"],
                )
                report["rss_growth"] = round(growth, 3)
            skip = set(args.skip.split(","))
            if "restore" not in skip:
                report["restore"] = await bench_restore(ctx, largest)
            if "publish" not in skip:
                report["publish"] = await bench_publish(ctx, largest, args.publish_records)
            if args.profile:
                report["profiles"] = profile_summaries(workdir)
        say("\n== figures ==")
        width = max(len(r[0]) for r in ctx.rows)
        for name, value, target, v in ctx.rows:
            say(f"{v}  {name:<{width}}  {value}  [target {target}]")
            ok = ok and v != "FAIL"
        report["figures"] = ctx.rows
        print_breakdowns(report["sizes"])
        report["seconds"] = round(time.monotonic() - t_start, 1)
        say(f"\nbench took {report['seconds']:.0f}s; {'all targets met' if ok else 'SOME TARGETS MISSED'}")
    finally:
        if broker is not None:
            broker.stop()
        results.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"{stamp}{'-quick' if args.quick else ''}.json"
        report["verdict"] = "PASS" if ok and report.get("figures") else "FAIL"
        (results / name).write_text(json.dumps(report, indent=1, default=str))
        say(f"results: {results / name}")
        if args.plot and report.get("sizes"):
            try:
                from bench.plots import draw

                draw([results / name])
            except Exception as exc:  # a plot must not hide the figures (matplotlib: uv sync --group bench)
                say(f"no plots: {exc!r}")
        if args.keep:
            say(f"kept {workdir}")
        else:
            if args.profile:
                for p in workdir.glob("profile-*.txt"):
                    shutil.copy(p, results / f"{stamp}-{p.name}")
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def profile_summaries(workdir: Path) -> dict[str, list[tuple[str, float, float]]]:
    from bench.worker_run import top_frames

    out = {}
    for p in sorted(workdir.glob("profile-*.txt")):
        frames = top_frames(p, 25)
        out[p.stem] = frames
        say(f"\n-- {p.stem}: busiest frames (self %, inclusive %) --")
        for f, s, i in frames:
            say(f"   {s:6.1%} {i:6.1%}  {f}")
    return out


def main() -> None:
    from bench.worker_run import PROFILE_RATE

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (10,000 and 50,000) for a quick check")
    p.add_argument("--sizes", default=None, help="comma-separated customer counts (default 100000,1000000)")
    p.add_argument("--concurrency", type=int, default=4, help="pages fetched at once, worker and floor alike")
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--publish-records", type=int, default=None, help="records of the publish comparison")
    p.add_argument("--profile", action="store_true", help="print the busiest frames of the worker's runs")
    p.add_argument(
        "--no-breakdown",
        action="store_true",
        help="no py-spy on the worker's runs (no µs per customer by part)",
    )
    p.add_argument(
        "--rss-series",
        action="store_true",
        help=f"add {RSS_SERIES_SIZE:,} customers to the sizes (RSS over time)",
    )
    p.add_argument("--results-dir", type=Path, help="where the result file goes (default bench/results)")
    p.add_argument("--bootstrap", help="use this running broker instead of starting one (development)")
    p.add_argument(
        "--profile-rate",
        type=int,
        default=PROFILE_RATE,
        metavar="HZ",
        help=f"py-spy samples per second of the measured runs (default {PROFILE_RATE}; its CPU is reported)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=WARMUP_CUSTOMERS,
        metavar="N",
        help=f"customers of the unmeasured first sync that warms the broker (default {WARMUP_CUSTOMERS:,}; 0: none)",
    )
    p.add_argument("--skip", default="", help="comma-separated: restore,publish")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, profiles)")
    p.add_argument("--plot", action="store_true", help="draw docs/perf/*.png from this run's results")
    p.add_argument("--plots", nargs="*", metavar="RESULTS.json", help="only redraw docs/perf/*.png")
    args = p.parse_args()
    if args.plots is not None:
        from bench.plots import draw

        draw([Path(f) for f in args.plots] or sorted(RESULTS.glob("*.json")))
        return
    if args.sizes is None:
        args.sizes = "10000,50000" if args.quick else "100000,1000000"
    if args.rss_series and str(RSS_SERIES_SIZE) not in args.sizes.split(","):
        args.sizes += f",{RSS_SERIES_SIZE}"
    if args.publish_records is None:
        args.publish_records = 40_000 if args.quick else 400_000
    raise SystemExit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
