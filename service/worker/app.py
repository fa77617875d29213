"""The worker: FastStream consumer of fetch requests, wired to the sync engine (`amili-sync run`).

- The request topic is consumed with `AckPolicy.MANUAL`: FastStream never commits; the offset of a
  request moves only inside the run's last Kafka transaction (`send_offsets_to_transaction`).
- On assignment a partition is paused first (before any await), its transactional producer started
  (fencing a zombie), its snapshot partition restored, then resumed (`docs/architecture.md`, the traps).
- On revocation the partition lock is taken (waiting for a running page transaction) and the
  producer closed.
- A request that fails for a reason other than the API's answer (Kafka down, fenced, a bug) is
  nacked after a pause and redelivered; the partition is restored again first, so the retry sees
  every snapshot record that was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ProducerFenced
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI

from service import tracing
from service.amili import (
    AmiliBadRequest,
    AmiliClient,
    AmiliError,
    AmiliForbidden,
    AmiliNotFound,
    AmiliQueryExpired,
)
from service.config import Settings
from service.engine import RequestPosition, SyncEngine
from service.kafka.connection import KafkaConnectionError, check_connection, connection_kwargs
from service.kafka.dlq import dlq_record
from service.kafka.publisher import PartitionPublisher, transactional_id
from service.kafka.topics import TopicLayoutError, ensure_topics
from service.logs import get_logger
from service.metrics import DLQ_RECORDS, PARTITIONS_OWNED
from service.snapshot.restore import restore_partitions
from service.snapshot.store import SnapshotStore
from service.sync.requests import FetchRequest, MalformedRequest, parse_request
from service.version import VERSION
from service.worker.contract import TITLE, declare_publishers, subscriber_options
from service.worker.health import HealthServer
from service.worker.process import tune_process
from service.worker.security import faststream_security
from service.worker.telemetry import telemetry_middlewares

log = get_logger(__name__)

RETRY_PAUSE_SECONDS = 5.0


async def _raw_body(message: Any) -> bytes:
    """FastStream decoder: hand the handler the record's bytes as they are (no JSON decoding)."""
    return bytes(message.body)


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connection = connection_kwargs(settings.kafka)
        self.store = SnapshotStore(settings.state_dir / "snapshot.sqlite")
        self.api = AmiliClient(settings.api)
        self.engine = SyncEngine(settings, self.store, self.api)
        self.publishers: dict[int, PartitionPublisher] = {}
        self.locks: dict[int, asyncio.Lock] = {}
        self.restoring: set[int] = set()
        self.running: dict[int, asyncio.Task[None]] = {}  # the run of each partition, if any
        self.interrupted: set[int] = set()
        self.broker = KafkaBroker(
            settings.kafka.bootstrap_servers,
            security=faststream_security(settings),
            client_id=settings.kafka.client_id,
            request_timeout_ms=settings.kafka.request_timeout_ms,
            graceful_timeout=30.0,
            logger=logging.getLogger("faststream.worker"),  # through structlog, like every other line
            middlewares=telemetry_middlewares(),  # the request message's span (tracing on)
            log_level=logging.DEBUG,  # "Received"/"Processed" per message only at debug level
        )
        self.subscriber = self.broker.subscriber(
            settings.topics.requests_topic,
            ack_policy=AckPolicy.MANUAL,
            listener=_Rebalance(self),
            decoder=_raw_body,  # the worker validates requests itself: a bad one goes to the DLQ
            **subscriber_options(settings),
        )
        self.subscriber(self._handle)
        declare_publishers(self.broker, settings)
        self.app = FastStream(self.broker, specification=AsyncAPI(title=TITLE, version=VERSION))

    # --- message handling -------------------------------------------------------------------------

    async def _handle(self, body: bytes, msg: KafkaMessage) -> None:
        record: ConsumerRecord[Any, Any] = msg.raw_message
        partition = record.partition
        lock = self.locks.get(partition)
        publisher = self.publishers.get(partition)
        if lock is None or publisher is None:
            return  # revoked meanwhile: the partition's next owner takes the request
        async with lock:
            if self.publishers.get(partition) is not publisher:
                return
            # The run is a child task, so that a revocation or a shutdown can interrupt it at once
            # instead of waiting for a long run (which would outlast the rebalance timeout and make
            # two workers fence each other in turn). Interrupting is safe at any await: an open
            # transaction is aborted (or its commit completes), the cache is only ever behind the
            # changelog, and the uncommitted request is redelivered to the partition's owner.
            run = asyncio.create_task(self.process(record, publisher))
            self.running[partition] = run
            try:
                await run
            except asyncio.CancelledError:
                if partition not in self.interrupted:
                    raise  # the handler itself is being cancelled
                log.info(
                    "run interrupted: partition revoked or worker stopping; the request is redelivered",
                    partition=partition,
                    offset=record.offset,
                )
            except ProducerFenced:
                # Another worker took the partition (this one is a zombie) or the transaction timed
                # out. Only a worker that still owns the partition may start a new producer with
                # its transactional id: a zombie doing so would fence the rightful owner.
                log.warning("producer fenced", partition=partition, offset=record.offset)
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                if self._still_owned(record) and self.publishers.get(partition) is publisher:
                    await self._retry_later(record, publisher, msg)
            except Exception:
                log.exception(
                    "request failed, will be retried",
                    topic=record.topic,
                    partition=partition,
                    offset=record.offset,
                )
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                await self._retry_later(record, publisher, msg)
            finally:
                self.running.pop(partition, None)
                self.interrupted.discard(partition)

    async def _retry_later(
        self, record: ConsumerRecord[Any, Any], publisher: PartitionPublisher, msg: KafkaMessage
    ) -> None:
        with contextlib.suppress(Exception):
            # a producer left in an error state (fenced, broker restarted mid-transaction) never
            # commits again: replace it; its start() aborts what was left open
            await self._replace_publisher(record.partition, publisher)
        with contextlib.suppress(Exception):
            await self._restore([record.partition])
        await msg.nack()

    def _still_owned(self, record: ConsumerRecord[Any, Any]) -> bool:
        consumer = self.subscriber.consumer
        return (
            consumer is not None and TopicPartition(record.topic, record.partition) in consumer.assignment()
        )

    def _interrupt(self, partitions: list[int]) -> None:
        for p in partitions:
            task = self.running.get(p)
            if task is not None and not task.done():
                self.interrupted.add(p)
                task.cancel()

    async def process(self, record: ConsumerRecord[Any, Any], publisher: PartitionPublisher) -> None:
        """One request message: its run (or its way to the DLQ), in the run's span."""
        attributes = {"messaging.kafka.partition": record.partition, "messaging.kafka.offset": record.offset}
        with tracing.run_span(record.headers, attributes):
            await self._process(record, publisher)

    async def _process(self, record: ConsumerRecord[Any, Any], publisher: PartitionPublisher) -> None:
        settings = self.settings
        position = RequestPosition(record.topic, record.partition, record.offset, settings.kafka.group_id)
        try:
            request = parse_request(record.key, record.value, settings.sync.max_request_bytes)
        except MalformedRequest as exc:
            log.warning(
                "malformed request to the DLQ",
                code=exc.code,
                reason=str(exc),
                partition=record.partition,
                offset=record.offset,
            )
            await publisher.commit([dlq_record(settings, record, exc.code, str(exc))], position)
            DLQ_RECORDS.labels(exc.code).inc()
            return
        # every log line of the run (engine, API reader, publisher) carries the request id and the
        # client; the binding lives in this task's context and ends with it
        tracing.annotate({"amili.request_id": str(request.requestId), "amili.client_no": request.clientNo})
        with structlog.contextvars.bound_contextvars(
            requestId=str(request.requestId), clientNo=request.clientNo
        ):
            await self.run_request(request, record, publisher, position)

    async def run_request(
        self,
        request: FetchRequest,
        record: ConsumerRecord[Any, Any],
        publisher: PartitionPublisher,
        position: RequestPosition,
    ) -> None:
        try:
            await self.engine.run(request, publisher, record.partition, position)
        except AmiliQueryExpired as exc:  # not the request's fault: a failed run, no DLQ record
            log.error("run failed", error=str(exc), clientNo=request.clientNo)
            await self.engine.fail(request, publisher, record.partition, position, str(exc))
        except (AmiliForbidden, AmiliNotFound, AmiliBadRequest) as exc:
            code = f"api_{exc.status}"
            log.warning("the API refused the request: to the DLQ", error=str(exc), clientNo=request.clientNo)
            await self.engine.fail(
                request,
                publisher,
                record.partition,
                position,
                str(exc),
                [dlq_record(self.settings, record, code, str(exc))],
            )
            DLQ_RECORDS.labels(code).inc()
        except AmiliError as exc:
            log.error("run failed", error=str(exc), clientNo=request.clientNo)
            await self.engine.fail(request, publisher, record.partition, position, str(exc))

    # --- partitions -------------------------------------------------------------------------------

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == self.settings.topics.requests_topic)
        self.restoring.update(mine)
        try:
            for p in mine:
                if p not in self.publishers:
                    publisher = PartitionPublisher(
                        self.connection,
                        transactional_id(self.settings, p),
                        self.settings.kafka.transaction_timeout_ms,
                    )
                    await publisher.start()  # fences the previous owner's producer
                    self.publishers[p] = publisher
                    self.locks[p] = asyncio.Lock()
            await self._restore(mine)
        finally:
            self.restoring.difference_update(mine)
        PARTITIONS_OWNED.set(len(self.publishers))
        log.info("partitions assigned", partitions=mine)

    async def _replace_publisher(self, partition: int, old: PartitionPublisher) -> None:
        if self.publishers.get(partition) is not old:
            return  # revoked meanwhile
        with contextlib.suppress(Exception):
            await old.stop()
        fresh = PartitionPublisher(
            self.connection,
            transactional_id(self.settings, partition),
            self.settings.kafka.transaction_timeout_ms,
        )
        await fresh.start()
        self.publishers[partition] = fresh

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        mine = sorted(tp.partition for tp in revoked if tp.topic == self.settings.topics.requests_topic)
        self._interrupt(mine)
        for p in mine:
            lock = self.locks.get(p)
            if lock is None:
                continue
            async with lock:
                publisher = self.publishers.pop(p, None)
                self.locks.pop(p, None)
                if publisher:
                    await publisher.stop()
        PARTITIONS_OWNED.set(len(self.publishers))
        if mine:
            log.info("partitions revoked", partitions=mine)

    async def _restore(self, partitions: list[int]) -> None:
        await restore_partitions(self.store, self.settings.topics.snapshot_topic, partitions, self.connection)

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        owned = sorted(self.publishers)
        broker = self.started and await self.broker.ping(timeout=2.0)
        ready = broker and not self.restoring
        return ready, {"broker": broker, "partitions": owned, "restoring": sorted(self.restoring)}

    # --- lifecycle --------------------------------------------------------------------------------

    started = False

    async def start(self) -> None:
        await self.api.__aenter__()
        await self.broker.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        self._interrupt(list(self.running))  # abort the open transaction rather than wait for a long run
        await self.broker.stop()
        for p in list(self.publishers):
            with contextlib.suppress(Exception):
                await self.publishers.pop(p).stop()
        await self.api.aclose()
        self.store.close()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.worker.subscriber.consumer
        if consumer is not None and assigned:
            consumer.pause(*assigned)  # first, before any await: no request before the restore
        try:
            await self.worker.assigned(assigned)
        finally:
            if consumer is not None and assigned:
                consumer.resume(*assigned)


async def run_worker(settings: Settings) -> int:
    """`amili-sync run`: until SIGTERM/SIGINT."""
    try:
        await check_connection(settings.kafka)
        await ensure_topics(settings.topics, connection_kwargs(settings.kafka), groups=settings.sync.groups)
    except (KafkaConnectionError, TopicLayoutError) as exc:
        log.error("cannot start", error=str(exc))
        return 1
    tune_process()
    worker = Worker(settings)
    health = (
        HealthServer(settings.health_host, settings.health_port, worker.readiness)
        if settings.health_port
        else None
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if health:
        await health.start()
    await worker.start()
    log.info(
        "worker started",
        topic=settings.topics.requests_topic,
        group=settings.kafka.group_id,
        healthPort=settings.health_port,
    )
    await stop.wait()
    log.info("stopping: finishing or aborting the open transaction")
    await worker.stop()
    if health:
        await health.stop()
    log.info("stopped")
    return 0
