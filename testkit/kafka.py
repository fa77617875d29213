"""Kafka as the tests see it: requests sent, the output topics read the way a consumer reads them
(read_committed, every event checked), the snapshot changelog read to its end."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from service.config import TopicSettings
from service.kafka.topics import partition_counts
from service.sync.kinds import default_groups
from testkit.events import check_event


def request_payload(
    client_no: int, filters: dict[str, str] | None = None, requested_at: datetime | None = None
) -> tuple[str, bytes]:
    rid = str(uuid.uuid4())
    body: dict[str, Any] = {
        "requestId": rid,
        "clientNo": client_no,
        "requestedAt": (requested_at or datetime.now(UTC)).isoformat(),
    }
    if filters:
        body["filters"] = filters
    return rid, json.dumps(body).encode()


async def send_raw(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def send_request(
    bootstrap: str,
    prefix: str,
    client_no: int,
    filters: dict[str, str] | None = None,
    requested_at: datetime | None = None,
) -> str:
    rid, payload = request_payload(client_no, filters, requested_at)
    await send_raw(bootstrap, f"{prefix}.fetch-requests", [(str(client_no).encode(), payload)])
    return rid


@dataclass
class Collected:
    events: list[dict[str, Any]] = field(default_factory=list)  # checked CloudEvents data + id/type
    results: list[dict[str, Any]] = field(default_factory=list)
    dlq: list[Any] = field(default_factory=list)


class TopicReader:
    """A read_committed reader of every output topic of one prefix (the event topics of `groups`,
    from the event-kind registry, the results and the dead letters); validates each event."""

    def __init__(
        self, bootstrap: str, prefix: str, groups: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.groups = dict(groups) if groups is not None else default_groups()
        names = TopicSettings(prefix=prefix)
        self.topics = [*names.event_topics(self.groups), names.results_topic, names.dlq_topic]
        self.consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        self.data = Collected()

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def poll(self, timeout_ms: int = 500) -> int:
        batch = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=50_000)
        n = 0
        for records in batch.values():
            for r in records:
                n += 1
                if r.topic.endswith(".sync-results"):
                    self.data.results.append(json.loads(r.value))
                elif r.topic.endswith(".dlq"):
                    self.data.dlq.append(r)
                else:
                    self.data.events.append(
                        {**check_event(r.key, r.value, list(r.headers), self.groups), "_topic": r.topic}
                    )
        return n

    async def wait_results(
        self, request_ids: Iterable[str], timeout: float = 120.0
    ) -> dict[str, dict[str, Any]]:
        wanted = set(request_ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.poll()
            found = {r["requestId"]: r for r in self.data.results if r["requestId"] in wanted}
            if set(found) == wanted:
                await self.drain()  # events committed before the results, still on their way
                return found
        missing = wanted - {r["requestId"] for r in self.data.results}
        raise AssertionError(f"no result within {timeout}s for {sorted(missing)}")

    async def drain(self, quiet_ms: int = 1000) -> None:
        while await self.poll(quiet_ms):
            pass

    def events_of(self, request_id: str) -> list[dict[str, Any]]:
        return [e for e in self.data.events if e["requestId"] == request_id]


async def partition_count(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return (await partition_counts(admin, [topic]))[topic]
    finally:
        await admin.close()


async def read_snapshot(bootstrap: str, prefix: str, timeout: float = 120.0) -> dict[bytes, bytes | None]:
    """The snapshot changelog (`{prefix}.snapshot`), last value per key (None: tombstone), read with
    read_committed from the beginning to the end offsets of every partition."""
    topic = f"{prefix}.snapshot"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(await partition_count(bootstrap, topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        state: dict[bytes, bytes | None] = {}
        deadline = time.monotonic() + timeout
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout}s")
            batch = await consumer.getmany(*tps, timeout_ms=1000, max_records=50_000)
            for records in batch.values():
                for r in records:
                    state[r.key] = r.value
        return state
    finally:
        await consumer.stop()
