"""Restore: replay the snapshot changelog partitions from the cache's checkpoints to their end.

Before replaying, each partition's cache is verified against the log (`service/snapshot/verify.py`):
one that cannot be caught up from its checkpoint is wiped and restored from the beginning.

Batches are written to SQLite on a connection of their own (`RestoreWriter`) while the event loop
fetches and decodes the next batch. One batch is written while at most one more is gathered, so
memory stays bounded by two batches. A small restore writes from a thread: it releases the GIL only
around each row's SQLite step, so while the event loop decodes a fetch the two mostly take turns
(the writer's per-record Python work is kept small: `_apply._Rows`; docs/performance.md, 4.10). A big
one (`process_from` records and more) writes from a child process, so the consumer and SQLite each
keep a core busy (docs/performance.md, 4.11).
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections import deque
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

# Records are written to the cache in SQLite transactions of about this many, each with its
# checkpoint (far fewer SQLite transactions than records rewrite far fewer index pages:
# docs/performance.md). A few batches are in memory at once: one being written, one waiting in the
# writer process's pipe, one being fetched. 10,000 rather than 20,000: a restore of a million
# records peaks ~35 MB lower (the writer process 67 -> 45 MB) in the same time; 5,000 took ~10 %
# longer (docs/performance.md, 4.14).
# (Transactions spanning several batches were measured: no less CPU, a longer write lock.)
RESTORE_BATCH = 10_000

# From this many records on, a restore writes the cache from a child process rather than a thread
# (the setting `sync.restore_process_from`): in a thread the writer and the fetching take turns at
# the GIL (docs/performance.md, 4.11); a child costs ~0.3 s to start and its own interpreter's memory.
PROCESS_FROM = 250_000


async def restore_partitions(
    store: SnapshotStore,
    topic: str,
    partitions: Sequence[int],
    connection: dict[str, Any],
    *,
    on_progress: Callable[[int, int, int], None] | None = None,
    new_ownership: bool = False,
    process_from: int = PROCESS_FROM,
) -> dict[int, int]:
    """Bring the cache of `partitions` up to the end of the changelog (read_committed).

    `new_ownership`: the partitions were just assigned (another worker may have owned them since
    the cache last moved), which makes an old checkpoint suspect (`stale_reason`).

    `process_from`: a restore of at least this many records (all partitions together) writes the
    cache from a child process (`store.RestoreWriter`), a smaller one from a thread; 0: always a thread.

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
        lag = sum(p.end - store.checkpoint(tp.partition) for tp, p in pending.items())
        process = 0 < process_from <= lag
        _log_plan(store, topic, pending, process)
        if pending:
            await _replay(consumer, store, pending, applied, on_progress, process)
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


# What one fetch of the changelog brings, per partition and in all. Each fetched response is held
# (with the records decoded from it) until its records are taken: fetches of 2 MB rather than 8 MB
# take a restore of a million records from ~123 to ~106 MB of RSS (the worker and its writer
# process) in the same time; at 1 MB it was ~10 % slower (docs/performance.md, 4.16).
FETCH_PARTITION_BYTES = 2 * 1024 * 1024
FETCH_BYTES = 16 * 1024 * 1024


def _changelog_consumer(connection: dict[str, Any]) -> AIOKafkaConsumer:
    # read_committed: only records of committed transactions belong in the cache
    return AIOKafkaConsumer(
        **connection,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=FETCH_PARTITION_BYTES,
        fetch_max_bytes=FETCH_BYTES,
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


def _log_plan(
    store: SnapshotStore, topic: str, pending: dict[TopicPartition, _Pending], process: bool
) -> None:
    if pending:
        log.info(
            "restoring snapshot",
            topic=topic,
            writer="process" if process else "thread",
            partitions={tp.partition: (store.checkpoint(tp.partition), p.end) for tp, p in pending.items()},
        )


async def _replay(
    consumer: AIOKafkaConsumer,
    store: SnapshotStore,
    pending: dict[TopicPartition, _Pending],
    applied: dict[int, int],
    on_progress: Callable[[int, int, int], None] | None,
    process: bool,
) -> None:
    """Fetch and apply until every pending partition has reached its end offset."""
    writer = _Writer(store.restore_writer(process=process))
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
    """Applies batches in the store's restore writer; `apply` returns once fewer than `depth`
    batches are being written (so fetching overlaps the writing), `drain` when the last one is.
    A child process writer gets the next batch in its pipe while it writes one (depth 2): it never
    waits for the event loop between batches."""

    def __init__(self, writer: RestoreWriter) -> None:
        self.writer = writer
        self.depth = 2 if writer.child is not None else 1
        self.writing: deque[asyncio.Future[int]] = deque()

    async def apply(self, partition: int, records: list[tuple[bytes, bytes | None]], checkpoint: int) -> None:
        while len(self.writing) >= self.depth:
            await self.writing.popleft()  # a failed batch fails the restore (retried from the checkpoint)
        self.writing.append(asyncio.wrap_future(self.writer.submit(partition, records, checkpoint)))

    async def drain(self) -> None:
        while self.writing:
            await self.writing.popleft()

    async def close(self) -> None:
        for writing in self.writing:  # the restore failed: its outcome is that failure
            writing.add_done_callback(lambda f: f.cancelled() or f.exception())
        # queued behind a batch still being written; runs even if this task is cancelled meanwhile
        finished = asyncio.wrap_future(self.writer.close())
        await asyncio.shield(finished)


# (key, value) of a fetched record, in C: this runs once per record of the changelog
_key_and_value = operator.attrgetter("key", "value")


async def _fetch(consumer: AIOKafkaConsumer, pending: dict[TopicPartition, _Pending]) -> None:
    batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=RESTORE_BATCH)
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
