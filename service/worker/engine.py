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
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from pydantic import BaseModel

from service.amili import AmiliClient, Customer, Page, ReadReport
from service.config import Settings
from service.kafka.publisher import OutRecord, PartitionPublisher
from service.logs import get_logger
from service.metrics import CHANGE_EVENTS, LAST_SUCCESS, RUN_DURATION, RUN_IN_PROGRESS, RUNS
from service.snapshot.store import ClientMeta, SnapshotStore, encode_state, meta_key
from service.sync.diff import StoredState, diff_customer, needs_snapshot_update, removal
from service.sync.events import EventContext, OutEvent, build_event, snapshot_key
from service.sync.requests import FetchRequest
from service.sync.results import RunResult, RunStatus
from service.sync.state import TrackingRules, tracked_state

log = get_logger(__name__)

ProgressCallback = Callable[[ReadReport], None]


@dataclass
class RequestPosition:
    """Where the request came from: its offset is committed in the run's last transaction."""

    tp: TopicPartition
    offset: int
    group_id: str


@dataclass
class RunState:
    request: FetchRequest
    partition: int
    started_at: datetime
    baseline: bool
    counts: Counter[str] = field(default_factory=Counter)
    customers: int = 0


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


class SyncEngine:
    def __init__(self, settings: Settings, store: SnapshotStore, api: AmiliClient) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.store = store
        self.api = api
        self.rules = TrackingRules.from_config(settings.sync.groups, settings.sync.include_personal_fields)
        self._fields = self.rules.state_fields()

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
        self.store.reset_seen()
        read = self.api.read(client_no, request.filter_query or None)
        pending: list[Page] = []
        last_log = time.monotonic()
        try:
            async for page in read:
                pending.append(page)
                if len(pending) >= self.settings.sync.pages_per_transaction:
                    await self._commit_pages(run, pending, publisher)
                    pending = []
                if on_progress:
                    on_progress(read.report)
                if time.monotonic() - last_log >= self.settings.sync.progress_interval:
                    last_log = time.monotonic()
                    self._log_progress(bound, read.report, t0)
            if pending:
                await self._commit_pages(run, pending, publisher)
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
        old = self.store.get_states(client_no, numbers)
        ctx = self._context(run.request)
        events: list[OutEvent] = []
        snapshot: list[tuple[bytes, bytes]] = []
        for customer in customers:
            state = tracked_state(customer_fields(customer, self._fields), self.rules)
            before = old.get(customer.customerNo)
            changes = diff_customer(customer.customerNo, before, state, self.rules, baseline=run.baseline)
            events += [build_event(change, ctx) for change in changes]
            if needs_snapshot_update(before, state):
                rev = (before.rev if before else 0) + (1 if changes else 0)
                snapshot.append((snapshot_key(client_no, customer.customerNo), encode_state(state, rev)))
        run.customers += len(customers)
        if events or snapshot:
            records = self._event_records(events)
            records += [
                OutRecord(self.topics.snapshot_topic, k, v, partition=run.partition) for k, v in snapshot
            ]
            committed = await publisher.commit(records)
            last = committed.last_offsets.get((self.topics.snapshot_topic, run.partition))
            self.store.apply(run.partition, snapshot, last + 1 if last is not None else None)
            for ev in events:
                run.counts[ev.kind] += 1
                CHANGE_EVENTS.labels(ev.kind).inc()
        self.store.mark_seen(numbers)

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
