"""Restore: replay the snapshot changelog partitions from the cache's checkpoints to their end.

Before replaying, each partition's cache is verified against the log (`service/snapshot/verify.py`):
one that cannot be caught up from its checkpoint is wiped and restored from the beginning.

Batches are written to SQLite in a thread, on a connection of its own (`RestoreWriter`), while the
event loop fetches and decodes the next batch: the consumer and SQLite each keep a core busy. One
batch is written while at most one more is gathered, so memory stays bounded by two batches.
The writer releases the GIL only around each row's SQLite step, so while the event loop decodes a
fetch the two mostly take turns: the writer's per-record Python work counts in the wall time, and is
kept small (`store._Rows`; docs/performance.md, 4.9).
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from service.logs import get_logger
from service.metrics import RESTORE_LAG, RESTORE_RECORDS
from service.snapshot.store import RestoreWriter, SnapshotStore
from service.snapshot.verify import PartitionLog, delete_retention_ms, stale_reason

log = get_logger(__name__)

# Records are written to the cache in SQLite transactions of about this many (fewer SQLite
# transactions rewrite far fewer index pages: docs/performance.md); each with its checkpoint. Two
# batches at most are in memory: one being written (the writer thread), one being fetched.
# (Transactions spanning several batches were measured: no less CPU, a longer write lock.)
RESTORE_BATCH = 20_000


async def restore_partitions(
    store: SnapshotStore,
    topic: str,
    partitions: Sequence[int],
    connection: dict[str, Any],
    *,
    on_progress: Callable[[int, int, int], None] | None = None,
    new_ownership: bool = False,
) -> dict[int, int]:
    """Bring the cache of `partitions` up to the end of the changelog (read_committed).

    `new_ownership`: the partitions were just assigned (another worker may have owned them since
    the cache last moved), which makes an old checkpoint suspect (`stale_reason`).

    Returns the records applied per partition. Fetched records are applied in batches of about
    `RESTORE_BATCH`, each with its new checkpoint in one SQLite transaction, so a crash mid-restore
    resumes where it stopped.
    """
    if not partitions:
        return {}
    consumer = _changelog_consumer(connection)
    await consumer.start()
    applied: dict[int, int] = dict.fromkeys(partitions, 0)
    t0 = time.monotonic()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        await _wipe_stale(store, topic, tps, starts, ends, connection, new_ownership)
        pending = _seek_to_checkpoints(consumer, store, tps, ends)
        _log_plan(store, topic, pending)
        if pending:
            await _replay(consumer, store, pending, applied, on_progress)
    finally:
        await consumer.stop()
    _mark_current(store, partitions)
    _log_done(applied, t0)
    return applied


@dataclass
class _Pending:
    """A partition still being replayed: where it ends and what was fetched but not yet applied."""

    end: int
    records: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    next_offset: int = 0  # just past the last fetched record


def _changelog_consumer(connection: dict[str, Any]) -> AIOKafkaConsumer:
    # read_committed: only records of committed transactions belong in the cache
    return AIOKafkaConsumer(
        **connection,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )


def _seek_to_checkpoints(
    consumer: AIOKafkaConsumer,
    store: SnapshotStore,
    tps: Sequence[TopicPartition],
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, _Pending]:
    """Seek every partition behind the log's end to its checkpoint; those are the ones to replay."""
    pending: dict[TopicPartition, _Pending] = {}
    for tp in tps:
        start = store.checkpoint(tp.partition)
        if start < ends[tp]:
            consumer.seek(tp, start)
            pending[tp] = _Pending(ends[tp])
            RESTORE_LAG.labels(str(tp.partition)).set(ends[tp] - start)
        else:
            RESTORE_LAG.labels(str(tp.partition)).set(0)
    return pending


def _log_plan(store: SnapshotStore, topic: str, pending: dict[TopicPartition, _Pending]) -> None:
    if pending:
        log.info(
            "restoring snapshot",
            topic=topic,
            partitions={tp.partition: (store.checkpoint(tp.partition), p.end) for tp, p in pending.items()},
        )


async def _replay(
    consumer: AIOKafkaConsumer,
    store: SnapshotStore,
    pending: dict[TopicPartition, _Pending],
    applied: dict[int, int],
    on_progress: Callable[[int, int, int], None] | None,
) -> None:
    """Fetch and apply until every pending partition has reached its end offset."""
    writer = _Writer(store.restore_writer())
    try:
        while pending:
            await _fetch(consumer, pending)
            for tp in list(pending):
                if await _advance(consumer, writer, tp, pending[tp], applied, on_progress):
                    del pending[tp]
        await writer.drain()
    finally:
        await writer.close()


class _Writer:
    """Applies batches in the store's restore thread; `apply` returns once the previous batch is
    written (so fetching overlaps the writing of one batch), `drain` when the last one is."""

    def __init__(self, writer: RestoreWriter) -> None:
        self.writer = writer
        self.writing: asyncio.Future[int] | None = None

    async def apply(self, partition: int, records: list[tuple[bytes, bytes | None]], checkpoint: int) -> None:
        await self.drain()
        self.writing = asyncio.wrap_future(self.writer.submit(partition, records, checkpoint))

    async def drain(self) -> None:
        writing, self.writing = self.writing, None
        if writing is not None:
            await writing  # a failed batch fails the restore (it is retried from the checkpoint)

    async def close(self) -> None:
        if self.writing is not None:  # the restore failed: its outcome is that failure
            self.writing.add_done_callback(lambda f: f.cancelled() or f.exception())
        # queued behind a batch still being written; runs even if this task is cancelled meanwhile
        finished = asyncio.wrap_future(self.writer.close())
        await asyncio.shield(finished)


# (key, value) of a fetched record, in C: this runs once per record of the changelog
_key_and_value = operator.attrgetter("key", "value")


async def _fetch(consumer: AIOKafkaConsumer, pending: dict[TopicPartition, _Pending]) -> None:
    batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=20_000)
    for tp, records in batches.items():
        if records:
            pending[tp].records += map(_key_and_value, records)
            pending[tp].next_offset = records[-1].offset + 1


async def _advance(
    consumer: AIOKafkaConsumer,
    writer: _Writer,
    tp: TopicPartition,
    part: _Pending,
    applied: dict[int, int],
    on_progress: Callable[[int, int, int], None] | None,
) -> bool:
    """Apply a full batch, or the rest at the end; report the lag. True when the partition is done."""
    position: int = await consumer.position(tp)
    done = position >= part.end
    if done or len(part.records) >= RESTORE_BATCH:
        # at the end, control records (transaction markers) may sit past the last data record
        await _apply(writer, tp.partition, part, position if done else part.next_offset, applied)
    if done:
        RESTORE_LAG.labels(str(tp.partition)).set(0)
    else:
        RESTORE_LAG.labels(str(tp.partition)).set(part.end - position)
        if on_progress:
            on_progress(tp.partition, position, part.end)
    return done


async def _apply(
    writer: _Writer, partition: int, part: _Pending, checkpoint: int, applied: dict[int, int]
) -> None:
    # the records and their checkpoint in one SQLite transaction: a crash resumes from here
    await writer.apply(partition, part.records, checkpoint)
    applied[partition] += len(part.records)
    RESTORE_RECORDS.labels(str(partition)).inc(len(part.records))
    part.records = []


def _mark_current(store: SnapshotStore, partitions: Sequence[int]) -> None:
    for p in partitions:
        store.touch_checkpoint(p)  # current with the log's end as of now


def _log_done(applied: dict[int, int], t0: float) -> None:
    total = sum(applied.values())
    if total:
        log.info("snapshot restored", records=total, seconds=round(time.monotonic() - t0, 2))


async def _wipe_stale(
    store: SnapshotStore,
    topic: str,
    tps: Sequence[TopicPartition],
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    connection: dict[str, Any],
    new_ownership: bool,
) -> None:
    """Wipe the cache of every partition that cannot be caught up from its checkpoint."""
    retention: int | None = None
    for tp in tps:
        checkpoint, at = store.checkpoint(tp.partition), store.checkpoint_time(tp.partition)
        if new_ownership and retention is None and at is not None and checkpoint < ends[tp]:
            retention = await _retention(topic, connection)
        reason = stale_reason(
            checkpoint,
            at,
            PartitionLog(starts[tp], ends[tp]),
            retention_ms=retention if retention is not None else 0,
            now=time.time(),
            new_ownership=new_ownership and retention is not None,
        )
        if reason:
            log.warning(
                "snapshot cache wiped, restoring from the beginning", partition=tp.partition, reason=reason
            )
            store.wipe_partition(tp.partition)


async def _retention(topic: str, connection: dict[str, Any]) -> int:
    admin = AIOKafkaAdminClient(**connection)
    await admin.start()
    try:
        return await delete_retention_ms(admin, topic)
    finally:
        await admin.close()
