"""One sync run: read the client's customers, diff them against the snapshot, publish exactly once.

The run commits in pieces. Every Kafka transaction carries the change events of a set of customers
together with the new snapshot records of exactly those customers, and the local cache is updated
only after the transaction commits. The last transaction carries the removals, the run metadata,
the run result and (for a request) the request's offset. A crash anywhere therefore loses nothing
and repeats nothing: the redelivered request re-reads the API and finds no difference for what an
earlier transaction already committed (docs/design-notes.md).

The steps of `SyncEngine.run`, in order:
1. `_superseded`: a request older than the client's last completed run is answered at once;
2. `_read`: pages from the source, each diffed as it arrives; the changed customers committed a
   page's worth per transaction (unchanged ones cost no transaction);
3. `_reconcile`: snapshot customers the read did not see, asked for one by one (removed or missed);
4. `_finish`: removals, run metadata, the result and the request offset in the last transaction.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from service import tracing
from service.amili.models import DECLARED_FIELDS, Customer, NamePrefixes, ReadReport
from service.config import Settings
from service.engine.extract import customer_state
from service.engine.ports import (
    CustomerSource,
    CustomerStream,
    OutRecord,
    Publisher,
    RequestPosition,
    SnapshotCache,
)
from service.engine.reconcile import Reconciliation, reconcile_unseen
from service.engine.transactions import TransactionPipeline
from service.logs import get_logger
from service.metrics import CHANGE_EVENTS, LAST_SUCCESS, RUN_DURATION, RUN_IN_PROGRESS, RUNS
from service.sync.diff import diff_customer, needs_snapshot_update, removal
from service.sync.events import EventContext, OutEvent, build_event, snapshot_key
from service.sync.records import (
    ClientMeta,
    StoredState,
    decode_entry,
    encode_removed,
    encode_state,
    meta_key,
    stores_state,
)
from service.sync.requests import FetchRequest
from service.sync.results import RunResult, RunStatus, bounded_error
from service.sync.state import TrackingRules
from service.tuning import release_free_memory

__all__ = ["ProgressCallback", "SyncEngine"]

log = get_logger(__name__)

ProgressCallback = Callable[[ReadReport], None]

# Every this many customers a run hands the allocator's free pages back to the system
# (`release_free_memory`): without it the RSS grows with the size of the client.
TRIM_EVERY = 20_000

# A page is diffed this many customers at a time, with a turn of the event loop after each step.
# The producer's transaction round trips and the reader's responses move only when the loop gets a
# turn: a page of 1,000 diffed in one go (~60-100 ms of CPU) held them back, and a first sync of
# 100,000 sat idle ~40 % of its time, waiting for commits and pages that had stalled meanwhile
# (6,800-8,000 customers/s; in steps, 9,200-11,500/s on the same bench: docs/performance.md, 4.17).
# 256: one lookup statement of the cache per step (`store.LOOKUP_CHUNK` takes up to 512); steps of
# 64 measured no different.
DIFF_STEP = 256


@dataclass
class _Run:
    """What one run carries from step to step."""

    request: FetchRequest
    partition: int
    baseline: bool
    pipeline: TransactionPipeline
    log: Any
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    t0: float = field(default_factory=time.monotonic)
    customers: int = 0

    @property
    def client_no(self) -> int:
        return self.request.clientNo


async def _settle(pipeline: TransactionPipeline) -> None:
    """Wait for every transaction in flight, then write what they committed to the cache."""
    await pipeline.settle()
    pipeline.apply()


@dataclass
class _Changes:
    """The events and snapshot records of the changed customers not yet queued for a transaction."""

    events: list[OutEvent] = field(default_factory=list)
    snapshot: list[tuple[bytes, bytes]] = field(default_factory=list)
    customers: int = 0  # changed customers


class SyncEngine:
    def __init__(self, settings: Settings, cache: SnapshotCache, source: CustomerSource) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.cache = cache
        self.source = source
        self.rules = TrackingRules.from_config(settings.sync.groups, settings.sync.include_personal_fields)
        self._fields = self.rules.state_fields()
        self._declared = DECLARED_FIELDS
        # A transaction covers `pages_per_transaction` pages' worth of *changed* customers (full
        # pages of `page_size`): slices end in short pages (a 1,000,000-customer client read in name
        # slices averages ~150 customers a page), and a transaction per short page cost more in
        # Kafka round trips than the whole diff. A first sync changes every customer, so it still
        # commits every ~1,000 customers; a steady run (1% changed) commits one transaction per
        # ~100,000 customers read instead of one per ~1,000: the worker's Kafka CPU in a steady run
        # of 100,000 fell from 3.9 to 0.5-0.9 µs a customer, and the consumer no longer waits for a
        # commit every few pages while the reader's pages pile up (docs/performance.md, "Steady runs").
        self._per_transaction = settings.sync.pages_per_transaction * settings.api.page_size

    # --- the run ---------------------------------------------------------------------------------

    async def run(
        self,
        request: FetchRequest,
        publisher: Publisher,
        partition: int,
        position: RequestPosition | None,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> RunResult:
        meta = self.cache.get_meta(request.clientNo)
        run = _Run(
            request,
            partition,
            baseline=meta is None,
            pipeline=TransactionPipeline(publisher, self.cache, self.topics.snapshot_topic, partition),
            log=log.bind(requestId=str(request.requestId), clientNo=request.clientNo),
        )
        if self._superseded(run, meta):
            result = self._result(run, RunStatus.SUPERSEDED)
            await self._finish(run, publisher, position, [], [], result)
            return result

        async with self._running(run):
            report = await self._read(run, on_progress)
            found = await self._reconcile(run, report)
            result = self._result(
                run, RunStatus.REMOVALS_HELD if found.held else RunStatus.SUCCEEDED, report, found
            )
            events, records = self._removal_records(run, found)
            records += self._meta_records(run)
            result.counts = dict(Counter(result.counts) + Counter(ev.kind for ev in events))
            await self._finish(run, publisher, position, records, events, result)
            for ev in events:
                CHANGE_EVENTS.labels(ev.kind).inc()
            LAST_SUCCESS.labels(str(run.client_no)).set(time.time())
            run.log.info(
                "run finished",
                status=result.status.value,
                counts=result.counts,
                customers=result.customersRead,
                seconds=result.durationSeconds,
            )
            return result

    async def fail(
        self,
        request: FetchRequest,
        publisher: Publisher,
        partition: int,
        position: RequestPosition | None,
        error: str,
        extra: list[OutRecord] | None = None,
    ) -> RunResult:
        """Answer the request with a failed result (and optional DLQ record) in its last transaction."""
        run = _Run(
            request,
            partition,
            baseline=False,
            pipeline=TransactionPipeline(publisher, self.cache, self.topics.snapshot_topic, partition),
            log=log,
        )
        result = self._result(run, RunStatus.FAILED)
        result.error = bounded_error(error)
        await self._finish(run, publisher, position, list(extra or []), [], result)
        return result

    # --- steps -----------------------------------------------------------------------------------

    def _superseded(self, run: _Run, meta: ClientMeta | None) -> bool:
        last = meta.last_completed_run_started_at if meta else None
        if last is not None and run.request.requestedAt < last:
            run.log.info("request superseded", lastRunStartedAt=last.isoformat())
            return True
        return False

    @asynccontextmanager
    async def _running(self, run: _Run) -> AsyncIterator[None]:
        """Around the run: the in-progress gauge and the seen-marks; on the way out, whatever the
        outcome, every transaction in flight settled and what was committed written to the cache.
        A failed transaction's error replaces the run's (the worker then restores the partition
        before a retry, in case the commit landed after all)."""
        RUN_IN_PROGRESS.labels(str(run.client_no)).set(1)
        run.log.info("run started", filters=run.request.filter_query, baseline=run.baseline)
        self.cache.reset_seen(run.client_no)
        try:
            yield
        finally:
            try:
                await run.pipeline.settle()
            finally:
                run.pipeline.apply()
                self.cache.drop_seen(run.client_no)
                RUN_IN_PROGRESS.labels(str(run.client_no)).set(0)

    async def _read(self, run: _Run, on_progress: ProgressCallback | None) -> ReadReport:
        """Read every page, diffing it as it arrives; a transaction is committed whenever the
        changed customers reach `pages_per_transaction` pages' worth, and once at the end. The last
        transactions may still be committing on return (`_reconcile` settles them)."""
        prefixes = self._name_prefixes(run)
        stream = self.source.read(
            run.client_no,
            run.request.filter_query or None,
            known_names=self._known_names(run) if prefixes is None else (),
            name_prefixes=prefixes,
        )
        changes = _Changes()
        last_log = time.monotonic()
        try:
            async for page in stream:
                await self._diff_in_steps(run, page.customers, changes)
                if changes.customers >= self._per_transaction:
                    await self._submit(run, changes)
                    changes = _Changes()
                if on_progress:
                    on_progress(stream.report)
                if time.monotonic() - last_log >= self.settings.sync.progress_interval:
                    last_log = time.monotonic()
                    self._log_progress(run, stream.report)
            await self._submit(run, changes)
            self._keep_name_prefixes(run, stream)
        finally:
            await stream.aclose()  # a failed or cancelled run leaves no fetch running
        return stream.report

    async def _commit_customers(self, run: _Run, customers: Sequence[Customer], *, mark_seen: bool) -> None:
        """Diff `customers` against the cache and queue one transaction with their events and
        snapshot records (none when nothing changed)."""
        changes = _Changes()
        self._diff(run, customers, changes, mark_seen=mark_seen)
        await self._submit(run, changes)

    async def _diff_in_steps(self, run: _Run, customers: Sequence[Customer], changes: _Changes) -> None:
        """`_diff` a page `DIFF_STEP` customers at a time, giving the event loop a turn after each."""
        for at in range(0, len(customers), DIFF_STEP):
            self._diff(run, customers[at : at + DIFF_STEP], changes, mark_seen=True)
            await asyncio.sleep(0)

    def _diff(self, run: _Run, customers: Sequence[Customer], changes: _Changes, *, mark_seen: bool) -> None:
        """Diff `customers` against the cache, adding the events and snapshot records of the
        changed ones to `changes` (nothing is kept of an unchanged customer)."""
        client_no = run.client_no
        stored = self.cache.get_raw_states(client_no, [c.customerNo for c in customers], mark_seen=mark_seen)
        events, snapshot = changes.events, changes.snapshot
        ctx: EventContext | None = None  # per step: its events' time is when it was diffed
        fields, declared = self._fields, self._declared
        for customer in customers:
            state = customer_state(customer, fields, declared)
            raw = stored.get(customer.customerNo)
            if raw is not None and stores_state(raw, orjson.dumps(state)):
                continue  # unchanged, the common case: nothing to decode or diff
            before, rev = decode_entry(raw)  # rev: kept by a removal marker when `before` is None
            diffs = diff_customer(
                customer.customerNo, before, state, self.rules, baseline=run.baseline, removed_rev=rev
            )
            update = needs_snapshot_update(before, state)
            if diffs or update:
                changes.customers += 1
            if diffs:
                ctx = ctx or self._context(run.request)
                events += [build_event(change, ctx) for change in diffs]
            if update:
                rev += 1 if diffs else 0
                snapshot.append((snapshot_key(client_no, customer.customerNo), encode_state(state, rev)))
        self._count_customers(run, len(customers))

    async def _submit(self, run: _Run, changes: _Changes) -> None:
        """Queue one transaction with the events and snapshot records of `changes`, if any."""
        events, snapshot = changes.events, changes.snapshot
        if events or snapshot:
            records = self._event_records(events)
            records += [
                OutRecord(self.topics.snapshot_topic, k, v, partition=run.partition) for k, v in snapshot
            ]
            await run.pipeline.submit(records, snapshot, Counter(ev.kind for ev in events))

    async def _reconcile(self, run: _Run, report: ReadReport) -> Reconciliation:
        """Snapshot customers the read did not see: hold, or GET each (removed or missed).

        The read's last transactions settle and are written to the cache meanwhile: which cached
        customers the read did not see does not depend on them, and the GETs take about as long as
        the last commits (up to ~0.1 s off a steady run of 100,000: docs/performance.md, 4.20).
        Their failure fails the run, as a failed commit always does."""
        # a filtered read never says anything about the others
        unseen = [] if run.request.is_filtered else list(self.cache.unseen(run.client_no))
        settled = asyncio.create_task(_settle(run.pipeline))
        try:
            found = await self._confirm_unseen(run, unseen, settled) if unseen else Reconciliation()
        finally:
            # shielded: cancelled again while waiting, the commits still finish and are applied
            await asyncio.shield(settled)
        if found.held:
            run.log.warning("removals held: too many customers missing from the read", candidates=found.held)
        if found.found:
            run.log.warning("coverage gap: customers missed by the read still exist", count=len(found.found))
            await self._commit_customers(run, found.found, mark_seen=False)
            await _settle(run.pipeline)
        return found

    async def _confirm_unseen(
        self, run: _Run, unseen: list[tuple[str, StoredState]], settled: asyncio.Task[None]
    ) -> Reconciliation:
        """`reconcile_unseen` while the read's last transactions may still be settling. The hold is
        decided on the snapshot's count after they are applied, as if they had been: applying them
        only adds present customers, so a count taken before that holds nothing decides the same."""
        fraction = self.settings.sync.removal_hold_fraction
        count = self.cache.count(run.client_no)  # a count of a million rows: ~0.1 s
        if len(unseen) > fraction * count:
            await asyncio.shield(settled)
            count = self.cache.count(run.client_no)
        return await reconcile_unseen(
            unseen,
            count,
            fraction,
            lambda no: self.source.get_customer(run.client_no, no),
            self.settings.api.concurrency,
        )

    def _removal_records(self, run: _Run, found: Reconciliation) -> tuple[list[OutEvent], list[OutRecord]]:
        if not found.removed:
            return [], []
        ctx = self._context(run.request)
        events = [build_event(removal(no, old), ctx) for no, old in found.removed]
        # a marker that keeps the revision, not a tombstone: a re-created customer continues from it
        markers = [
            OutRecord(
                self.topics.snapshot_topic,
                snapshot_key(run.client_no, no),
                encode_removed(old.rev + 1),
                partition=run.partition,
            )
            for no, old in found.removed
        ]
        return events, markers

    def _meta_records(self, run: _Run) -> list[OutRecord]:
        """The client's run metadata, after every unfiltered run that got this far, whatever the
        read's coverage: the next run is then a steady one (created, not baseline; superseded)."""
        if run.request.is_filtered:
            return []
        meta = ClientMeta(run.started_at, str(run.request.requestId))
        return [
            OutRecord(
                self.topics.snapshot_topic, meta_key(run.client_no), meta.to_bytes(), partition=run.partition
            )
        ]

    async def _finish(
        self,
        run: _Run,
        publisher: Publisher,
        position: RequestPosition | None,
        records: list[OutRecord],
        events: list[OutEvent],
        result: RunResult,
    ) -> None:
        """The last transaction: events, records, the result and the request offset."""
        out = self._event_records(events) + records
        out.append(
            OutRecord(
                self.topics.results_topic,
                str(result.clientNo).encode(),
                result.model_dump_json().encode(),
                headers=[("content-type", b"application/json")],
            )
        )
        committed = await publisher.commit(out, position)
        snapshot = [(r.key, r.value) for r in records if r.topic == self.topics.snapshot_topic]
        if snapshot:
            last = committed.last_offsets.get((self.topics.snapshot_topic, run.partition))
            self.cache.apply(run.partition, snapshot, last + 1 if last is not None else None)
        RUNS.labels(result.status.value).inc()
        RUN_DURATION.observe(result.durationSeconds)

    # --- helpers ---------------------------------------------------------------------------------

    def _name_prefixes(self, run: _Run) -> NamePrefixes | None:
        """What the client's last complete read split teaches this one, instead of a pass over the
        snapshot's names: ~0.7 CPU s at 100,000 customers (an SQLite scan, a fold and a sort) in a
        thread beside the read, and the read's first splits, made before the pass ends, planned
        without it (docs/performance.md, 4.15)."""
        if not self.settings.sync.learn_names_from_snapshot:
            return None
        raw = self.cache.name_prefixes(run.client_no)
        prefixes = NamePrefixes.from_bytes(raw) if raw is not None else None
        return prefixes if prefixes is not None and prefixes.prefixes else None

    def _keep_name_prefixes(self, run: _Run, stream: CustomerStream) -> None:
        """Keep what a read of the whole client split for the next (a filtered read's prefixes say
        less about the client, so it leaves the last whole read's in place)."""
        if run.request.filter_query or not self.settings.sync.learn_names_from_snapshot:
            return
        prefixes = stream.name_prefixes()
        if prefixes.prefixes:
            self.cache.save_name_prefixes(run.client_no, run.partition, prefixes.to_bytes())

    def _known_names(self, run: _Run) -> Iterator[str]:
        """The snapshot's names teach the slicing the characters that follow a dense prefix, also
        where the API's sample pages do not show them (pages ordered by name)."""
        if run.baseline or not self.settings.sync.learn_names_from_snapshot:
            return iter(())
        return self.cache.names(run.client_no)

    def _count_customers(self, run: _Run, n: int) -> None:
        before, run.customers = run.customers, run.customers + n
        if run.customers // TRIM_EVERY != before // TRIM_EVERY:
            release_free_memory()

    def _event_records(self, events: list[OutEvent]) -> list[OutRecord]:
        topic = self._event_topic
        return [OutRecord(topic(e.topic_kind), e.key, e.value, e.headers) for e in events]

    @functools.cache  # noqa: B019 - a handful of kinds, one engine per worker: once per kind, not per event
    def _event_topic(self, kind: str) -> str:
        return self.topics.event_topic(kind)

    def _context(self, request: FetchRequest) -> EventContext:
        return EventContext(
            client_no=request.clientNo,
            request_id=request.requestId,
            observed_at=datetime.now(UTC),
            source=self.settings.sync.source,
            schema_base_url=self.settings.sync.schema_base_url,
            traceparent=tracing.current_traceparent(),  # the run's span: ce_traceparent on its events
        )

    def _result(
        self,
        run: _Run,
        status: RunStatus,
        report: ReadReport | None = None,
        found: Reconciliation | None = None,
    ) -> RunResult:
        request = run.request
        return RunResult(
            requestId=str(request.requestId),
            clientNo=request.clientNo,
            status=status,
            counts=dict(run.pipeline.counts),
            pages=report.pages_read if report else 0,
            slices=report.slices if report else 0,
            customersRead=report.customers if report else 0,
            coverage=report.coverage if report else None,
            coverageGaps=found.gap_sample if found else [],
            coverageGapCount=len(found.found) if found else 0,
            removalsHeld=found.held if found else 0,
            filters=request.filter_query,
            reason=request.reason,
            startedAt=run.started_at,
            finishedAt=datetime.now(UTC),
            durationSeconds=round(time.monotonic() - run.t0, 3),
            retries=dict(report.retries) if report else {},
            apiRequests=report.api_requests if report else 0,
            requestsPer1000=report.requests_per_1000 if report else None,
            unreachable=report.unreachable if report else None,
            sliceGapCount=report.gap_count if report else 0,
            sliceGaps=list(report.gaps) if report else [],
        )

    @staticmethod
    def _log_progress(run: _Run, report: ReadReport) -> None:
        elapsed = max(time.monotonic() - run.t0, 1e-6)
        remaining = max(report.pages_total - report.pages_read, 0)
        per_page = elapsed / report.pages_read if report.pages_read else 0.0
        run.log.info(
            "run progress",
            pages=report.pages_read,
            pagesTotal=report.pages_total,
            customers=report.customers,
            customersPerSecond=round(report.customers / elapsed),
            etaSeconds=round(remaining * per_page),
        )
