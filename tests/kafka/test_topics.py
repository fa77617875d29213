"""Topic set-up on the real broker: missing topics created (snapshot compacted); a partition mismatch
between the request and snapshot topics refuses start-up with a clear message."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from service.config import TopicSettings
from service.kafka.topics import TopicLayoutError, ensure_topics
from service.sync.kinds import default_groups
from tests.conftest import KafkaBroker

GROUPS = default_groups()


async def test_missing_topics_are_created_and_the_snapshot_is_compacted(
    kafka_broker: KafkaBroker, topic_prefix: str
) -> None:
    topics = TopicSettings(prefix=topic_prefix, partitions=4)
    counts = await ensure_topics(topics, {"bootstrap_servers": kafka_broker.bootstrap_servers}, groups=GROUPS)
    assert counts == {topics.requests_topic: 4, topics.snapshot_topic: 4}
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    await admin.start()
    try:
        assert set(topics.all_topics(GROUPS)) <= set(await admin.list_topics())
        [config] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.snapshot_topic)]
        )
        entries = {e[0]: e[1] for e in config.resources[0][4]}
        assert entries["cleanup.policy"] == "compact"
    finally:
        await admin.close()
    # a second start finds everything in place
    assert (
        await ensure_topics(topics, {"bootstrap_servers": kafka_broker.bootstrap_servers}, groups=GROUPS)
        == counts
    )


async def test_partition_mismatch_refuses_to_start(kafka_broker: KafkaBroker, topic_prefix: str) -> None:
    topics = TopicSettings(prefix=topic_prefix, partitions=3)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topics.snapshot_topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    with pytest.raises(TopicLayoutError) as info:
        await ensure_topics(topics, {"bootstrap_servers": kafka_broker.bootstrap_servers}, groups=GROUPS)
    message = str(info.value)
    assert topics.requests_topic in message
    assert topics.snapshot_topic in message
    assert "3 partitions" in message
    assert "has 2" in message


async def test_a_custom_groups_topic_is_created(kafka_broker: KafkaBroker, topic_prefix: str) -> None:
    topics = TopicSettings(prefix=topic_prefix, partitions=2)
    groups = {**GROUPS, "contact_email": ["emailAddressDocument"]}
    await ensure_topics(topics, {"bootstrap_servers": kafka_broker.bootstrap_servers}, groups=groups)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    assert f"{topic_prefix}.contact-email-changed" in existing
    assert set(topics.all_topics(groups)) <= existing
