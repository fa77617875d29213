"""The bad-input suite (`scripts/bad-input`; CI runs `scripts/bad-input --quick`).

A real worker process (`amili-sync run`) against a real broker and the real sandbox:

1. a baseline run for every client (the only events the suite may ever see);
2. malformed requests of every kind in `cases.KINDS`, in bursts; behind each burst, on every
   partition, a valid request (a probe) that must be answered within `PROBE_BOUND` seconds;
3. poison API pages of every sandbox poison variant (three clients at a time, one per partition),
   each run answered `failed` naming client and page, then a clean request for the same client that
   must succeed.

Figures (asserted, and written to `AMILI_BADINPUT_RESULTS` for the script's table): every bad
request accounted for (a DLQ record with its source partition/offset and the expected code, or a
`failed` result), 0 stalled partitions, 0 events after the baseline (no event for poison data), the
worker never restarted (one process, same pid, no "will be retried" line in its log).

Not collected by a plain `pytest tests/` run (the file name does not start with `test_`); the
script passes it explicitly.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from service.sandbox.faults import POISON_VARIANTS
from service.sandbox.testing import SandboxHandle, running_sandbox
from testkit.kafka import TopicReader, request_payload
from testkit.sandbox import clear_faults, set_faults
from testkit.worker import WorkerProcess, free_port, worker_env
from tests.badinput import cases
from tests.conftest import KafkaBroker

QUICK = os.environ.get("AMILI_BADINPUT_QUICK") == "1"
RESULTS = Path(os.environ.get("AMILI_BADINPUT_RESULTS", "/dev/null"))
PARTITIONS = 3
BAD_REQUESTS = 340 if QUICK else 1_360
BURST = 68  # two of every kind per burst
POISON_ROUNDS = 10 if QUICK else 40  # three poison runs per round (one per partition), ~2 pages each
PROBE_BOUND = 60.0  # seconds a valid request behind bad ones may take to be answered
RUN_BOUND = 120.0  # seconds a poison run (with its retries) may take to be answered
PROBE_CUSTOMERS, POISON_CUSTOMERS = 40, 300


def clients_per_partition(start: int) -> list[int]:
    """One client number per partition of the request topic (the producer's key hashing)."""
    partitioner = DefaultPartitioner()
    found: dict[int, int] = {}
    client = start
    while len(found) < PARTITIONS:
        p = partitioner(str(client).encode(), list(range(PARTITIONS)), list(range(PARTITIONS)))
        found.setdefault(p, client)
        client += 1
    return [found[p] for p in range(PARTITIONS)]


async def send_all(
    producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> list[tuple[int, int]]:
    """Send in order; the (partition, offset) of each record."""
    futures = [await producer.send(topic, value, key=key) for key, value in records]
    return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]


async def poison_pages_served(sandbox: SandboxHandle) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        rules = (await http.get(f"{sandbox.control_url}/faults")).json()["faults"]
    # a duplicate_across_pages rule passes the first page it sees untouched (it remembers it)
    return sum(
        r["fired"] - (1 if r.get("variant") == "duplicate_across_pages" and r["fired"] else 0) for r in rules
    )


@pytest.mark.timeout(3600)
async def test_bad_input_suite(kafka_broker: KafkaBroker, topic_prefix: str, tmp_path: Path) -> None:
    probes = clients_per_partition(7000)
    poisoned = clients_per_partition(8000)
    customers = {**dict.fromkeys(probes, PROBE_CUSTOMERS), **dict.fromkeys(poisoned, POISON_CUSTOMERS)}
    bootstrap, topic = kafka_broker.bootstrap_servers, f"{topic_prefix}.fetch-requests"
    with running_sandbox(customers, seed=3) as sandbox:
        env = worker_env(
            bootstrap,
            topic_prefix,
            sandbox,
            tmp_path / "state",
            free_port(),
            AMILI_SYNC_API__PAGE_SIZE="100",
            AMILI_SYNC_API__RETRY_ATTEMPTS="2",  # a body that is not JSON is retried once, then fails
            AMILI_SYNC_API__RETRY_WAIT_MAX="0.2",
            AMILI_SYNC_LOG_LEVEL="WARNING",
        )
        worker = WorkerProcess(env, tmp_path / "worker.log")
        worker.start()
        assert worker.proc is not None
        pid = worker.proc.pid
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            async with TopicReader(bootstrap, topic_prefix) as reader:
                figures = await _run(reader, producer, topic, sandbox, probes, poisoned)
        finally:
            await producer.stop()
            still_running = worker.proc.poll() is None
            worker.stop()
        log = worker.log_path.read_text(errors="replace")
        figures.update(
            {
                "worker_starts": worker.starts,
                "worker_pid_unchanged": still_running and worker.proc.pid == pid,
                "worker_retry_lines": log.count("will be retried"),
            }
        )
    with RESULTS.open("a") as f:
        f.write(json.dumps(figures) + "\n")
    print(f"bad-input suite: {figures}")
    assert figures["bad_requests_unaccounted"] == 0, figures
    assert figures["dlq_code_mismatches"] == 0, figures
    assert figures["stalled_partitions"] == 0, figures
    assert figures["events_after_baseline"] == 0, figures
    assert figures["poison_runs_not_failed"] == 0, figures
    assert figures["poison_errors_unnamed"] == 0, figures
    assert figures["next_requests_not_served"] == 0, figures
    assert figures["worker_starts"] == 1 and figures["worker_pid_unchanged"], figures
    assert figures["worker_retry_lines"] == 0, figures
    assert figures["request_kinds"] >= 20 and figures["poison_kinds"] >= 10, figures
    assert figures["bad_requests"] >= (300 if QUICK else 1_000), figures
    assert figures["poison_pages"] >= (30 if QUICK else 200), figures


async def _request(producer: AIOKafkaProducer, topic: str, client: int) -> str:
    rid, payload = request_payload(client)
    await send_all(producer, topic, [(str(client).encode(), payload)])
    return rid


async def _run(
    reader: TopicReader,
    producer: AIOKafkaProducer,
    topic: str,
    sandbox: SandboxHandle,
    probes: list[int],
    poisoned: list[int],
) -> dict[str, Any]:
    # 1. baselines: the only events of the whole suite
    rids = [await _request(producer, topic, c) for c in probes + poisoned]
    baseline = await reader.wait_results(rids, timeout=RUN_BOUND)
    assert all(r["status"] == "succeeded" for r in baseline.values()), baseline
    await reader.drain()
    events_at_baseline = len(reader.data.events)

    # 2. malformed requests in bursts, a probe behind each burst on every partition
    bad = cases.many(BAD_REQUESTS, probes)
    sent: dict[tuple[int, int], cases.BadRequest] = {}
    probe_latency: list[float] = []
    stalled = 0
    for start in range(0, len(bad), BURST):
        burst = bad[start : start + BURST]
        positions = await send_all(producer, topic, [(b.key, b.value) for b in burst])
        sent.update(zip(positions, burst, strict=True))
        sent_at = time.monotonic()
        probe_ids = [await _request(producer, topic, c) for c in probes]
        waiting = set(probe_ids)
        while waiting and time.monotonic() - sent_at < PROBE_BOUND:
            await reader.poll(200)
            waiting -= {r["requestId"] for r in reader.data.results}
        stalled += len(waiting)
        probe_latency.append(time.monotonic() - sent_at)
    await reader.drain()

    dlq = {
        (int(h["dlq-source-partition"]), int(h["dlq-source-offset"])): h["dlq-error-code"]
        for h in ({k: v.decode() for k, v in r.headers} for r in reader.data.dlq)
    }
    unaccounted = [b.kind for pos, b in sent.items() if pos not in dlq]
    mismatched = [(b.kind, b.code, dlq[pos]) for pos, b in sent.items() if pos in dlq and dlq[pos] != b.code]

    # 3. poison pages, three clients (partitions) at a time, each followed by a clean request
    variants = list(POISON_VARIANTS)
    not_failed: list[str] = []
    unnamed: list[str] = []
    not_served: list[str] = []
    pages = 0
    kinds: Counter[str] = Counter()
    for round_no in range(POISON_ROUNDS):
        chosen = [variants[(round_no * len(poisoned) + i) % len(variants)] for i in range(len(poisoned))]
        rules = [
            {
                "kind": "poison",
                "variant": v,
                "clients": [c],
                "skip": 0 if v == "duplicate_across_pages" else 1,  # page 1 is fine, later pages not
            }
            for c, v in zip(poisoned, chosen, strict=True)
        ]
        await set_faults(sandbox, rules, seed=round_no)
        rids = {await _request(producer, topic, c): (c, v) for c, v in zip(poisoned, chosen, strict=True)}
        results = await reader.wait_results(rids, timeout=RUN_BOUND)
        pages += await poison_pages_served(sandbox)
        await clear_faults(sandbox)
        for rid, (client, variant) in rids.items():
            kinds[variant] += 1
            result = results[rid]
            if result["status"] != "failed":
                not_failed.append(f"{variant}: {result['status']}")
            elif f"client {client}" not in (result["error"] or "") or "page" not in (result["error"] or ""):
                unnamed.append(f"{variant}: {result['error']}")
        follow = [await _request(producer, topic, c) for c in poisoned]
        after = await reader.wait_results(follow, timeout=RUN_BOUND)
        not_served += [r["status"] for r in after.values() if r["status"] != "succeeded"]
    await reader.drain(2000)

    return {
        "bad_requests": len(sent),
        "request_kinds": len({b.kind for b in sent.values()}),
        "dlq_records": len(dlq),
        "bad_requests_unaccounted": len(unaccounted),
        "dlq_code_mismatches": len(mismatched),
        "dlq_codes": dict(Counter(dlq[p] for p in sent if p in dlq)),
        "probes": len(probe_latency) * len(probes),
        "stalled_partitions": stalled,
        "probe_answer_max_seconds": round(max(probe_latency, default=0.0), 2),
        "probe_bound_seconds": PROBE_BOUND,
        "poison_runs": sum(kinds.values()),
        "poison_kinds": len(kinds),
        "poison_pages": pages,
        "poison_runs_not_failed": len(not_failed),
        "poison_errors_unnamed": len(unnamed),
        "next_requests_not_served": len(not_served),
        "events_after_baseline": len(reader.data.events) - events_at_baseline,
        "details": {
            "unaccounted": unaccounted[:5],
            "mismatched": mismatched[:5],
            "not_failed": not_failed[:5],
            "unnamed": unnamed[:5],
        },
    }
