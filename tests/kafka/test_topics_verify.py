"""`AMILI_SYNC_TOPICS__MANAGE=verify` on the real broker: the worker creates nothing, and a missing
topic, a partition mismatch or a non-compacted snapshot topic stops `amili-sync run` with one line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.config import TopicManagement, TopicSettings
from service.kafka.topics import ensure_topics
from service.sync.kinds import default_groups
from tests.conftest import ROOT, KafkaBroker

PARTITIONS = 2
GROUPS = default_groups()


async def create_topics(
    bootstrap: str,
    topics: TopicSettings,
    *,
    skip: str | None = None,
    snapshot_partitions: int = PARTITIONS,
    snapshot_policy: str = "compact",
) -> None:
    names = [name for name in topics.all_topics(GROUPS) if name != skip]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=snapshot_partitions if name == topics.snapshot_topic else PARTITIONS,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": snapshot_policy}
                    if name == topics.snapshot_topic
                    else {},
                )
                for name in names
            ]
        )
    finally:
        await admin.close()
    # the broker's metadata lags its controller a little: wait until the topics are listed
    deadline = time.monotonic() + 30
    while not set(names) <= await existing_topics(bootstrap, topics.prefix):
        assert time.monotonic() < deadline, "created topics never listed"
        await asyncio.sleep(0.2)


async def existing_topics(bootstrap: str, prefix: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t for t in await admin.list_topics() if t.startswith(prefix)}
    finally:
        await admin.close()


# A plain subprocess.run like other tests' (kept): the command and timeout are this test's own.
def run_worker_verify(bootstrap: str, prefix: str) -> tuple[int, list[dict[str, object]]]:
    """`amili-sync run` with manage=verify; (exit code, its JSON log lines)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMILI_SYNC_", "OTEL_"))}
    env.update(
        {
            "AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "AMILI_SYNC_TOPICS__PREFIX": prefix,
            "AMILI_SYNC_TOPICS__MANAGE": "verify",
            # required to start; never called: the worker stops at the topic check
            "AMILI_SYNC_API__BASE_URL": "http://127.0.0.1:9/arm/v1",
            "AMILI_SYNC_HEALTH_PORT": "0",
            "AMILI_SYNC_LOG_FORMAT": "json",
        }
    )
    out = subprocess.run(
        [sys.executable, "-m", "service", "run"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    return out.returncode, lines


def the_one_error(lines: list[dict[str, object]]) -> str:
    errors = [line for line in lines if line.get("level") in ("error", "critical")]
    assert len(errors) == 1, lines
    assert errors[0]["event"] == "cannot start"
    return str(errors[0]["error"])


@pytest.fixture
def topics(topic_prefix: str) -> TopicSettings:
    return TopicSettings(prefix=topic_prefix, partitions=PARTITIONS, manage=TopicManagement.VERIFY)


async def test_verify_accepts_a_correct_layout_and_creates_nothing(
    kafka_broker: KafkaBroker, topics: TopicSettings
) -> None:
    await create_topics(kafka_broker.bootstrap_servers, topics)
    counts = await ensure_topics(topics, {"bootstrap_servers": kafka_broker.bootstrap_servers}, groups=GROUPS)
    assert counts == {topics.requests_topic: PARTITIONS, topics.snapshot_topic: PARTITIONS}


async def test_a_missing_topic_stops_start_up(kafka_broker: KafkaBroker, topics: TopicSettings) -> None:
    await create_topics(kafka_broker.bootstrap_servers, topics, skip=topics.lifecycle_topic)
    code, lines = run_worker_verify(kafka_broker.bootstrap_servers, topics.prefix)
    assert code == 1
    error = the_one_error(lines)
    assert f"topic {topics.lifecycle_topic} does not exist" in error
    assert "AMILI_SYNC_TOPICS__MANAGE=verify" in error
    # verify creates nothing
    assert topics.lifecycle_topic not in await existing_topics(kafka_broker.bootstrap_servers, topics.prefix)


async def test_a_wrong_partition_count_stops_start_up(
    kafka_broker: KafkaBroker, topics: TopicSettings
) -> None:
    await create_topics(kafka_broker.bootstrap_servers, topics, snapshot_partitions=PARTITIONS + 1)
    code, lines = run_worker_verify(kafka_broker.bootstrap_servers, topics.prefix)
    assert code == 1
    error = the_one_error(lines)
    assert f"topic {topics.requests_topic} has {PARTITIONS} partitions" in error
    assert f"{topics.snapshot_topic} has {PARTITIONS + 1}" in error


async def test_a_snapshot_topic_that_is_not_compacted_stops_start_up(
    kafka_broker: KafkaBroker, topics: TopicSettings
) -> None:
    await create_topics(kafka_broker.bootstrap_servers, topics, snapshot_policy="delete")
    code, lines = run_worker_verify(kafka_broker.bootstrap_servers, topics.prefix)
    assert code == 1
    error = the_one_error(lines)
    assert f"topic {topics.snapshot_topic} has cleanup.policy=delete" in error
    assert "needs cleanup.policy=compact" in error
