"""`amili-sync sync --client N`: the same engine and exactly-once publishing, with a summary table."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from service.sandbox.testing import SandboxHandle
from testkit.kafka import TopicReader
from testkit.sandbox import sandbox_changes
from testkit.worker import ROOT
from tests.conftest import KafkaBroker
from tests.e2e.conftest import WorkerEnv


# A plain subprocess.run like other tests' (kept): the command and timeout are this test's own.
def _sync(env: dict[str, str], client: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "sync", "--client", str(client)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_sync_command_publishes_baseline_then_changes_and_prints_a_summary(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path, e2e_env: WorkerEnv
) -> None:
    env = e2e_env()
    first = _sync(env, 3200 + 1000)  # client 4200 is unknown to the sandbox: a clear failure
    assert first.returncode == 1
    assert "4200" in first.stderr
    out = _sync(env, 4100)
    assert out.returncode == 0, out.stderr
    assert "sync of client 4100: succeeded" in out.stderr
    assert "baseline events" in out.stderr
    assert "300" in out.stderr
    changes = await sandbox_changes(sandbox, clientNo=4100, seed=77, balance=0.1)
    out = _sync(env, 4100)
    assert out.returncode == 0, out.stderr
    assert "balance events" in out.stderr
    async with TopicReader(kafka_broker.bootstrap_servers, topic_prefix) as reader:
        await reader.drain()
    kinds = sorted(e["type"] for e in reader.data.events if e["type"] != "amili.customer.baseline.v1")
    assert kinds == ["amili.customer.balance_changed.v1"] * len(changes)
    assert sum(1 for e in reader.data.events if e["type"] == "amili.customer.baseline.v1") == 300
    assert sorted(r["status"] for r in reader.data.results) == ["failed", "succeeded", "succeeded"]


def test_sync_command_shows_a_progress_bar_on_a_terminal(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path, e2e_env: WorkerEnv
) -> None:
    env = e2e_env(AMILI_SYNC_API__PAGE_SIZE="50", AMILI_SYNC_LOG_LEVEL="WARNING")
    command = f"{shlex.quote(sys.executable)} -m service sync --client 3300"
    # `script` runs the command on a pseudo-terminal, as an operator's shell would
    out = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        env={**env, "TERM": "xterm", "COLUMNS": "120"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stdout
    assert "client 3300" in out.stdout
    assert "4/4" in out.stdout  # 200 customers in pages of 50: the bar counts pages done of total
    assert "200 customers" in out.stdout
    assert "sync of client 3300: succeeded" in out.stdout
