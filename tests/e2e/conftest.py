"""E2E fixtures: one sandbox process for the module, one worker process per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.sandbox.testing import SandboxHandle, running_sandbox
from testkit.worker import WorkerProcess, free_port, worker_env
from tests.conftest import KafkaBroker

# client number -> customers; each test uses its own clients so tests never see each other's data
CLIENTS = {2218: 25_000, 3000: 500, 3100: 400, 3200: 300, 3300: 200, 4000: 3_000, 4100: 300, 4300: 200}


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox(CLIENTS, seed=7) as handle:
        yield handle


# Makes a worker's environment (extra AMILI_SYNC_*/OTEL_* settings as keywords).
WorkerEnv = Callable[..., dict[str, str]]


@pytest.fixture
def e2e_env(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> WorkerEnv:
    """The environment of a worker on this test's broker, sandbox and topic prefix, its state under
    `tmp_path/state` and a free health port, plus the settings given."""

    def make(**extra: str) -> dict[str, str]:
        return worker_env(
            kafka_broker.bootstrap_servers, topic_prefix, sandbox, tmp_path / "state", free_port(), **extra
        )

    return make


@pytest.fixture
def worker(e2e_env: WorkerEnv, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(e2e_env(), tmp_path / "worker.log")
    proc.start()
    yield proc
    proc.stop()
