"""Restore: replay the snapshot changelog partitions from the cache's checkpoints to their end."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.logs import get_logger
from service.metrics import RESTORE_LAG, RESTORE_RECORDS
from service.snapshot.store import SnapshotStore

log = get_logger(__name__)

# Records are written to the cache in SQLite transactions of about this many (fewer SQLite
# transactions rewrite far fewer index pages: docs/performance.md); each with its checkpoint.
RESTORE_BATCH = 20_000


async def restore_partitions(
    store: SnapshotStore,
    topic: str,
    partitions: Sequence[int],
    connection: dict[str, Any],
    *,
    on_progress: Callable[[int, int, int], None] | None = None,
) -> dict[int, int]:
    """Bring the cache of `partitions` up to the end of the changelog (read_committed).

    Returns the records applied per partition. Fetched records are applied in batches of about
    `RESTORE_BATCH`, each with its new checkpoint in one SQLite transaction, so a crash mid-restore
    resumes where it stopped.
    """
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(
        **connection,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    applied: dict[int, int] = dict.fromkeys(partitions, 0)
    t0 = time.monotonic()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        pending: dict[TopicPartition, int] = {}
        for tp in tps:
            start = store.checkpoint(tp.partition)
            if start < ends[tp]:
                consumer.seek(tp, start)
                pending[tp] = ends[tp]
                RESTORE_LAG.labels(str(tp.partition)).set(ends[tp] - start)
            else:
                RESTORE_LAG.labels(str(tp.partition)).set(0)
        if pending:
            log.info(
                "restoring snapshot",
                topic=topic,
                partitions={
                    tp.partition: (store.checkpoint(tp.partition), end) for tp, end in pending.items()
                },
            )
        buffered: dict[TopicPartition, list[tuple[bytes, bytes | None]]] = {tp: [] for tp in pending}
        next_offset: dict[TopicPartition, int] = {}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=20_000)
            for tp, records in batches.items():
                if records:
                    buffered[tp] += [(r.key, r.value) for r in records]
                    next_offset[tp] = records[-1].offset + 1
            for tp in list(pending):
                position = await consumer.position(tp)
                done = position >= pending[tp]
                if done or len(buffered[tp]) >= RESTORE_BATCH:
                    # at the end, control records (transaction markers) may sit past the last data record
                    store.apply(tp.partition, buffered[tp], position if done else next_offset[tp])
                    applied[tp.partition] += len(buffered[tp])
                    RESTORE_RECORDS.labels(str(tp.partition)).inc(len(buffered[tp]))
                    buffered[tp] = []
                if done:
                    RESTORE_LAG.labels(str(tp.partition)).set(0)
                    del pending[tp]
                else:
                    RESTORE_LAG.labels(str(tp.partition)).set(pending[tp] - position)
                    if on_progress:
                        on_progress(tp.partition, position, pending[tp])
    finally:
        await consumer.stop()
    total = sum(applied.values())
    if total:
        log.info("snapshot restored", records=total, seconds=round(time.monotonic() - t0, 2))
    return applied
