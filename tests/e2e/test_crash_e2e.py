"""Crash safety: kill -9 the worker at random moments of runs with changes pending, restart it,
and check with a read_committed consumer that every true change was published exactly once."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from pathlib import Path

import httpx

from service.sandbox.testing import SandboxHandle
from testkit.kafka import TopicReader, send_request
from testkit.oracle import change_identity, event_identity
from testkit.sandbox import sandbox_changes
from testkit.worker import WorkerProcess
from tests.conftest import KafkaBroker
from tests.e2e.conftest import WorkerEnv

KILLS = int(os.environ.get("AMILI_TEST_KILLS", "10"))


async def test_kill_9_at_random_moments_loses_and_repeats_nothing(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path, e2e_env: WorkerEnv
) -> None:
    client = 4000
    rng = random.Random(20261124)
    env = e2e_env(AMILI_SYNC_API__PAGE_SIZE="100", AMILI_SYNC_KAFKA__GROUP_INSTANCE_ID="crash-worker-0")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    bootstrap = kafka_broker.bootstrap_servers
    expected: Counter[tuple[str, str, str]] = Counter()
    request_ids: list[str] = []
    kills = mid_run = 0
    try:
        async with TopicReader(bootstrap, topic_prefix) as reader:
            rid = await send_request(bootstrap, topic_prefix, client)
            assert (await reader.wait_results([rid], timeout=120))[rid]["counts"] == {"baseline": 3000}
            # slow the list pages of this client a little, so that most kills land inside a run
            async with httpx.AsyncClient() as http:
                spec = {
                    "seed": 1,
                    "faults": [{"kind": "latency", "ms": 150, "routes": ["list"], "clients": [client]}],
                }
                (await http.post(f"{sandbox.control_url}/faults", json=spec)).raise_for_status()
            for round_no in range(KILLS):
                # The same kind of change mix as the fault suite's rounds (kept): each suite states its own mix.
                changes = await sandbox_changes(
                    sandbox,
                    clientNo=client,
                    seed=100 + round_no,
                    balance=0.02,
                    address=0.01,
                    registrationStatus=0.01,
                    created=3,
                    deleted=3,
                )
                expected.update(change_identity(c) for c in changes)
                rid = await send_request(bootstrap, topic_prefix, client)
                request_ids.append(rid)
                await asyncio.sleep(rng.uniform(0.3, 1.3))
                worker.kill9()
                kills += 1
                mine = [line for line in worker.tail_log(200_000).splitlines() if rid in line]
                if any('"run started"' in line for line in mine) and not any(
                    '"run finished"' in line for line in mine
                ):
                    mid_run += 1
                worker.start()
                await reader.wait_results([rid], timeout=120)
            await reader.drain()
            changes_seen = [e for e in reader.data.events if e["type"] != "amili.customer.baseline.v1"]
            got = Counter(event_identity(e) for e in changes_seen)
            assert got == expected, f"lost {expected - got}, duplicated {got - expected}"
            ids = Counter(e["id"] for e in reader.data.events)
            assert [i for i, n in ids.items() if n > 1] == []
            per_request = Counter(r["requestId"] for r in reader.data.results)
            assert all(per_request[r] == 1 for r in request_ids), per_request
            assert len(reader.data.results) == len(request_ids) + 1
            assert mid_run >= kills // 2, f"only {mid_run} of {kills} kills landed inside a run"
            print(
                f"crash test: {kills} kills ({mid_run} inside a run), {len(request_ids)} runs, "
                f"{len(changes_seen)} change events checked, lost=0 duplicated=0"
            )
    finally:
        worker.stop()
        async with httpx.AsyncClient() as http:
            await http.delete(f"{sandbox.control_url}/faults")
