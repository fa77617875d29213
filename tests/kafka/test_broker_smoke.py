"""The real broker: transactions commit and abort as read_committed readers expect; SCRAM works."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.config import KafkaSettings
from service.kafka.connection import KafkaConnectionError, check_connection, connection_kwargs
from tests.conftest import KafkaBroker


async def _create(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def _read_committed(bootstrap: str, topic: str, expect_at_least: int = 0) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                values += [r.value for r in records if r.value is not None]
            if expect_at_least and len(values) >= expect_at_least:
                # one more poll, to see anything that should not be there
                extra = await consumer.getmany(timeout_ms=1000)
                for records in extra.values():
                    values += [r.value for r in records if r.value is not None]
                break
    finally:
        await consumer.stop()
    return values


async def test_committed_transaction_is_seen_and_aborted_one_never(kafka_broker: KafkaBroker) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    await _create(kafka_broker.bootstrap_servers, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap_servers, transactional_id=f"smoke-{topic}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed-1")
            await producer.send(topic, b"committed-2")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-3")
    finally:
        await producer.stop()
    values = await _read_committed(kafka_broker.bootstrap_servers, topic, expect_at_least=3)
    assert values == [b"committed-1", b"committed-2", b"committed-3"]


def _scram_settings(kafka_broker: KafkaBroker, password: str) -> KafkaSettings:
    if not kafka_broker.sasl_bootstrap_servers:
        pytest.fail("the SCRAM test needs a SASL listener: set KAFKA_SASL_BOOTSTRAP_SERVERS", pytrace=False)
    return KafkaSettings(
        bootstrap_servers=kafka_broker.sasl_bootstrap_servers,
        security_protocol="SASL_PLAINTEXT",  # type: ignore[arg-type]
        sasl_mechanism="SCRAM-SHA-512",  # type: ignore[arg-type]
        username=kafka_broker.scram_user,
        password=password,  # type: ignore[arg-type]
    )


async def test_scram_with_the_right_password_produces(kafka_broker: KafkaBroker) -> None:
    kafka = _scram_settings(kafka_broker, kafka_broker.scram_password or "")
    await check_connection(kafka)
    topic = f"scram-{uuid.uuid4().hex[:8]}"
    await _create(kafka_broker.bootstrap_servers, topic)
    producer = AIOKafkaProducer(**connection_kwargs(kafka))
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"over-scram")
    finally:
        await producer.stop()
    assert await _read_committed(kafka_broker.bootstrap_servers, topic, expect_at_least=1) == [b"over-scram"]


async def test_scram_with_a_wrong_password_fails_fast_without_printing_it(kafka_broker: KafkaBroker) -> None:
    wrong = "wrong-Pa55word-xyz"
    kafka = _scram_settings(kafka_broker, wrong)
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(kafka, timeout=10)
    text = str(info.value)
    assert "Authentication failed" in text or "SaslAuthenticationFailed" in text
    assert kafka_broker.sasl_bootstrap_servers in text
    assert wrong not in text
