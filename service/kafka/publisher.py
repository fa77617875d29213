"""Transactional publishing: one aiokafka producer per owned request partition.

`transactional.id` = `{client_id}-{request topic}-{partition}`: whoever owns the partition next
uses the same id, so its `start()` fences a zombie and aborts the zombie's open transaction
(aiokafka has no KIP-447 group fencing; `faststream-eos.md`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition


@dataclass
class OutRecord:
    topic: str
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None


@dataclass
class Committed:
    """Offsets (by topic, partition) of the records of a committed transaction."""

    last_offsets: dict[tuple[str, int], int]


class PartitionPublisher:
    def __init__(
        self, connection: dict[str, Any], transactional_id: str, transaction_timeout_ms: int
    ) -> None:
        self.transactional_id = transactional_id
        self.producer = AIOKafkaProducer(
            **connection,
            transactional_id=transactional_id,
            transaction_timeout_ms=transaction_timeout_ms,
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=512 * 1024,
            max_request_size=8 * 1024 * 1024,
            compression_type=None,
        )

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def commit(
        self,
        records: list[OutRecord],
        offsets: dict[TopicPartition, int] | None = None,
        group_id: str | None = None,
    ) -> Committed:
        """Send `records` (and the consumer offsets) in one transaction; abort on any error."""
        last: dict[tuple[str, int], int] = {}
        async with self.producer.transaction():
            futures = [
                await self.producer.send(
                    r.topic, r.value, key=r.key, headers=r.headers, partition=r.partition
                )
                for r in records
            ]
            if offsets:
                await self.producer.send_offsets_to_transaction(offsets, group_id)
            for fut in futures:
                meta = await fut
                k = (meta.topic, meta.partition)
                if meta.offset > last.get(k, -1):
                    last[k] = meta.offset
        return Committed(last)
