"""Topic set-up at start: create what is missing (or only verify it), refuse to start when the layout
is wrong.

`AMILI_SYNC_TOPICS__MANAGE=create` (default) creates missing topics; `verify` is for clusters whose
topics (and ACLs) a platform team manages: the worker creates nothing and refuses to start, with one
line naming the topic and the problem, when a topic is missing, the request and snapshot topics
differ in partition count, or the snapshot topic is not compacted (`cleanup.policy=compact`: with
`delete` the broker would drop snapshot records by retention and clients would be re-baselined).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from service.config import TopicManagement, TopicSettings
from service.logs import get_logger

log = get_logger(__name__)


class TopicLayoutError(Exception):
    """The topics cannot be used as they are (missing, partition counts differ, snapshot not compacted).

    The message is one line naming the topic and the problem."""


async def ensure_topics(
    topics: TopicSettings, connection: dict[str, Any], *, groups: Iterable[str]
) -> dict[str, int]:
    """Create (or, with `manage=verify`, only check) the topics, the event topics of every tracked
    group (`settings.sync.groups`, custom ones too) included; return the request and snapshot
    topics' partition counts; raise `TopicLayoutError` when the layout is wrong."""
    admin = AIOKafkaAdminClient(**connection)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics.all_topics(groups) if t not in existing]
        if missing and topics.manage is TopicManagement.VERIFY:
            raise TopicLayoutError(
                f"topic {', '.join(missing)} does not exist: with AMILI_SYNC_TOPICS__MANAGE=verify the "
                "worker creates no topic, create it first (or set AMILI_SYNC_TOPICS__MANAGE=create)"
            )
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
        if topics.manage is TopicManagement.VERIFY:
            await check_compacted(admin, topics.snapshot_topic)
    finally:
        await admin.close()
    if counts[topics.requests_topic] != counts[topics.snapshot_topic]:
        raise TopicLayoutError(
            f"topic {topics.requests_topic} has {counts[topics.requests_topic]} partitions but "
            f"{topics.snapshot_topic} has {counts[topics.snapshot_topic]}: they must be equal, because a "
            "client's snapshot lives in the partition its requests hash to"
        )
    return counts


async def check_compacted(admin: AIOKafkaAdminClient, topic: str) -> None:
    """Raise `TopicLayoutError` unless the topic's `cleanup.policy` is exactly `compact`."""
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = response.resources[0][4]
    policy = next((entry[1] for entry in entries if entry[0] == "cleanup.policy"), None)
    if policy != "compact":
        raise TopicLayoutError(
            f"topic {topic} has cleanup.policy={policy} but the snapshot changelog needs "
            "cleanup.policy=compact (with delete, retention drops snapshot records and clients are re-baselined)"
        )


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
