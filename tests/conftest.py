"""Shared fixtures: a real Kafka broker for the session, per-test topic names and settings.

Broker backends (env `AMILI_TEST_KAFKA`):
- unset / `local` (default): use `KAFKA_BOOTSTRAP_SERVERS` if set (scripts/test sets it), otherwise
  start `scripts/kafka-local` in a temporary folder with a SCRAM user, and stop it at the end;
- `testcontainers`: Kafka in Docker through testcontainers (for people with a Docker engine).
A missing JDK or Maven is a failure with a message, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.broker import BrokerError, LocalBroker

ROOT = Path(__file__).resolve().parent.parent

SCRAM_USER, SCRAM_PASSWORD = "amili-test", "scram-test-password"


@dataclass
class KafkaBroker:
    bootstrap_servers: str
    sasl_bootstrap_servers: str | None
    scram_user: str | None
    scram_password: str | None
    backend: str


_kafka_tests: dict[str, int] = {"passed": 0, "failed": 0}
_kafka_nodeids: set[str] = set()
_broker_description: list[str] = []


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    backend = os.environ.get("AMILI_TEST_KAFKA", "local")
    if backend == "testcontainers":
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-untyped]

        with KafkaContainer("apache/kafka:4.1.1") as container:
            broker = KafkaBroker(container.get_bootstrap_server(), None, None, None, "testcontainers")
            _broker_description.append(f"testcontainers {broker.bootstrap_servers}")
            yield broker
        return
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        broker = KafkaBroker(
            os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            os.environ.get("KAFKA_SASL_BOOTSTRAP_SERVERS"),
            os.environ.get("KAFKA_SCRAM_USER", SCRAM_USER),
            os.environ.get("KAFKA_SCRAM_PASSWORD", SCRAM_PASSWORD),
            "external",
        )
        _broker_description.append(f"broker at {broker.bootstrap_servers} (from KAFKA_BOOTSTRAP_SERVERS)")
        yield broker
        return
    local = LocalBroker(tmp_path_factory.mktemp("kafka"), scram=f"{SCRAM_USER}:{SCRAM_PASSWORD}")
    try:
        local.start()
    except BrokerError as exc:
        pytest.fail(f"could not start the local Kafka broker:\n{exc}", pytrace=False)
    _broker_description.append(f"local broker process at {local.bootstrap} (started by the tests)")
    try:
        yield KafkaBroker(local.bootstrap, local.sasl_bootstrap, SCRAM_USER, SCRAM_PASSWORD, "local")
    finally:
        local.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic prefix per test, so tests never see each other's data."""
    return f"t{uuid.uuid4().hex[:10]}.amili.customers"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "kafka_broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)
        if item.get_closest_marker("kafka"):
            _kafka_nodeids.add(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.nodeid in _kafka_nodeids:
        _kafka_tests["passed" if report.passed else "failed"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    where = "; ".join(_broker_description) or "broker processes the tests started themselves"
    terminalreporter.write_line(
        f"real-broker tests: {_kafka_tests['passed']} passed, {_kafka_tests['failed']} failed against {where}"
    )
