"""One sync run: read the client's customers, diff them against the snapshot, publish exactly once.

The run commits in pieces. Every Kafka transaction carries the change events of a set of customers
together with the new snapshot records of exactly those customers, and the local cache is updated
only after the transaction commits. The last transaction carries the removals, the run metadata,
the run result and (for a request) the request's offset. A crash anywhere therefore loses nothing
and repeats nothing: the redelivered request re-reads the API and finds no difference for what an
earlier transaction already committed (DESIGN.md §5, docs/design-notes.md).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import TopicPartition
from pydantic import BaseModel

from service.amili import AmiliClient, Customer, Page, ReadReport
from service.config import Settings
from service.kafka.publisher import OutRecord, PartitionPublisher
from service.logs import get_logger
from service.metrics import CHANGE_EVENTS, LAST_SUCCESS, RUN_DURATION, RUN_IN_PROGRESS, RUNS
from service.snapshot.store import (
    ClientMeta,
    SnapshotStore,
    decode_state,
    encode_state,
    meta_key,
    stores_state,
)
from service.sync.diff import StoredState, diff_customer, needs_snapshot_update, removal
from service.sync.events import EventContext, OutEvent, build_event, snapshot_key
from service.sync.requests import FetchRequest
from service.sync.results import RunResult, RunStatus
from service.sync.state import SCALARS, TrackingRules, normalize

log = get_logger(__name__)

ProgressCallback = Callable[[ReadReport], None]

# Snapshot records committed in Kafka are written to the local cache in SQLite transactions of at
# least this many records (and always before the run's removals and at its end, also on failure):
# one SQLite transaction per page rewrote most index pages every time (docs/performance.md). Until
# they are written the cache is behind its checkpoint, never ahead, so a crash only replays them.
APPLY_BATCH = 20_000

# Page transactions that may be queued or committing while the next pages are read and diffed. One
# producer commits one transaction at a time, and each costs at least ~20 ms of waiting (aiokafka
# backs off 20 ms when the broker is still writing the previous transaction's markers); meanwhile
# the run goes on taking pages from the reader, so its requests keep flowing.
MAX_INFLIGHT = 2

# The cyclic garbage collector, tuned for runs (docs/performance.md). A page parses into some 30,000
# container objects that live until the page is diffed, so with the default thresholds (700, 10, 10)
# they are promoted to the oldest generation and full collections over the whole heap come every
# other page: a third of a run's CPU. A first young collection after 50,000 net allocations lets a
# page die young; `gc.freeze()` takes what exists after start-up (modules, settings, clients) out of
# every collection. Cost: ~10 MB more peak RSS. Process-wide, done once by the first engine.
GC_THRESHOLDS = (50_000, 10, 10)

# Every this many customers a run hands the allocator's free pages back to the system. Pages of
# parsed customers are freed by the thousand, but the C allocator keeps most of what they leave
# behind (small long-lived objects pin its heap), so without this the RSS grows with the size of
# the client instead of staying flat (docs/performance.md).
TRIM_EVERY = 20_000
_malloc_trim: Any = None


def release_free_memory() -> None:
    """`malloc_trim(0)` on glibc (a no-op elsewhere)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_gc_tuned = False


def tune_gc() -> None:
    global _gc_tuned
    if not _gc_tuned:
        _gc_tuned = True
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)


@dataclass
class RequestPosition:
    """Where the request came from: its offset is committed in the run's last transaction."""

    tp: TopicPartition
    offset: int
    group_id: str


class Unapplied:
    """Committed snapshot records not yet in the cache, packed in one buffer: tens of thousands of
    small bytes objects kept alive across pages pin half-empty allocator pools and arenas that the
    pages' short-lived objects leave behind (measured: +65 MB RSS at 100,000 customers)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ends = array("Q")  # key end, value end, key end, value end, ...

    def __len__(self) -> int:
        return len(self.ends) // 2

    def add(self, key: bytes, value: bytes) -> None:
        self.data += key
        self.ends.append(len(self.data))
        self.data += value
        self.ends.append(len(self.data))

    def records(self) -> Iterator[tuple[bytes, bytes]]:
        data, ends, start = memoryview(self.data), self.ends, 0
        try:
            for i in range(0, len(ends), 2):
                key_end, value_end = ends[i], ends[i + 1]
                yield bytes(data[start:key_end]), bytes(data[key_end:value_end])
                start = value_end
        finally:
            data.release()


@dataclass
class RunState:
    request: FetchRequest
    partition: int
    started_at: datetime
    baseline: bool
    counts: Counter[str] = field(default_factory=Counter)
    customers: int = 0
    unapplied: Unapplied = field(default_factory=Unapplied)
    next_offset: int | None = None  # changelog offset after the last committed record of `unapplied`
    # page transactions queued or committing, oldest first (each waits for the one before it)
    inflight: deque[asyncio.Task[None]] = field(default_factory=deque)


def customer_fields(customer: Customer, names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of a customer model as plain JSON values (declared or unknown fields)."""
    extra = customer.model_extra or {}
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(customer, name, None) if name in type(customer).model_fields else extra.get(name)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        out[name] = value
    return out


def _model_state(model: BaseModel) -> Any:
    """`normalize(model.model_dump(mode="json"))`, read straight from the model when every value is
    a plain scalar (nothing to convert; the API models declare no custom serializers)."""
    extra = model.__pydantic_extra__
    items = {**model.__dict__, **extra}.items() if extra else model.__dict__.items()
    out: dict[str, Any] = {}
    for key, value in items:
        if value is None or value == "":
            continue
        if type(value) not in SCALARS:
            return normalize(model.model_dump(mode="json"))
        out[key] = value
    return out or None


def customer_state(customer: Customer, names: tuple[str, ...], declared: frozenset[str]) -> dict[str, Any]:
    """`tracked_state(customer_fields(customer, names), rules)` without the intermediate dict: the
    hot path of every run (a test checks both agree)."""
    values = customer.__dict__
    extra = customer.__pydantic_extra__
    state: dict[str, Any] = {}
    for name in names:
        value = values.get(name) if name in declared else (extra.get(name) if extra else None)
        if value is None or value == "":
            continue
        if type(value) not in SCALARS:
            value = _model_state(value) if isinstance(value, BaseModel) else normalize(value)
            if value is None:
                continue
        state[name] = value
    return state


class SyncEngine:
    def __init__(self, settings: Settings, store: SnapshotStore, api: AmiliClient) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.store = store
        self.api = api
        self.rules = TrackingRules.from_config(settings.sync.groups, settings.sync.include_personal_fields)
        self._fields = self.rules.state_fields()
        self._declared = frozenset(Customer.model_fields)
        tune_gc()

    # --- the run ---------------------------------------------------------------------------------

    async def run(
        self,
        request: FetchRequest,
        publisher: PartitionPublisher,
        partition: int,
        position: RequestPosition | None,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> RunResult:
        client_no = request.clientNo
        started_at = datetime.now(UTC)
        t0 = time.monotonic()
        bound = log.bind(requestId=str(request.requestId), clientNo=client_no)
        meta = self.store.get_meta(client_no)
        if (
            meta
            and meta.last_completed_run_started_at
            and request.requestedAt < meta.last_completed_run_started_at
        ):
            bound.info("request superseded", lastRunStartedAt=meta.last_completed_run_started_at.isoformat())
            result = self._result(request, RunStatus.SUPERSEDED, started_at, t0, None, Counter())
            await self._finish(publisher, partition, position, [], [], result)
            return result

        run = RunState(request, partition, started_at, baseline=meta is None)
        RUN_IN_PROGRESS.labels(str(client_no)).set(1)
        bound.info("run started", filters=request.filter_query, baseline=run.baseline)
        self.store.reset_seen(client_no)
        read = self.api.read(client_no, request.filter_query or None)
        pending: list[Page] = []
        pending_customers = 0
        # A transaction covers `pages_per_transaction` pages' worth of customers (full pages of
        # `page_size`): slices end in short pages, and a 1,000,000-customer client read in name
        # slices averages ~150 customers a page; a transaction per short page cost more in Kafka
        # round trips than the whole diff (docs/performance.md).
        per_transaction = self.settings.sync.pages_per_transaction * self.settings.api.page_size
        last_log = time.monotonic()
        try:
            async for page in read:
                pending.append(page)
                pending_customers += len(page.customers)
                if pending_customers >= per_transaction:
                    await self._commit_pages(run, pending, publisher)
                    pending, pending_customers = [], 0
                if on_progress:
                    on_progress(read.report)
                if time.monotonic() - last_log >= self.settings.sync.progress_interval:
                    last_log = time.monotonic()
                    self._log_progress(bound, read.report, t0)
            if pending:
                await self._commit_pages(run, pending, publisher)
            await self._settle(run)
            self._apply(run)
            report = read.report
            records, events, held, gaps = await self._removals(run, report)
            status = RunStatus.REMOVALS_HELD if held else RunStatus.SUCCEEDED
            result = self._result(request, status, started_at, t0, report, run.counts, held=held, gaps=gaps)
            for ev in events:
                result.counts[ev.kind] = result.counts.get(ev.kind, 0) + 1
            complete_unfiltered = not request.is_filtered and report.complete
            if complete_unfiltered:
                records.append(
                    OutRecord(
                        self.topics.snapshot_topic,
                        meta_key(client_no),
                        ClientMeta(started_at, str(request.requestId)).to_bytes(),
                        partition=partition,
                    )
                )
            await self._finish(publisher, partition, position, records, events, result)
            for ev in events:
                CHANGE_EVENTS.labels(ev.kind).inc()
            LAST_SUCCESS.labels(str(client_no)).set(time.time())
            bound.info(
                "run finished",
                status=result.status.value,
                counts=result.counts,
                customers=result.customersRead,
                seconds=result.durationSeconds,
            )
            return result
        finally:
            # What was committed before a failure reaches the cache too. A transaction that was in
            # flight is waited for; if it failed, its error replaces the run's (the worker then
            # restores the partition before a retry, in case the commit landed after all).
            try:
                await self._settle(run)
            finally:
                self._apply(run)
                self.store.drop_seen(client_no)
            RUN_IN_PROGRESS.labels(str(client_no)).set(0)

    async def fail(
        self,
        request: FetchRequest,
        publisher: PartitionPublisher,
        partition: int,
        position: RequestPosition | None,
        error: str,
        extra: list[OutRecord] | None = None,
    ) -> RunResult:
        """Answer the request with a failed result (and optional DLQ record) in its last transaction."""
        result = self._result(request, RunStatus.FAILED, datetime.now(UTC), time.monotonic(), None, Counter())
        result.error = error
        await self._finish(publisher, partition, position, list(extra or []), [], result)
        return result

    # --- pieces ----------------------------------------------------------------------------------

    async def _commit_pages(self, run: RunState, pages: list[Page], publisher: PartitionPublisher) -> None:
        client_no = run.request.clientNo
        customers = [c for page in pages for c in page.customers]
        numbers = [c.customerNo for c in customers]
        stored = self.store.get_raw_states(client_no, numbers, mark_seen=True)
        ctx: EventContext | None = None
        events: list[OutEvent] = []
        snapshot: list[tuple[bytes, bytes]] = []
        fields, declared = self._fields, self._declared
        for customer in customers:
            state = customer_state(customer, fields, declared)
            raw = stored.get(customer.customerNo)
            if raw is not None and stores_state(raw, orjson.dumps(state)):
                continue  # unchanged, the common case: nothing to decode or diff
            before = decode_state(raw) if raw is not None else None
            changes = diff_customer(customer.customerNo, before, state, self.rules, baseline=run.baseline)
            if changes:
                ctx = ctx or self._context(run.request)
                events += [build_event(change, ctx) for change in changes]
            if needs_snapshot_update(before, state):
                rev = (before.rev if before else 0) + (1 if changes else 0)
                snapshot.append((snapshot_key(client_no, customer.customerNo), encode_state(state, rev)))
        run.customers += len(customers)
        if run.customers // TRIM_EVERY != (run.customers - len(customers)) // TRIM_EVERY:
            release_free_memory()
        if events or snapshot:
            records = self._event_records(events)
            topic = self.topics.snapshot_topic
            records += [OutRecord(topic, k, v, partition=run.partition) for k, v in snapshot]
            while len(run.inflight) >= MAX_INFLIGHT:
                await asyncio.shield(run.inflight.popleft())
            previous = run.inflight[-1] if run.inflight else None
            run.inflight.append(
                asyncio.create_task(self._publish(run, publisher, records, events, snapshot, previous))
            )
            if len(run.unapplied) >= APPLY_BATCH:
                self._apply(run)

    async def _publish(
        self,
        run: RunState,
        publisher: PartitionPublisher,
        records: list[OutRecord],
        events: list[OutEvent],
        snapshot: list[tuple[bytes, bytes]],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Commit one page transaction after the one before it (not at all if that one failed),
        then, with no await in between, take note of what it committed."""
        if previous is not None:
            await asyncio.shield(previous)
        committed = await publisher.commit(records)
        last = committed.last_offsets.get((self.topics.snapshot_topic, run.partition))
        for key, value in snapshot:
            run.unapplied.add(key, value)
        if last is not None:
            run.next_offset = last + 1
        kinds = Counter(ev.kind for ev in events)
        run.counts.update(kinds)
        for kind, n in kinds.items():
            CHANGE_EVENTS.labels(kind).inc(n)

    async def _settle(self, run: RunState) -> None:
        """Wait for every page transaction in flight; raise the first failure."""
        tasks = list(run.inflight)
        run.inflight.clear()
        # shielded: a cancelled run must not cancel a commit half-way
        outcomes = await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _apply(self, run: RunState) -> None:
        """Write the committed snapshot records of the run that are not in the cache yet."""
        if len(run.unapplied) or run.next_offset is not None:
            self.store.apply(run.partition, run.unapplied.records(), run.next_offset)
            run.unapplied = Unapplied()
            run.next_offset = None

    async def _removals(
        self, run: RunState, report: ReadReport
    ) -> tuple[list[OutRecord], list[OutEvent], int, list[str]]:
        """Removal events and tombstones of confirmed removals, or (held, gaps) counts."""
        request = run.request
        if request.is_filtered or not report.complete:
            return [], [], 0, []
        candidates = list(self.store.unseen(request.clientNo))
        if not candidates:
            return [], [], 0, []
        sem = asyncio.Semaphore(self.settings.api.concurrency)

        async def confirm(customer_no: str) -> bool:
            async with sem:
                return await self.api.get_customer(request.clientNo, customer_no) is None

        absent = await asyncio.gather(*(confirm(no) for no, _ in candidates))
        removed: list[tuple[str, StoredState]] = [
            c for c, gone in zip(candidates, absent, strict=True) if gone
        ]
        gaps = [no for (no, _), gone in zip(candidates, absent, strict=True) if not gone]
        if gaps:
            log.warning(
                "coverage gap: customers missed by the read still exist",
                clientNo=request.clientNo,
                count=len(gaps),
            )
        snapshot_size = self.store.count(request.clientNo)
        if removed and len(removed) > self.settings.sync.removal_hold_fraction * snapshot_size:
            log.warning(
                "removals held", clientNo=request.clientNo, removals=len(removed), snapshot=snapshot_size
            )
            return [], [], len(removed), gaps
        ctx = self._context(request)
        events = [build_event(removal(no, old), ctx) for no, old in removed]
        tombstones = [
            OutRecord(
                self.topics.snapshot_topic, snapshot_key(request.clientNo, no), None, partition=run.partition
            )
            for no, _ in removed
        ]
        return tombstones, events, 0, gaps

    async def _finish(
        self,
        publisher: PartitionPublisher,
        partition: int,
        position: RequestPosition | None,
        records: list[OutRecord],
        events: list[OutEvent],
        result: RunResult,
    ) -> None:
        out = self._event_records(events) + records
        out.append(
            OutRecord(
                self.topics.results_topic,
                str(result.clientNo).encode(),
                result.model_dump_json().encode(),
                headers=[("content-type", b"application/json")],
            )
        )
        offsets = {position.tp: position.offset + 1} if position else None
        committed = await publisher.commit(out, offsets, position.group_id if position else None)
        snapshot = [(r.key, r.value) for r in records if r.topic == self.topics.snapshot_topic]
        if snapshot:
            last = committed.last_offsets.get((self.topics.snapshot_topic, partition))
            self.store.apply(partition, snapshot, last + 1 if last is not None else None)
        RUNS.labels(result.status.value).inc()
        RUN_DURATION.observe(result.durationSeconds)

    def _event_records(self, events: list[OutEvent]) -> list[OutRecord]:
        return [OutRecord(self.topics.event_topic(e.topic_kind), e.key, e.value, e.headers) for e in events]

    def _context(self, request: FetchRequest) -> EventContext:
        return EventContext(
            client_no=request.clientNo,
            request_id=request.requestId,
            observed_at=datetime.now(UTC),
            source=self.settings.sync.source,
            schema_base_url=self.settings.sync.schema_base_url,
        )

    def _result(
        self,
        request: FetchRequest,
        status: RunStatus,
        started_at: datetime,
        t0: float,
        report: ReadReport | None,
        counts: Mapping[str, int],
        *,
        held: int = 0,
        gaps: list[str] | None = None,
    ) -> RunResult:
        return RunResult(
            requestId=str(request.requestId),
            clientNo=request.clientNo,
            status=status,
            counts=dict(counts),
            pages=report.pages_read if report else 0,
            slices=report.slices if report else 0,
            customersRead=report.customers if report else 0,
            coverage=report.coverage if report else None,
            coverageGaps=gaps or [],
            removalsHeld=held,
            filters=request.filter_query,
            reason=request.reason,
            startedAt=started_at,
            finishedAt=datetime.now(UTC),
            durationSeconds=round(time.monotonic() - t0, 3),
            retries=dict(report.retries) if report else {},
        )

    @staticmethod
    def _log_progress(bound: Any, report: ReadReport, t0: float) -> None:
        elapsed = max(time.monotonic() - t0, 1e-6)
        rate = report.customers / elapsed
        remaining = max(report.pages_total - report.pages_read, 0)
        per_page = elapsed / report.pages_read if report.pages_read else 0.0
        bound.info(
            "run progress",
            pages=report.pages_read,
            pagesTotal=report.pages_total,
            customers=report.customers,
            customersPerSecond=round(rate),
            etaSeconds=round(remaining * per_page),
        )
