"""`amili-sync request`: send a fetch request (and optionally wait for its run result)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service.config import Settings
from service.kafka.connection import connection_kwargs
from service.sync.requests import new_request_payload


async def send_request(
    settings: Settings, client_no: int, filters: dict[str, str], reason: str | None, wait: float
) -> int:
    request_id = uuid.uuid4()
    payload = new_request_payload(request_id, client_no, datetime.now(UTC), filters, reason)
    conn = connection_kwargs(settings.kafka)
    consumer = None
    if wait > 0:
        consumer = AIOKafkaConsumer(
            settings.topics.results_topic,
            **conn,
            isolation_level="read_committed",
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        await consumer.start()
        await consumer.seek_to_end()
        # make sure the end position is resolved before the request can be answered
        for tp in consumer.assignment():
            await consumer.position(tp)
    producer = AIOKafkaProducer(**conn, enable_idempotence=True)
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            settings.topics.requests_topic, payload, key=str(client_no).encode()
        )
    finally:
        await producer.stop()
    print(f"request {request_id} for client {client_no} sent to {meta.topic}[{meta.partition}]@{meta.offset}")
    if consumer is None:
        return 0
    try:
        deadline = asyncio.get_running_loop().time() + wait
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    result = orjson.loads(r.value)
                    if result.get("requestId") == str(request_id):
                        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
                        return 0 if result.get("status") in ("succeeded", "superseded") else 1
        print(f"no result for request {request_id} within {wait:.0f}s", file=sys.stderr)
        return 3
    finally:
        await consumer.stop()
