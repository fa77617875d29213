"""Fault-suite fixtures: its own broker (so it can be restarted mid-run) and its own sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.sandbox.testing import SandboxHandle, running_sandbox
from testkit.broker import BrokerError, LocalBroker

CLIENTS = {
    5000: 3_000,
    5100: 3_000,
    5200: 3_000,
    5300: 3_000,
    5400: 3_000,
    5500: 200,  # remove / re-create / remove
    5600: 300,  # failure after the final commit
    5700: 40,  # suddenly reads as empty
    5800: 3_000,  # restore failing on assignment
    5900: 1_000,  # a partition returns after compaction
    6000: 100,  # fails every time (partition 0 of 3)
    6100: 100,  # served while 6000 backs off (partition 1 of 3)
}


@pytest.fixture(scope="session")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of the fault suite alone: its scenarios restart it, which the shared one must not see."""
    broker = LocalBroker(tmp_path_factory.mktemp("fault-broker"))
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"could not start the fault suite's broker:\n{exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox(CLIENTS, seed=11) as handle:
        yield handle
