"""Topic set-up at start: create what is missing, refuse to start when co-partitioning is broken."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from service.config import TopicSettings
from service.logs import get_logger

log = get_logger(__name__)


class TopicLayoutError(Exception):
    """The request and snapshot topics differ in partition count (clients' state would be lost)."""


async def ensure_topics(
    topics: TopicSettings, connection: dict[str, Any], *, groups: Iterable[str]
) -> dict[str, int]:
    """Create missing topics (snapshot compacted), the event topics of every tracked group
    (`settings.sync.groups`, custom ones too) included; return partition counts; check
    co-partitioning."""
    admin = AIOKafkaAdminClient(**connection)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics.all_topics(groups) if t not in existing]
        if missing:
            new = [
                NewTopic(
                    name,
                    num_partitions=topics.partitions,
                    replication_factor=topics.replication_factor,
                    topic_configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
                    if name == topics.snapshot_topic
                    else {},
                )
                for name in missing
            ]
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was quicker
                await admin.create_topics(new)
            log.info("topics created", topics=missing, partitions=topics.partitions)
        counts = await partition_counts(admin, [topics.requests_topic, topics.snapshot_topic])
    finally:
        await admin.close()
    if counts[topics.requests_topic] != counts[topics.snapshot_topic]:
        raise TopicLayoutError(
            f"topic {topics.requests_topic} has {counts[topics.requests_topic]} partitions but "
            f"{topics.snapshot_topic} has {counts[topics.snapshot_topic]}: they must be equal, because a "
            "client's snapshot lives in the partition its requests hash to"
        )
    return counts


async def partition_counts(
    admin: AIOKafkaAdminClient, names: list[str], wait: float = 15.0
) -> dict[str, int]:
    """Partition counts; right after creation the metadata may still show none, so wait a little."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        described = await admin.describe_topics(names)
        counts = {entry["topic"]: len(entry["partitions"]) for entry in described}
        if all(counts.get(n, 0) > 0 for n in names) or asyncio.get_running_loop().time() > deadline:
            return {n: counts.get(n, 0) for n in names}
        await asyncio.sleep(0.2)
