"""Static group membership (`AMILI_SYNC_KAFKA__GROUP_INSTANCE_ID`) with two real worker processes:
one is killed with SIGKILL and restarted with the same instance id; it gets its partitions back, and
the other worker's partitions are never revoked nor reassigned (no group-wide rebalance). Either
worker: the one that joined first (the group's leader) or the one that joined second."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from service.sandbox.testing import SandboxHandle
from testkit.worker import WorkerProcess, free_port, worker_env
from tests.conftest import KafkaBroker

PARTITIONS = 3
REBALANCE_LINES = ("partitions assigned", "partitions revoked")


def log_events(worker: WorkerProcess, start: int = 0) -> list[dict[str, Any]]:
    """The worker's JSON log lines from byte `start` on."""
    with worker.log_path.open("rb") as f:
        f.seek(start)
        lines = f.read().decode(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def owned(worker: WorkerProcess) -> list[int]:
    ready = worker.readyz()
    assert ready is not None, worker.tail_log()
    return list(ready["partitions"])


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.mark.parametrize("killed", ["joined-first", "joined-second"])
def test_a_killed_static_member_gets_its_partitions_back_without_a_rebalance(
    killed: str, kafka_broker: KafkaBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> None:
    def worker(name: str) -> WorkerProcess:
        env = worker_env(
            kafka_broker.bootstrap_servers,
            topic_prefix,
            sandbox,
            tmp_path / f"state-{name}",
            free_port(),
            AMILI_SYNC_KAFKA__GROUP_INSTANCE_ID=f"static-{name}",
            # the restarted process must be back before the broker gives up on the member
            AMILI_SYNC_KAFKA__SESSION_TIMEOUT_MS="45000",
        )
        return WorkerProcess(env, tmp_path / f"{name}.log")

    first, second = worker("a"), worker("b")
    try:
        first.start()
        second.start(wait_ready=False)
        # the group settles: both own partitions, together all of them, each exactly once
        wait_for(
            lambda: (
                (first.readyz() or {}).get("partitions")
                and (second.readyz() or {}).get("partitions")
                and sorted(owned(first) + owned(second)) == list(range(PARTITIONS))
            ),
            90,
            "both workers own partitions",
        )
        time.sleep(2)  # no rebalance still under way
        victim, other = (first, second) if killed == "joined-first" else (second, first)
        before_victim, before_other = owned(victim), owned(other)
        assert sorted(before_victim + before_other) == list(range(PARTITIONS))
        mark_victim = victim.log_path.stat().st_size
        mark_other = other.log_path.stat().st_size

        victim.kill9()
        victim.start(wait_ready=False)
        wait_for(
            lambda: (victim.readyz() or {}).get("partitions"), 40, "the restarted worker owns partitions"
        )
        time.sleep(3)  # time for a rebalance, if there were one, to reach the other worker

        # the restarted worker has exactly its partitions back
        assert owned(victim) == before_victim
        assigned = [e for e in log_events(victim, mark_victim) if e["event"] == "partitions assigned"]
        assert [e["partitions"] for e in assigned] == [before_victim], assigned
        # the other worker saw nothing: no revocation, no new assignment, the same partitions
        seen = [e for e in log_events(other, mark_other) if e["event"] in REBALANCE_LINES]
        assert seen == [], seen
        assert owned(other) == before_other
    finally:
        for w in (second, first):
            try:
                w.stop()
            except Exception:
                w.kill9()
