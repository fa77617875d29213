"""Transactional publishing: one aiokafka producer per owned request partition.

`transactional.id` = `{client_id}-{request topic}-{partition}`: whoever owns the partition next
uses the same id, so its `start()` fences a zombie and aborts the zombie's open transaction
(aiokafka has no KIP-447 group fencing; `docs/architecture.md`, the exactly-once recipe).

Records are appended to one aiokafka batch per topic-partition (`create_batch`/`send_batch`)
instead of one `send()` per record: a run publishes two records per customer (a change event and a
snapshot record; a first run a million of each), and the per-record path cost more CPU than the
diff (docs/performance.md). Records without a partition go where the default partitioner puts
their key (murmur2, like `send()` and the Java client; computed by `partitioning.key_partition`,
compiled: ~15x cheaper than aiokafka's pure-Python `murmur2`).
"""

from __future__ import annotations

import random
from typing import Any

import aiokafka.producer.sender
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.producer.transaction_manager import TransactionState

from service import tracing
from service.config import Settings
from service.engine.ports import Committed, OutRecord, RequestPosition
from service.kafka.partitioning import key_partition

__all__ = ["Committed", "OutRecord", "PartitionPublisher", "shorten_transaction_backoff", "transactional_id"]

# Right after a commit the broker is still writing the transaction's markers, and the next
# transaction's first AddPartitionsToTxn is answered CONCURRENT_TRANSACTIONS; aiokafka then waits a
# fixed 20 ms (`BACKOFF_OVERRIDE`, KAFKA-5477) before asking again, which made every transaction
# cost >= 20 ms (a run commits one per 1,000 customers). Asking again after 2 ms brings a small
# transaction from ~19 ms to ~4 ms on a local broker (docs/performance.md). Kafka's Java producer
# avoids the round trip altogether with the newer transaction protocol (KIP-890). Process-wide:
# called once at start-up by the entry points (`service.entrypoints.process.tune_process`).
TRANSACTION_BACKOFF_SECONDS = 0.002


def shorten_transaction_backoff() -> None:
    aiokafka.producer.sender.BACKOFF_OVERRIDE = TRANSACTION_BACKOFF_SECONDS


def transactional_id(settings: Settings, partition: int) -> str:
    """The same for every owner of a request partition, so a new owner fences the previous one."""
    return f"{settings.kafka.client_id}-{settings.topics.requests_topic}-{partition}"


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
            linger_ms=0,  # batches are built whole (`create_batch`): waiting adds nothing
            max_batch_size=512 * 1024,
            max_request_size=8 * 1024 * 1024,
            compression_type=None,
        )
        # the next offset of the last request this producer committed, by request partition: a
        # redelivered request below it was answered already (an error came after its last commit)
        self.consumed_next: dict[tuple[str, int], int] = {}

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    @property
    def usable(self) -> bool:
        """Whether another transaction can begin: a producer fenced, failed fatally or stuck in an
        unfinished transaction is not (only the partition's next assignment replaces it)."""
        txn = self.producer._txn_manager
        return txn is not None and txn.state in (TransactionState.READY, TransactionState.UNINITIALIZED)

    async def commit(self, records: list[OutRecord], consumed: RequestPosition | None = None) -> Committed:
        """Send `records` (and, for `consumed`, the request's next offset) in one transaction;
        abort on any error."""
        producer = self.producer
        last: dict[tuple[str, int], int] = {}
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.batch.message_count": len(records),
            "amili.transactional_id": self.transactional_id,
        }
        with tracing.span("kafka transaction", attributes, "producer"):  # a child of the run's span
            await self._commit(producer, records, consumed, last)
        if consumed is not None:
            self.consumed_next[(consumed.topic, consumed.partition)] = consumed.offset + 1
        return Committed(last)

    @staticmethod
    async def _commit(
        producer: AIOKafkaProducer,
        records: list[OutRecord],
        consumed: RequestPosition | None,
        last: dict[tuple[str, int], int],
    ) -> None:
        async with producer.transaction():
            by_tp: dict[tuple[str, int], list[OutRecord]] = {}
            counts: dict[str, int] = {}
            for r in records:
                partition = r.partition
                if partition is None:
                    n = counts.get(r.topic)
                    if n is None:
                        n = counts[r.topic] = len(await producer.partitions_for(r.topic))
                    # no key (a DLQ copy of a keyless request): any partition, as `send()` does
                    partition = key_partition(r.key, n) if r.key is not None else random.randrange(n)
                by_tp.setdefault((r.topic, partition), []).append(r)
            sent: list[tuple[Any, int]] = []  # (future of a batch, its record count)
            for (topic, partition), batch_records in by_tp.items():
                batch, n = producer.create_batch(), 0
                for r in batch_records:
                    if batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers) is None:
                        # full: send it and start another (a record never fits nowhere: the first
                        # record of a batch is always taken, and max_request_size bounds it)
                        sent.append((await producer.send_batch(batch, topic, partition=partition), n))
                        batch, n = producer.create_batch(), 0
                        batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers)
                    n += 1
                if n:
                    sent.append((await producer.send_batch(batch, topic, partition=partition), n))
            if consumed is not None:
                await producer.send_offsets_to_transaction(
                    {TopicPartition(consumed.topic, consumed.partition): consumed.offset + 1},
                    consumed.group_id,
                )
            for fut, n in sent:
                meta = await fut
                k = (meta.topic, meta.partition)
                end = meta.offset + n - 1
                if end > last.get(k, -1):
                    last[k] = end
