"""Crash safety: kill -9 the worker at random moments of runs with changes pending, restart it,
and check with a read_committed consumer that every true change was published exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

from service.sandbox.testing import SandboxHandle
from service.sync.state import normalize
from tests.conftest import KafkaBroker
from tests.e2e.harness import TopicReader, WorkerProcess, free_port, sandbox_changes, send_request, worker_env
from tests.e2e.test_sync_e2e import KIND_TO_TYPE

KILLS = int(os.environ.get("AMILI_TEST_KILLS", "10"))


def _change_identity(change: dict[str, Any]) -> tuple[str, str, str]:
    """(event type, customerNo, new value) of a change the sandbox reported."""
    after = change["after"] or {}
    value: object = None
    if change["kind"] == "balance":
        value = normalize(after.get("balanceTotal"))
    elif change["kind"] == "address":
        value = normalize(after.get("postalAddress"))
    elif change["kind"] == "registration_status":
        value = [
            normalize(after.get("registrationStatusCode")),
            normalize(after.get("registrationStatusDate")),
        ]
    return KIND_TO_TYPE[change["kind"]], change["customerNo"], json.dumps(value, sort_keys=True)


def _event_identity(event: dict[str, Any]) -> tuple[str, str, str]:
    after = event["after"] or {}
    value: object = None
    if event["type"].endswith("balance_changed.v1"):
        value = after.get("balanceTotal")
    elif event["type"].endswith("address_changed.v1"):
        value = after.get("postalAddress")
    elif event["type"].endswith("registration_status_changed.v1"):
        value = [after.get("registrationStatusCode"), after.get("registrationStatusDate")]
    return event["type"], event["customerNo"], json.dumps(value, sort_keys=True)


async def test_kill_9_at_random_moments_loses_and_repeats_nothing(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    client = 4000
    rng = random.Random(20261124)
    env = worker_env(
        kafka_broker.bootstrap_servers,
        topic_prefix,
        sandbox,
        tmp_path / "state",
        free_port(),
        AMILI_SYNC_API__PAGE_SIZE="100",
        AMILI_SYNC_KAFKA__GROUP_INSTANCE_ID="crash-worker-0",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    bootstrap = kafka_broker.bootstrap_servers
    expected: Counter[tuple[str, str, str]] = Counter()
    request_ids: list[str] = []
    kills = 0
    try:
        async with TopicReader(bootstrap, topic_prefix) as reader:
            rid = await send_request(bootstrap, topic_prefix, client)
            assert (await reader.wait_results([rid], timeout=120))[rid]["counts"] == {"baseline": 3000}
            for round_no in range(KILLS):
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
                expected.update(_change_identity(c) for c in changes)
                rid = await send_request(bootstrap, topic_prefix, client)
                request_ids.append(rid)
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                worker.kill9()
                kills += 1
                worker.start()
                await reader.wait_results([rid], timeout=120)
            await reader.drain()
            changes_seen = [e for e in reader.data.events if e["type"] != "amili.customer.baseline.v1"]
            got = Counter(_event_identity(e) for e in changes_seen)
            assert got == expected, f"lost {expected - got}, duplicated {got - expected}"
            ids = Counter(e["id"] for e in reader.data.events)
            assert [i for i, n in ids.items() if n > 1] == []
            per_request = Counter(r["requestId"] for r in reader.data.results)
            assert all(per_request[r] == 1 for r in request_ids), per_request
            assert len(reader.data.results) == len(request_ids) + 1
            print(
                f"crash test: {kills} kills, {len(request_ids)} runs, {len(changes_seen)} change events checked, "
                f"lost=0 duplicated=0"
            )
    finally:
        worker.stop()
