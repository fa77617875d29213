"""The fault suite (`scripts/faults`; CI runs `scripts/faults --quick`): the worker under kill -9, a
broker restart, a forced rebalance with a zombie, and API fault storms. Every scenario ends with a
read_committed consistency check: every true change exactly once, no wrong removal, exactly one
run result per request."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from service.sandbox.testing import SandboxHandle
from testkit.broker import LocalBroker
from testkit.kafka import TopicReader, read_snapshot, send_request
from testkit.oracle import Verdict, change_identity, check, event_identity
from testkit.sandbox import (
    clear_faults,
    sandbox_changes,
    sandbox_customer_numbers,
    sandbox_customers,
    set_faults,
)
from testkit.worker import WorkerProcess, free_port, worker_env

QUICK = os.environ.get("AMILI_FAULTS_QUICK") == "1"
TOTALS = Path(os.environ.get("AMILI_FAULTS_TOTALS", "/dev/null"))
Action = Callable[[int], Awaitable[None]]


@asynccontextmanager
async def workers(*procs: WorkerProcess) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for p in procs:
            try:
                p.stop()
            except Exception:
                p.kill9()


async def suite_verdict(
    scenario: str,
    sandbox: SandboxHandle,
    reader: TopicReader,
    client: int,
    request_ids: list[str],
    changes: list[dict[str, Any]],
    baseline_customers: list[str],
) -> Verdict:
    """testkit/oracle.py's check of what `reader` saw, the compacted snapshot and the API's data now."""
    return check(
        Verdict(scenario),
        events=reader.data.events,
        results=reader.data.results,
        request_ids=request_ids,
        changes=changes,
        baseline_customers=baseline_customers,
        snapshot=await read_snapshot(reader.bootstrap, reader.prefix),
        current_customers=await sandbox_customers(sandbox, client),
        client_no=client,
    )


def record_totals(totals: dict[str, Any]) -> None:
    """A scenario's totals: a line in the suite's totals file, and printed."""
    with TOTALS.open("a") as f:
        f.write(json.dumps(totals) + "\n")
    print(f"fault suite: {totals}")


async def run_rounds(
    scenario: str,
    bootstrap: str,
    prefix: str,
    sandbox: SandboxHandle,
    client: int,
    rounds: int,
    during_run: Action,
    *,
    result_timeout: float = 240.0,
    counters: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Baseline, then `rounds` × (sandbox changes → request → `during_run` → result); then check.
    Its call sites look alike (kept): each names its scenario, rounds and `during_run` in full."""
    expected: Counter[tuple[str, str, str]] = Counter()
    deleted: set[str] = set()
    request_ids: list[str] = []
    all_changes: list[dict[str, Any]] = []
    baseline_customers = await sandbox_customer_numbers(sandbox, client)
    async with TopicReader(bootstrap, prefix) as reader:
        rid = await send_request(bootstrap, prefix, client)
        request_ids.append(rid)
        baseline = (await reader.wait_results([rid], timeout=result_timeout))[rid]
        assert baseline["status"] == "succeeded", baseline
        for round_no in range(rounds):
            changes = await sandbox_changes(
                sandbox,
                clientNo=client,
                seed=1000 + round_no,
                balance=0.02,
                address=0.01,
                registrationStatus=0.01,
                created=2,
                deleted=2,
            )
            all_changes += changes
            expected.update(change_identity(c) for c in changes)
            deleted.update(c["customerNo"] for c in changes if c["kind"] == "deleted")
            rid = await send_request(bootstrap, prefix, client)
            request_ids.append(rid)
            await during_run(round_no)
            result = (await reader.wait_results([rid], timeout=result_timeout))[rid]
            assert result["status"] == "succeeded", result
        await reader.drain(2000)
        changes_seen = [e for e in reader.data.events if e["type"] != "amili.customer.baseline.v1"]
        got = Counter(event_identity(e) for e in changes_seen)
        lost, duplicated = expected - got, got - expected
        removed = {e["customerNo"] for e in changes_seen if e["type"] == "amili.customer.removed.v1"}
        per_request = Counter(r["requestId"] for r in reader.data.results)
        # the stricter check of testkit/oracle.py: also one baseline event per customer, no event
        # that no change explains, and the compacted snapshot equal to the API's data customer by customer
        verdict = await suite_verdict(
            scenario, sandbox, reader, client, request_ids, all_changes, baseline_customers
        )
        totals = {
            "scenario": scenario,
            "runs": rounds + 1,
            "events_checked": len(reader.data.events),
            "changes_expected": sum(expected.values()),
            "lost": sum(lost.values()),
            "duplicated": sum(duplicated.values()),
            "wrong_removals": len(removed - deleted),
            "results_missing": sum(1 for r in request_ids if per_request[r] == 0),
            "results_duplicated": sum(n - 1 for n in per_request.values() if n > 1),
            "unexpected": sum(verdict.unexpected.values()),
            "baseline_problems": len(verdict.baseline_problems),
            "snapshot_mismatches": len(verdict.snapshot_mismatches),
            **(counters or {}),
        }
        record_totals(totals)
        assert not lost, f"lost {lost}"
        assert not duplicated, f"duplicated {duplicated}"
        assert removed <= deleted, f"wrong removals {removed - deleted}"
        assert all(per_request[r] == 1 for r in request_ids), per_request
        ids = Counter(e["id"] for e in reader.data.events)
        assert [i for i, n in ids.items() if n > 1] == []
        assert verdict.ok(), verdict.problems()
        return totals


def _env(
    bootstrap: str, prefix: str, sandbox: SandboxHandle, tmp: Path, name: str, **extra: str
) -> dict[str, str]:
    return worker_env(
        bootstrap,
        prefix,
        sandbox,
        tmp / f"state-{name}",
        free_port(),
        AMILI_SYNC_API__PAGE_SIZE="100",
        AMILI_SYNC_API__RETRY_WAIT_MAX="2",
        **extra,
    )


async def test_kill_9_at_random_points(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    client, rng = 5000, random.Random(1)
    worker = WorkerProcess(
        _env(
            own_broker.bootstrap,
            topic_prefix,
            sandbox,
            tmp_path,
            "a",
            AMILI_SYNC_KAFKA__GROUP_INSTANCE_ID="faults-kill-0",
        ),
        tmp_path / "a.log",
    )
    worker.start()
    await set_faults(sandbox, [{"kind": "latency", "ms": 150, "routes": ["list"], "clients": [client]}])
    counters = {"kills": 0}

    async def kill(_: int) -> None:
        for _ in range(1 if QUICK else 2):  # in full mode the redelivered run is killed too
            await asyncio.sleep(rng.uniform(0.3, 1.3))
            worker.kill9()
            counters["kills"] += 1
            worker.start()

    async with workers(worker):
        try:
            await run_rounds(
                "kill -9",
                own_broker.bootstrap,
                topic_prefix,
                sandbox,
                client,
                4 if QUICK else 15,
                kill,
                counters=counters,
            )
        finally:
            await clear_faults(sandbox)


async def test_broker_restart_mid_run(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    client, rng = 5100, random.Random(2)
    worker = WorkerProcess(
        _env(own_broker.bootstrap, topic_prefix, sandbox, tmp_path, "a"), tmp_path / "a.log"
    )
    worker.start()
    await set_faults(sandbox, [{"kind": "latency", "ms": 150, "routes": ["list"], "clients": [client]}])
    counters = {"broker_restarts": 0}

    async def restart_broker(_: int) -> None:
        await asyncio.sleep(rng.uniform(0.3, 1.0))
        await asyncio.to_thread(own_broker.restart)
        counters["broker_restarts"] += 1

    async with workers(worker):
        try:
            await run_rounds(
                "broker restart",
                own_broker.bootstrap,
                topic_prefix,
                sandbox,
                client,
                1 if QUICK else 4,
                restart_broker,
                result_timeout=300,
                counters=counters,
            )
        finally:
            await clear_faults(sandbox)
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker survives a broker restart"
    assert counters["broker_restarts"] >= 1


SHORT_GROUP_TIMEOUTS = {
    "AMILI_SYNC_KAFKA__REBALANCE_TIMEOUT_MS": "6000",
    "AMILI_SYNC_KAFKA__SESSION_TIMEOUT_MS": "6000",
    "AMILI_SYNC_API__CONCURRENCY": "1",  # ~30 slow pages one at a time: runs longer than the timeouts
}


async def _two_workers_slow_client(
    own_broker: LocalBroker,
    sandbox: SandboxHandle,
    prefix: str,
    tmp_path: Path,
    client: int,
    page_latency_ms: int = 400,
) -> tuple[WorkerProcess, WorkerProcess]:
    """Worker A started and B ready to start, both with short group timeouts; the client's pages
    slowed down so that a run outlasts those timeouts."""
    a, b = (
        WorkerProcess(
            _env(own_broker.bootstrap, prefix, sandbox, tmp_path, name, **SHORT_GROUP_TIMEOUTS),
            tmp_path / f"{name}.log",
        )
        for name in ("a", "b")
    )
    a.start()
    await set_faults(
        sandbox, [{"kind": "latency", "ms": page_latency_ms, "routes": ["list"], "clients": [client]}]
    )
    return a, b


async def test_rebalance_mid_run_interrupts_the_run_instead_of_livelocking(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    """B joins while A runs a request longer than the rebalance timeout: A interrupts its run at
    once (its partitions are revoked), the group settles, and the partition's owner re-runs it."""
    client = 5200
    # ~30 pages of 1 s: the run must still be going when B (a new process, seconds to start on a
    # busy machine) has joined the group
    a, b = await _two_workers_slow_client(
        own_broker, sandbox, topic_prefix, tmp_path, client, page_latency_ms=1000
    )
    counters = {"workers": 2, "rebalances_mid_run": 0}

    async def join(round_no: int) -> None:
        if round_no == 0:
            await asyncio.sleep(3.0)
            b.start(wait_ready=False)
            counters["rebalances_mid_run"] += 1

    async with workers(a, b):
        try:
            await run_rounds(
                "rebalance mid-run",
                own_broker.bootstrap,
                topic_prefix,
                sandbox,
                client,
                1 if QUICK else 3,
                join,
                result_timeout=120,
                counters=counters,
            )
        finally:
            await clear_faults(sandbox)
    assert '"run interrupted' in a.tail_log(5_000_000)


async def test_zombie_worker_is_fenced(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    """A freezes mid-run (SIGSTOP) past its session timeout; B takes its partitions and fences A's
    producer; A wakes up (SIGCONT) and must publish nothing more."""
    client = 5400
    a, b = await _two_workers_slow_client(own_broker, sandbox, topic_prefix, tmp_path, client)
    counters = {"workers": 2, "zombies": 0}

    async def freeze(round_no: int) -> None:
        if round_no == 0:
            await asyncio.sleep(3.0)
            a.pause()
            b.start(wait_ready=False)
            await asyncio.sleep(15.0)  # past A's session timeout: the group moves on without A
            a.resume()
            counters["zombies"] += 1

    async with workers(a, b):
        try:
            await run_rounds(
                "zombie fenced",
                own_broker.bootstrap,
                topic_prefix,
                sandbox,
                client,
                1 if QUICK else 3,
                freeze,
                result_timeout=180,
                counters=counters,
            )
        finally:
            await clear_faults(sandbox)
        log_a, log_b = a.tail_log(5_000_000), b.tail_log(5_000_000)
    assert '"producer fenced' in log_a or '"run interrupted' in log_a, "the zombie did not notice"
    # fencing is final: the thawed zombie never starts a producer of its own, so the owner's
    # transactions are never fenced (its runs may be interrupted by rebalances, never aborted by A)
    assert '"producer fenced' not in log_b, "the zombie fenced the rightful owner"


async def test_api_fault_storms(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    client = 5300
    worker = WorkerProcess(
        _env(own_broker.bootstrap, topic_prefix, sandbox, tmp_path, "a", AMILI_SYNC_API__RETRY_ATTEMPTS="12"),
        tmp_path / "a.log",
    )
    worker.start()
    only = {"clients": [client], "routes": ["list", "one"]}
    storm = [
        {"kind": "429", "rate": 0.1, "retryAfter": 1, "retryAfterFormat": "seconds", **only},
        {"kind": "429", "rate": 0.05, "retryAfter": 1, "retryAfterFormat": "http-date", **only},
        {"kind": "503", "rate": 0.05, **only},
        {"kind": "500", "rate": 0.05, **only},
        {"kind": "drop", "rate": 0.05, **only},
        {"kind": "truncate", "rate": 0.05, **only},
        {"kind": "query_expiry", "count": 2, **only},
    ]

    async def nothing(_: int) -> None:
        return None

    async with workers(worker):
        await set_faults(sandbox, storm, seed=7)
        try:
            await run_rounds(
                "API fault storm",
                own_broker.bootstrap,
                topic_prefix,
                sandbox,
                client,
                2 if QUICK else 6,
                nothing,
                result_timeout=300,
            )
        finally:
            async with httpx.AsyncClient(timeout=10) as http:
                stats = (await http.get(f"{sandbox.control_url}/stats")).json()
            await clear_faults(sandbox)
    statuses = stats["requests"]
    assert statuses.get("429", 0) > 0
    assert statuses.get("503", 0) + statuses.get("500", 0) > 0
    print(f"fault suite: sandbox answered {statuses}")
