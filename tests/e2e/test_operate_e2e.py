"""Operating the worker: /metrics moves during a run; /readyz is false while restoring, true after."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from service.sandbox.testing import SandboxHandle
from service.snapshot.store import encode_state
from testkit.kafka import TopicReader, send_request
from testkit.worker import WorkerProcess
from tests.conftest import KafkaBroker
from tests.e2e.conftest import WorkerEnv


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


async def test_metrics_move_during_a_run(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path, e2e_env: WorkerEnv
) -> None:
    env = e2e_env(AMILI_SYNC_API__PAGE_SIZE="10", AMILI_SYNC_SYNC__PROGRESS_INTERVAL="0.05")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    try:
        async with (
            httpx.AsyncClient(base_url=worker.health_url, timeout=5) as http,
            TopicReader(kafka_broker.bootstrap_servers, topic_prefix) as reader,
        ):
            before = (await http.get("/metrics")).text
            assert metric(before, "amili_sync_pages_fetched_total") == 0
            rid = await send_request(kafka_broker.bootstrap_servers, topic_prefix, 4100)
            during: list[float] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(r["requestId"] == rid for r in reader.data.results):
                during.append(metric((await http.get("/metrics")).text, "amili_sync_pages_fetched_total"))
                await reader.poll(100)
            after = (await http.get("/metrics")).text
        assert any(0 < v < 30 for v in during), f"pages counter never seen moving: {during}"
        assert metric(after, "amili_sync_pages_fetched_total", client_no="4100") == 30
        assert metric(after, "amili_sync_customers_read_total", client_no="4100") == 300
        assert metric(after, "amili_sync_change_events_total", type="baseline") == 300
        assert metric(after, "amili_sync_runs_total", status="succeeded") == 1
        assert metric(after, "amili_sync_api_calls_total", status="200") >= 30
        assert (
            metric(after, "amili_sync_last_success_timestamp_seconds", client_no="4100") > time.time() - 120
        )
        assert metric(after, "amili_sync_run_duration_seconds_count") == 1
        progress = [
            json.loads(line) for line in worker.tail_log(1_000_000).splitlines() if '"run progress"' in line
        ]
        assert progress, "a run logs its progress"
        for line in progress:
            assert line["requestId"] == rid
            assert line["clientNo"] == 4100
            assert line["pagesTotal"] == 30
            assert 0 < line["pages"] <= 30
            assert {"customersPerSecond", "etaSeconds"} <= set(line)
    finally:
        worker.stop()


async def test_readyz_is_false_while_a_large_changelog_is_restored(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path, e2e_env: WorkerEnv
) -> None:
    env = e2e_env(AMILI_SYNC_TOPICS__PARTITIONS="1")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()  # creates the topics (1 partition), then leaves
    assert worker.stop() == 0
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        transactional_id=f"{topic_prefix}-fill",
    )
    await producer.start()
    records = 300_000
    value = encode_state({"accountNo": 1, "balanceTotal": 10.5, "currency": "NOK", "name": "Fill"}, 1)
    try:
        for start in range(0, records, 50_000):
            async with producer.transaction():
                for i in range(start, start + 50_000):
                    await producer.send(
                        f"{topic_prefix}.snapshot", value, key=f"9000/{i}".encode(), partition=0
                    )
    finally:
        await producer.stop()
    shutil_state = Path(env["AMILI_SYNC_STATE_DIR"])
    for f in shutil_state.glob("*"):
        f.unlink()
    worker.start(wait_ready=False)
    states: list[tuple[int, bool]] = []
    async with httpx.AsyncClient(base_url=worker.health_url, timeout=5) as http:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                r = await http.get("/readyz")
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
                continue
            body = r.json()
            states.append((r.status_code, bool(body.get("restoring"))))
            if r.status_code == 200 and body.get("partitions"):
                break
            await asyncio.sleep(0.1)
        metrics = (await http.get("/metrics")).text
    try:
        assert (503, True) in states, f"never saw readiness false during the restore: {states[:20]}"
        assert states[-1][0] == 200
        assert metric(metrics, "amili_sync_restore_records_total") >= records
        assert metric(metrics, "amili_sync_restore_lag_records") == 0
    finally:
        worker.stop()
