"""The page transactions of a run: committed in order, a few in flight, the cache written after.

Every transaction carries change events together with the snapshot records of exactly those
customers. The local cache learns a record only after its transaction committed, and in batches;
until then the cache is behind its checkpoint, never ahead, so a crash only replays records.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque

from service.engine.ports import OutRecord, Publisher, SnapshotCache
from service.engine.unapplied import Unapplied
from service.metrics import CHANGE_EVENTS

__all__ = ["APPLY_BATCH", "MAX_INFLIGHT", "TransactionPipeline"]

# Snapshot records committed in Kafka are written to the local cache in SQLite transactions of at
# least this many records (and always before the run's removals and at its end, also on failure):
# one SQLite transaction per page rewrote most index pages every time (docs/performance.md).
APPLY_BATCH = 20_000

# Page transactions that may be queued or committing while the next pages are read and diffed. One
# producer commits one transaction at a time, and each costs at least ~20 ms of waiting (aiokafka
# backs off when the broker is still writing the previous transaction's markers); meanwhile the run
# goes on taking pages from the reader, so its requests keep flowing.
MAX_INFLIGHT = 2


class TransactionPipeline:
    def __init__(
        self, publisher: Publisher, cache: SnapshotCache, snapshot_topic: str, partition: int
    ) -> None:
        self.publisher = publisher
        self.cache = cache
        self.snapshot_topic = snapshot_topic
        self.partition = partition
        self.counts: Counter[str] = Counter()  # committed events by kind
        self._inflight: deque[asyncio.Task[None]] = deque()  # oldest first
        self._unapplied = Unapplied()
        self._next_offset: int | None = None  # changelog offset after the last unapplied record

    async def submit(
        self, records: list[OutRecord], snapshot: list[tuple[bytes, bytes]], kinds: Counter[str]
    ) -> None:
        """Queue one transaction behind the ones in flight (waiting while `MAX_INFLIGHT` are)."""
        while len(self._inflight) >= MAX_INFLIGHT:
            await asyncio.shield(self._inflight.popleft())
        previous = self._inflight[-1] if self._inflight else None
        self._inflight.append(asyncio.create_task(self._commit(records, snapshot, kinds, previous)))
        if len(self._unapplied) >= APPLY_BATCH:
            self.apply()

    async def _commit(
        self,
        records: list[OutRecord],
        snapshot: list[tuple[bytes, bytes]],
        kinds: Counter[str],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Commit after the transaction before it (not at all if that one failed), then, with no
        await in between, take note of what was committed."""
        if previous is not None:
            await asyncio.shield(previous)
        committed = await self.publisher.commit(records)
        for key, value in snapshot:
            self._unapplied.add(key, value)
        last = committed.last_offsets.get((self.snapshot_topic, self.partition))
        if last is not None:
            self._next_offset = last + 1
        self.counts.update(kinds)
        for kind, n in kinds.items():
            CHANGE_EVENTS.labels(kind).inc(n)

    async def settle(self) -> None:
        """Wait for every transaction in flight; raise the first failure."""
        tasks = list(self._inflight)
        self._inflight.clear()
        # shielded: a cancelled run must not cancel a commit half-way
        outcomes = await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def apply(self) -> None:
        """Write the committed snapshot records that are not in the cache yet."""
        if len(self._unapplied) or self._next_offset is not None:
            self.cache.apply(self.partition, self._unapplied.records(), self._next_offset)
            self._unapplied = Unapplied()
            self._next_offset = None
