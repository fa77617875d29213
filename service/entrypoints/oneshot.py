"""`amili-sync sync --client N`: one run for operators, same engine and same exactly-once publishing.

No request message is needed: the run uses the transactional producer of the client's request
partition (the partition the client's requests hash to), so it fences a worker's producer for
that partition for the duration: a request that worker was running is aborted and redelivered,
and the two never interleave snapshot writes.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime

from aiokafka.partitioner import DefaultPartitioner
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from service import tracing
from service.amili import AmiliClient, AmiliError, ReadReport
from service.config import Settings
from service.engine import SyncEngine
from service.entrypoints.process import tune_process
from service.kafka.connection import KafkaConnectionError, check_connection, connection_kwargs
from service.kafka.publisher import PartitionPublisher, transactional_id
from service.kafka.topics import TopicLayoutError, ensure_topics
from service.snapshot.restore import restore_partitions
from service.snapshot.store import SnapshotStore
from service.sync.requests import FetchRequest, Filters
from service.sync.results import RunResult, RunStatus


def client_partition(client_no: int, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the key `str(clientNo)` (murmur2)."""
    key = str(client_no).encode()
    return int(DefaultPartitioner()(key, list(range(partitions)), list(range(partitions))))


async def sync_once(settings: Settings, client_no: int, filters: dict[str, str], progress: bool) -> int:
    console = Console(stderr=True)
    try:
        await check_connection(settings.kafka)
        counts = await ensure_topics(
            settings.topics, connection_kwargs(settings.kafka), groups=settings.sync.groups
        )
    except (KafkaConnectionError, TopicLayoutError) as exc:
        console.print(f"[red]cannot start:[/red] {exc}")
        return 1
    partition = client_partition(client_no, counts[settings.topics.requests_topic])
    request = FetchRequest(
        requestId=uuid.uuid4(),
        clientNo=client_no,
        requestedAt=datetime.now(UTC),
        filters=Filters.model_validate(filters) if filters else None,
        reason="amili-sync sync",
    )
    tune_process()
    store = SnapshotStore(settings.state_dir / "snapshot.sqlite")
    publisher = PartitionPublisher(
        connection_kwargs(settings.kafka),
        transactional_id(settings, partition),
        settings.kafka.transaction_timeout_ms,
    )
    await publisher.start()
    try:
        await restore_partitions(  # a worker may have owned the partition since this cache moved
            store,
            settings.topics.snapshot_topic,
            [partition],
            connection_kwargs(settings.kafka),
            new_ownership=True,
            process_from=settings.sync.restore_process_from,
        )
        async with AmiliClient(settings.api) as api:
            engine = SyncEngine(settings, store, api)
            show = progress and sys.stderr.isatty()
            with Progress(
                TextColumn(f"client {client_no}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("pages"),
                TextColumn("{task.fields[customers]} customers"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                disable=not show,
            ) as bar:
                task = bar.add_task("sync", total=None, customers=0)

                def on_progress(report: ReadReport) -> None:
                    bar.update(
                        task,
                        completed=report.pages_read,
                        total=report.pages_total or None,
                        customers=report.customers,
                    )

                attributes: dict[str, str | int] = {
                    "amili.request_id": str(request.requestId),
                    "amili.client_no": request.clientNo,
                }
                with tracing.run_span(None, attributes):  # a new trace (tracing on): no request message
                    try:
                        result = await engine.run(
                            request, publisher, partition, None, on_progress=on_progress
                        )
                    except AmiliError as exc:
                        result = await engine.fail(request, publisher, partition, None, str(exc))
    finally:
        await publisher.stop()
        store.close()
    console.print(summary_table(result))
    return 0 if result.status in (RunStatus.SUCCEEDED, RunStatus.SUPERSEDED) else 1


def summary_table(result: RunResult) -> Table:
    table = Table(title=f"sync of client {result.clientNo}: {result.status.value}", min_width=60)
    table.add_column("what")
    table.add_column("value", justify="right")
    for kind, n in sorted(result.counts.items()):
        table.add_row(f"{kind} events", str(n))
    table.add_row("customers read", str(result.customersRead))
    table.add_row("pages", str(result.pages))
    table.add_row("slices", str(result.slices))
    table.add_row("coverage", str(result.coverage))
    table.add_row("removals held", str(result.removalsHeld))
    table.add_row("coverage gaps", str(len(result.coverageGaps)))
    table.add_row("seconds", f"{result.durationSeconds:.1f}")
    if result.error:
        table.add_row("error", result.error)
    return table
