"""Fault scenarios at the edges of exactly-once (`scripts/faults`): ids across remove / re-create /
remove, a failure after a run's last commit, a client that suddenly reads as empty, a restore that
fails on assignment (broker stopped), and a partition that returns to a worker after compaction.
Each ends with the suite's consistency check (tests/faults/check.py)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import murmur2

from service.sandbox.testing import SandboxHandle
from testkit.broker import LocalBroker
from testkit.kafka import TopicReader, send_request
from testkit.oracle import Verdict
from testkit.sandbox import sandbox_changes, sandbox_customer_numbers, sandbox_customers
from testkit.worker import WorkerProcess
from tests.faults.test_fault_suite import QUICK, _env, record_totals, suite_verdict, workers

REMOVED = "amili.customer.removed.v1"
CREATED = "amili.customer.created.v1"


async def exactly_once(
    scenario: str,
    sandbox: SandboxHandle,
    reader: TopicReader,
    client: int,
    request_ids: list[str],
    changes: list[dict[str, Any]],
    baseline_customers: list[str],
    **counters: int,
) -> Verdict:
    """The suite's check, its totals line, and the assertion that it passed."""
    # Same parameters as suite_verdict (kept): this adds the edge scenarios' totals and assertion.
    await reader.drain(2000)
    verdict = await suite_verdict(scenario, sandbox, reader, client, request_ids, changes, baseline_customers)
    totals = {
        "scenario": scenario,
        "runs": len(request_ids),
        "events_checked": verdict.events_checked,
        "changes_expected": verdict.changes_expected,
        "lost": verdict.n_lost,
        "duplicated": verdict.n_duplicated,
        "wrong_removals": sum(n for k, n in verdict.unexpected.items() if k[0] == REMOVED),
        "results_missing": len(verdict.results_missing),
        "results_duplicated": len(verdict.results_duplicated),
        "unexpected": sum(verdict.unexpected.values()),
        "baseline_problems": len(verdict.baseline_problems),
        "snapshot_mismatches": len(verdict.snapshot_mismatches),
        **counters,
    }
    record_totals(totals)
    assert verdict.ok(), verdict.problems()
    return verdict


async def next_result(reader: TopicReader, client: int, rids: list[str]) -> dict[str, Any]:
    """One more fetch request for `client` (its id appended to `rids`); waits for its run result."""
    rids.append(await send_request(reader.bootstrap, reader.prefix, client))
    return (await reader.wait_results(rids[-1:], timeout=120))[rids[-1]]


async def api(sandbox: SandboxHandle, method: str, path: str, body: Any = None) -> httpx.Response:
    """A call to the sandbox's own API (writes), with a token from its control endpoint."""
    async with httpx.AsyncClient(timeout=30) as http:
        token = (await http.post(f"{sandbox.control_url}/token")).json()["access_token"]
        r = await http.request(
            method, f"{sandbox.base_url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code < 300, r.text
    return r


async def sandbox_stats(sandbox: SandboxHandle) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        return dict((await http.get(f"{sandbox.control_url}/stats")).json())


def one_worker(
    bootstrap: str,
    prefix: str,
    sandbox: SandboxHandle,
    tmp: Path,
    name: str,
    *,
    inject: bool = False,
    **env: str,
) -> WorkerProcess:
    """A worker process; `inject`: run it through tests/faults/inject.py (the AMILI_FAULTS_* hooks).
    Its call sites look alike (kept): each spells out the settings its scenario turns."""
    worker = WorkerProcess(_env(bootstrap, prefix, sandbox, tmp, name, **env), tmp / f"{name}.log")
    if inject:
        worker.module = "tests.faults.inject"
    return worker


async def test_remove_recreate_remove_gives_distinct_event_ids(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    """The same customer created, removed, re-created with the same data and removed again: every
    event has its own `ce_id` (a deduplicating consumer keeps them all)."""
    client, bootstrap = 5500, own_broker.bootstrap
    worker = one_worker(bootstrap, topic_prefix, sandbox, tmp_path, "a")
    worker.start()
    body = {"customerNo": "55000001", "name": "Kari Nordmann", "balanceTotal": 0, "currency": "NOK"}
    path = f"/clients/{client}/customers"
    async with workers(worker), TopicReader(bootstrap, topic_prefix) as reader:
        baseline_customers = await sandbox_customer_numbers(sandbox, client)
        rids = [await send_request(bootstrap, topic_prefix, client)]
        await reader.wait_results(rids, timeout=120)
        changes: list[dict[str, Any]] = []
        for _ in range(2 if QUICK else 3):
            created = (await api(sandbox, "POST", path, body)).json()
            changes.append(
                {"customerNo": body["customerNo"], "kind": "created", "before": None, "after": created}
            )
            await next_result(reader, client, rids)
            await api(sandbox, "DELETE", f"{path}/{body['customerNo']}")
            changes.append(
                {"customerNo": body["customerNo"], "kind": "deleted", "before": created, "after": None}
            )
            await next_result(reader, client, rids)
        await exactly_once(
            "remove/re-create/remove", sandbox, reader, client, rids, changes, baseline_customers
        )
        lifecycle = [e for e in reader.data.events if e["customerNo"] == body["customerNo"]]
    assert [e["type"] for e in lifecycle] == [CREATED, REMOVED] * (len(changes) // 2)
    assert len({e["id"] for e in lifecycle}) == len(lifecycle), "an event id was reused"


async def test_a_failure_after_the_last_commit_never_answers_a_request_twice(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    """Each of the first runs raises right after its last transaction committed: the request is
    retried, found committed, and not run again (exactly one result per requestId)."""
    client, bootstrap = 5600, own_broker.bootstrap
    failures = 2 if QUICK else 4
    worker = one_worker(
        bootstrap,
        topic_prefix,
        sandbox,
        tmp_path,
        "a",
        inject=True,
        AMILI_FAULTS_FAIL_AFTER_COMMIT=str(failures),
        AMILI_SYNC_SYNC__RETRY_BACKOFF_INITIAL="0.2",
        # the first failure is already the last attempt: still no `failed` result on top
        AMILI_SYNC_SYNC__RETRY_ATTEMPTS="1",
    )
    worker.start()
    async with workers(worker), TopicReader(bootstrap, topic_prefix) as reader:
        baseline_customers = await sandbox_customer_numbers(sandbox, client)
        rids = [await send_request(bootstrap, topic_prefix, client)]
        await reader.wait_results(rids, timeout=120)
        changes: list[dict[str, Any]] = []
        for round_no in range(failures + 1):
            changes += await sandbox_changes(
                sandbox, clientNo=client, seed=2000 + round_no, balance=0.05, created=1, deleted=1
            )
            await next_result(reader, client, rids)
        await asyncio.sleep(3)  # time for any second answer to show up
        await exactly_once(
            "failure after the last commit",
            sandbox,
            reader,
            client,
            rids,
            changes,
            baseline_customers,
            injected_failures=failures,
        )
        log = Counter(str(line.get("event")) for line in log_lines(worker))
    assert log["request failed"] == failures  # each injected failure, once
    assert log["request already answered (its offset is committed): not run again"] == failures
    assert Counter(r["requestId"] for r in reader.data.results) == Counter(rids)


async def test_a_client_that_suddenly_reads_as_empty_is_held_without_a_single_get(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    """Every customer disappears from the API at once: the run holds the removals on the candidate
    count, before any GET-one (the sandbox counts 0 of them), and publishes no removal."""
    client, bootstrap = 5700, own_broker.bootstrap
    worker = one_worker(bootstrap, topic_prefix, sandbox, tmp_path, "a")
    worker.start()
    async with workers(worker), TopicReader(bootstrap, topic_prefix) as reader:
        everyone = await sandbox_customers(sandbox, client)
        rids = [await send_request(bootstrap, topic_prefix, client)]
        await reader.wait_results(rids, timeout=120)
        path = f"/clients/{client}/customers"
        for c in everyone:  # only a customer without a balance can be deleted
            await api(sandbox, "PUT", path, {"customerNo": c["customerNo"], "balanceTotal": 0})
            await api(sandbox, "DELETE", f"{path}/{c['customerNo']}")
        gets_before = sum((await sandbox_stats(sandbox))["byRoute"].get("one", {}).values())
        held = await next_result(reader, client, rids)
        gets_after = sum((await sandbox_stats(sandbox))["byRoute"].get("one", {}).values())
        await reader.drain(2000)
        totals = {
            "scenario": "suddenly empty",
            "runs": len(rids),
            "events_checked": len(reader.data.events),
            "gets_sent": gets_after - gets_before,
        }
        record_totals(totals)
    assert held["status"] == "removals_held" and held["removalsHeld"] == len(everyone), held
    assert gets_after == gets_before, "GET-one requests were sent for a held run"
    # exactly-once: one baseline per customer, nothing else (the hold publishes no removal), one
    # result per request, no id twice
    types = Counter(e["type"] for e in reader.data.events)
    assert types == Counter({"amili.customer.baseline.v1": len(everyone)}), types
    assert Counter(r["requestId"] for r in reader.data.results) == Counter(rids)
    assert len({e["id"] for e in reader.data.events}) == len(reader.data.events)


async def test_a_request_failing_every_time_ends_failed_while_other_partitions_are_served(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    """Every run of client 6000 fails (not the API's answer): it is retried with backoff, then
    answered `failed` with a DLQ record, and its partition moves on; meanwhile a request of client
    6100 (another partition), sent after it, is answered during the backoff."""
    failing, other, bootstrap = 6000, 6100, own_broker.bootstrap
    worker = one_worker(
        bootstrap,
        topic_prefix,
        sandbox,
        tmp_path,
        "a",
        inject=True,
        AMILI_FAULTS_FAIL_CLIENT=str(failing),
        AMILI_SYNC_SYNC__RETRY_ATTEMPTS="3",
        AMILI_SYNC_SYNC__RETRY_BACKOFF_INITIAL="3",
        AMILI_SYNC_SYNC__RETRY_BACKOFF_MAX="6",
    )
    worker.start()
    async with workers(worker), TopicReader(bootstrap, topic_prefix) as reader:
        baseline_customers = await sandbox_customer_numbers(sandbox, other)
        bad = await send_request(bootstrap, topic_prefix, failing)
        good = await send_request(bootstrap, topic_prefix, other)
        results = await reader.wait_results([bad, good], timeout=180)
        after = await send_request(bootstrap, topic_prefix, failing)  # the partition moved on
        await reader.wait_results([after], timeout=180)
        order = [r["requestId"] for r in reader.data.results]
        dlq = [dict(r.headers) for r in reader.data.dlq]
        await exactly_once(
            "request failing every time", sandbox, reader, other, [good], [], baseline_customers
        )
        log = Counter(str(line.get("event")) for line in log_lines(worker))
    assert results[bad]["status"] == "failed" and "injected failure" in results[bad]["error"], results[bad]
    assert results[good]["status"] == "succeeded"
    assert order.index(good) < order.index(bad), "the other partition waited for the backoff"
    assert [h["dlq-error-code"] for h in dlq] == [b"retries_exhausted"] * 2
    assert all(b"injected failure" in h["dlq-error"] for h in dlq)
    assert (
        log["request failed"] == 6 and log["request failed every attempt: failed result and DLQ record"] == 2
    )


def readyz_body(worker: WorkerProcess) -> dict[str, Any]:
    """/readyz's body whatever its status (503 while a partition is not ready), {} if unreachable."""
    try:
        return dict(httpx.get(f"{worker.health_url}/readyz", timeout=2).json())
    except (httpx.HTTPError, ValueError):
        return {}


def log_lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    lines = []
    for line in worker.tail_log(5_000_000).splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def _port_open(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


async def test_a_restore_failing_on_assignment_keeps_the_partition_paused_until_restored(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    """A worker with an empty cache takes over a partition whose changelog holds a client's
    snapshot; the broker is down when its restore starts. The partition stays paused (no run, /readyz
    says why) and the restore is retried until the broker is back; then the waiting request runs on
    the restored cache: no customer published again."""
    client, bootstrap = 5800, own_broker.bootstrap
    first = one_worker(bootstrap, topic_prefix, sandbox, tmp_path, "a")
    first.start()
    async with workers(first), TopicReader(bootstrap, topic_prefix) as reader:
        baseline_customers = await sandbox_customer_numbers(sandbox, client)
        rids = [await send_request(bootstrap, topic_prefix, client)]
        await reader.wait_results(rids, timeout=120)
    gate = tmp_path / "restore-gate"
    second = one_worker(
        bootstrap,
        topic_prefix,
        sandbox,
        tmp_path,
        "b",  # its own, empty state folder: everything must come from the changelog
        AMILI_FAULTS_RESTORE_GATE=str(gate),
        AMILI_SYNC_SYNC__RETRY_BACKOFF_MAX="4",
    )
    second.module = "tests.faults.inject"
    second.start(wait_ready=False)
    async with workers(second), TopicReader(bootstrap, topic_prefix) as reader:
        changes = await sandbox_changes(
            sandbox, clientNo=client, seed=3000, balance=0.02, created=2, deleted=2
        )
        rids.append(await send_request(bootstrap, topic_prefix, client))
        # /readyz says why the partitions are not served: their restore waits at the gate
        waiting = readyz_body(second)
        while not any("restoring" in why for why in waiting.get("waiting", {}).values()):
            await asyncio.sleep(0.1)
            waiting = readyz_body(second)
        restart = asyncio.create_task(asyncio.to_thread(own_broker.restart))
        while _port_open(bootstrap):
            await asyncio.sleep(0.05)
        gate.touch()  # the restore starts now, with the broker down
        await restart
        await reader.wait_results(rids[-1:], timeout=240)
        await exactly_once(
            "restore fails on assignment",
            sandbox,
            reader,
            client,
            rids,
            changes,
            baseline_customers,
            broker_restarts=1,
        )
        log = log_lines(second)
    assert waiting.get("ready") is False and waiting.get("waiting"), waiting
    partition = (murmur2(str(client).encode()) & 0x7FFFFFFF) % 3  # the client's request partition
    retried = [
        i
        for i, line in enumerate(log)
        if line.get("event") == "partition not ready: will retry" and line.get("partition") == partition
    ]
    started = [
        i
        for i, line in enumerate(log)
        if line.get("event") == "run started" and line.get("clientNo") == client
    ]
    assert retried, "the restore never failed: the broker was not down when it started"
    assert started and max(retried) < min(started), "a run started before the partition was restored"


async def _set_topic_configs(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()


async def test_a_partition_returning_after_compaction_removes_nothing_twice(
    own_broker: LocalBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    """Worker A owns the client, stops; B owns it while customers are removed, and the changelog is
    compacted with a tiny `delete.retention.ms`; A comes back with its old cache. A's cache is wiped
    and restored (its checkpoint is older than the retention), and no customer is removed twice."""
    client, bootstrap = 5900, own_broker.bootstrap
    a = one_worker(bootstrap, topic_prefix, sandbox, tmp_path, "a")
    a.start()
    await _set_topic_configs(
        bootstrap,
        f"{topic_prefix}.snapshot",
        {
            "delete.retention.ms": "1000",
            "segment.ms": "1000",
            "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0",
        },
    )
    async with TopicReader(bootstrap, topic_prefix) as reader:
        baseline_customers = await sandbox_customer_numbers(sandbox, client)
        rids = [await send_request(bootstrap, topic_prefix, client)]
        async with workers(a):
            await reader.wait_results(rids, timeout=120)
        b = one_worker(bootstrap, topic_prefix, sandbox, tmp_path, "b")
        b.start()
        changes: list[dict[str, Any]] = []
        async with workers(b):
            for round_no in range(2):
                changes += await sandbox_changes(
                    sandbox, clientNo=client, seed=4000 + round_no, balance=0.02, created=1, deleted=3
                )
                await next_result(reader, client, rids)
            await asyncio.sleep(8)  # segments roll and the cleaner runs (log.cleaner.backoff.ms=1000)
        a.start()
        async with workers(a):
            changes += await sandbox_changes(sandbox, clientNo=client, seed=4100, balance=0.02, deleted=1)
            await next_result(reader, client, rids)
            await exactly_once(
                "partition returns after compaction",
                sandbox,
                reader,
                client,
                rids,
                changes,
                baseline_customers,
            )
            log_a = a.tail_log(5_000_000)
    assert '"snapshot cache wiped, restoring from the beginning"' in log_a
    removed = Counter(e["customerNo"] for e in reader.data.events if e["type"] == REMOVED)
    assert all(n == 1 for n in removed.values()), removed
