"""The worker: FastStream consumer of fetch requests, wired to the sync engine (`amili-sync run`).

- The request topic is consumed with `AckPolicy.MANUAL`: FastStream never commits; the offset of a
  request moves only inside the run's last Kafka transaction (`send_offsets_to_transaction`).
- A partition is served only on a verified cache. On assignment it is paused first (before any
  await); a background task starts its transactional producer (fencing a zombie), verifies its
  cache against the changelog and restores it, retrying with backoff while the partition stays
  paused (`/readyz` says why), and only then marks it ready and resumes it. Request handling checks
  the ready mark too.
- On revocation the partition's preparation is cancelled, its lock taken (waiting for a running page
  transaction) and its producer closed.
- A request that fails for a reason other than the API's answer (Kafka down, a bug) is retried with
  exponential backoff: its partition is paused and rewound, and restored again before the retry
  (so the retry sees every committed snapshot record), while the other partitions are served. After
  `sync.retry_attempts` attempts it is answered with a `failed` result and a DLQ record, and the
  partition moves on. A request whose offset is already committed is never run again.
- Fencing is final: a producer fenced by a newer owner (or left unusable) is closed and never
  recreated by this worker on its own; the group is asked to rebalance, and only a new assignment
  starts a producer for the partition again.
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
from service.engine.ports import OutRecord
from service.entrypoints.contract import TITLE, declare_publishers, subscriber_options
from service.entrypoints.health import HealthServer
from service.entrypoints.process import tune_process
from service.entrypoints.security import faststream_security
from service.entrypoints.telemetry import telemetry_middlewares
from service.kafka.connection import KafkaConnectionError, check_connection, connection_kwargs
from service.kafka.dlq import MAX_REASON_CHARS, dlq_record
from service.kafka.publisher import PartitionPublisher, transactional_id
from service.kafka.topics import TopicLayoutError, ensure_topics
from service.logs import get_logger
from service.metrics import DLQ_RECORDS, PARTITIONS_OWNED
from service.snapshot.restore import restore_partitions
from service.snapshot.store import SnapshotStore
from service.sync.requests import FetchRequest, MalformedRequest, parse_request
from service.version import VERSION

log = get_logger(__name__)

RETRIES_EXHAUSTED = "retries_exhausted"  # DLQ error code of a request that failed every attempt


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
        self.ready: set[int] = set()  # producer started and cache verified and restored
        self.waiting: dict[int, str] = {}  # partitions being prepared, and why they are not ready yet
        self.backing_off: dict[int, str] = {}  # partitions paused before a request's retry
        self.preparing: dict[int, asyncio.Task[None]] = {}
        self.attempts: dict[tuple[int, int], int] = {}  # failed attempts by (partition, offset)
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
        if lock is None or publisher is None or partition not in self.ready:
            self._rewind(record)  # not served yet (or revoked): read again once it is
            return
        async with lock:
            if self.publishers.get(partition) is not publisher or partition not in self.ready:
                self._rewind(record)
                return
            # The run is a child task, so that a revocation or a shutdown can interrupt it at once
            # instead of waiting for a long run (which would outlast the rebalance timeout and make
            # two workers fence each other in turn). Interrupting is safe at any await: an open
            # transaction is aborted (or its commit completes), the cache is only ever behind the
            # changelog, and the uncommitted request is redelivered to the partition's owner.
            run = asyncio.create_task(self._serve(record, publisher))
            self.running[partition] = run
            try:
                await run
                self.attempts.pop((partition, record.offset), None)
            except asyncio.CancelledError:
                if partition not in self.interrupted:
                    raise  # the handler itself is being cancelled
                log.info(
                    "run interrupted: partition revoked or worker stopping; the request is redelivered",
                    partition=partition,
                    offset=record.offset,
                )
            except Exception as exc:
                await self._failed(record, publisher, exc)
            finally:
                self.running.pop(partition, None)
                self.interrupted.discard(partition)

    async def _serve(self, record: ConsumerRecord[Any, Any], publisher: PartitionPublisher) -> None:
        if await self._answered(record, publisher):
            log.info(
                "request already answered (its offset is committed): not run again",
                partition=record.partition,
                offset=record.offset,
            )
            return
        await self.process(record, publisher)

    async def _answered(self, record: ConsumerRecord[Any, Any], publisher: PartitionPublisher) -> bool:
        """Whether the request's offset is committed already: by this producer (an error came after
        the run's last commit), or as the group's committed offset."""
        if publisher.consumed_next.get((record.topic, record.partition), -1) > record.offset:
            return True
        consumer = self.subscriber.consumer
        if consumer is None:
            return False
        committed = await consumer.committed(TopicPartition(record.topic, record.partition))
        return committed is not None and committed > record.offset

    async def _failed(
        self, record: ConsumerRecord[Any, Any], publisher: PartitionPublisher, exc: Exception
    ) -> None:
        """After a failure other than the API's answer: fenced → final; else retry with backoff, or
        after the last attempt answer the request with a failed result and a DLQ record."""
        partition, offset = record.partition, record.offset
        reason = f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS]
        if isinstance(exc, ProducerFenced) or not publisher.usable:
            log.warning("producer fenced or unusable", partition=partition, offset=offset, error=reason)
            await self._drop_producer(partition, publisher, reason)
            return
        attempt = self.attempts[(partition, offset)] = self.attempts.get((partition, offset), 0) + 1
        log.warning(
            "request failed", partition=partition, offset=offset, attempt=attempt, error=reason, exc_info=exc
        )
        # answered already (the failure came after the last commit): no `failed` result on top; the
        # backoff below restores the partition, and the redelivered request is skipped
        answered = publisher.consumed_next.get((record.topic, partition), -1) > offset
        if attempt >= self.settings.sync.retry_attempts and not answered:
            try:
                await self._give_up(record, publisher, reason)
                self.attempts.pop((partition, offset), None)
                return
            except Exception as final:
                log.warning("could not answer the failed request; retrying", error=str(final))
                if isinstance(final, ProducerFenced) or not publisher.usable:
                    await self._drop_producer(partition, publisher, str(final))
                    return
        self._back_off(record, attempt, reason)

    async def _give_up(
        self, record: ConsumerRecord[Any, Any], publisher: PartitionPublisher, reason: str
    ) -> None:
        """A `failed` result and a DLQ record carrying the reason, with the request's offset."""
        settings = self.settings
        position = RequestPosition(record.topic, record.partition, record.offset, settings.kafka.group_id)
        dlq = dlq_record(settings, record, RETRIES_EXHAUSTED, reason)
        try:
            request = parse_request(record.key, record.value, settings.sync.max_request_bytes)
        except MalformedRequest:
            await publisher.commit([dlq], position)
        else:
            await self.engine.fail(request, publisher, record.partition, position, reason, [dlq])
        DLQ_RECORDS.labels(RETRIES_EXHAUSTED).inc()
        log.error(
            "request failed every attempt: failed result and DLQ record",
            partition=record.partition,
            offset=record.offset,
            attempts=settings.sync.retry_attempts,
        )

    def _backoff_seconds(self, attempt: int) -> float:
        sync = self.settings.sync
        return float(min(sync.retry_backoff_initial * 2 ** max(attempt - 1, 0), sync.retry_backoff_max))

    def _back_off(self, record: ConsumerRecord[Any, Any], attempt: int, reason: str) -> None:
        """Pause and rewind the request's partition; restore it and resume after the backoff. The
        handler returns at once, so the worker keeps serving its other partitions meanwhile."""
        partition = record.partition
        tp = TopicPartition(record.topic, partition)
        consumer = self.subscriber.consumer
        if consumer is None or tp not in consumer.assignment():
            return  # revoked meanwhile: the next owner reads the request from the committed offset
        consumer.pause(tp)
        consumer.seek(tp, record.offset)
        delay = self._backoff_seconds(attempt)
        self.ready.discard(partition)
        self.backing_off[partition] = f"attempt {attempt} failed ({reason}); retrying in {delay:g} s"
        self._prepare(tp, delay=delay, new_ownership=False)

    def _rewind(self, record: ConsumerRecord[Any, Any]) -> None:
        consumer = self.subscriber.consumer
        tp = TopicPartition(record.topic, record.partition)
        if consumer is not None and tp in consumer.assignment():
            consumer.seek(tp, record.offset)

    async def _drop_producer(self, partition: int, publisher: PartitionPublisher, reason: str) -> None:
        """Fencing is final: close the producer, stop serving the partition and let the group decide
        who owns it (a rebalance); only a new assignment starts a producer for it again."""
        self.ready.discard(partition)
        if self.publishers.get(partition) is publisher:
            del self.publishers[partition]
        with contextlib.suppress(Exception):
            await publisher.stop()
        self.waiting[partition] = f"producer fenced or unusable ({reason}); waiting for the group"
        consumer = self.subscriber.consumer
        if consumer is not None:
            tp = TopicPartition(self.settings.topics.requests_topic, partition)
            if tp in consumer.assignment():
                consumer.pause(tp)
            coordinator = getattr(consumer, "_coordinator", None)
            if coordinator is not None:
                coordinator.request_rejoin()  # aiokafka has no public call for "rejoin the group"
        PARTITIONS_OWNED.set(len(self.publishers))

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
            dlq: list[OutRecord] = [dlq_record(self.settings, record, code, str(exc))]
            await self.engine.fail(request, publisher, record.partition, position, str(exc), dlq)
            DLQ_RECORDS.labels(code).inc()
        except AmiliError as exc:
            log.error("run failed", error=str(exc), clientNo=request.clientNo)
            await self.engine.fail(request, publisher, record.partition, position, str(exc))

    # --- partitions -------------------------------------------------------------------------------

    def assigned(self, assigned: set[TopicPartition]) -> None:
        """Prepare each new partition in the background; it stays paused until it is ready."""
        topic = self.settings.topics.requests_topic
        mine = sorted((tp for tp in assigned if tp.topic == topic), key=lambda tp: tp.partition)
        for tp in mine:
            self._prepare(tp, delay=0.0, new_ownership=True)
        log.info("partitions assigned", partitions=[tp.partition for tp in mine])

    def _prepare(self, tp: TopicPartition, *, delay: float, new_ownership: bool) -> None:
        partition = tp.partition
        previous = self.preparing.get(partition)
        if previous is not None and not previous.done():
            previous.cancel()
        if new_ownership:
            self.waiting[partition] = "starting the producer and restoring the snapshot cache"
        self.preparing[partition] = asyncio.create_task(self._make_ready(tp, delay, new_ownership))

    async def _make_ready(self, tp: TopicPartition, delay: float, new_ownership: bool) -> None:
        """Start the partition's producer (if it has none), verify and restore its cache, retrying
        with backoff; then mark it ready and resume it."""
        partition = tp.partition
        if delay:
            await asyncio.sleep(delay)
        failures = 0
        while True:
            step = "starting the transactional producer"
            try:
                if partition not in self.publishers:
                    self.waiting[partition] = step
                    await self._start_producer(partition)
                step = "restoring the snapshot cache"
                if partition in self.waiting:
                    self.waiting[partition] = step
                await restore_partitions(
                    self.store,
                    self.settings.topics.snapshot_topic,
                    [partition],
                    self.connection,
                    new_ownership=new_ownership,
                    process_from=self.settings.sync.restore_process_from,
                )
                break
            except Exception as exc:
                failures += 1
                wait = self._backoff_seconds(failures)
                self.waiting[partition] = (
                    f"{step} failed ({type(exc).__name__}: {exc}); retrying in {wait:g} s"
                )
                log.warning(
                    "partition not ready: will retry",
                    partition=partition,
                    step=step,
                    error=str(exc),
                    retryInSeconds=wait,
                )
                await asyncio.sleep(wait)
        self.waiting.pop(partition, None)
        self.backing_off.pop(partition, None)
        self.ready.add(partition)
        consumer = self.subscriber.consumer
        if consumer is not None and tp in consumer.assignment():
            consumer.resume(tp)
        log.info("partition ready", partition=partition)

    async def _start_producer(self, partition: int) -> None:
        publisher = PartitionPublisher(
            self.connection,
            transactional_id(self.settings, partition),
            self.settings.kafka.transaction_timeout_ms,
        )
        try:
            await publisher.start()  # fences the previous owner's producer
        except BaseException:
            with contextlib.suppress(Exception):
                await publisher.stop()
            raise
        self.publishers[partition] = publisher
        self.locks.setdefault(partition, asyncio.Lock())
        PARTITIONS_OWNED.set(len(self.publishers))

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        mine = sorted(tp.partition for tp in revoked if tp.topic == self.settings.topics.requests_topic)
        self._interrupt(mine)
        for p in mine:
            self.ready.discard(p)
            task = self.preparing.pop(p, None)
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            self.waiting.pop(p, None)
            self.backing_off.pop(p, None)
            self.attempts = {k: v for k, v in self.attempts.items() if k[0] != p}
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

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        owned = sorted(self.publishers)
        broker = self.started and await self.broker.ping(timeout=2.0)
        ready = broker and not self.waiting
        return ready, {
            "broker": broker,
            "partitions": owned,
            "restoring": sorted(self.waiting),
            "waiting": {str(p): why for p, why in sorted(self.waiting.items())},
            "backingOff": {str(p): why for p, why in sorted(self.backing_off.items())},
        }

    # --- lifecycle --------------------------------------------------------------------------------

    started = False

    async def start(self) -> None:
        await self.api.__aenter__()
        await self.broker.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        self._interrupt(list(self.running))  # abort the open transaction rather than wait for a long run
        for task in list(self.preparing.values()):
            task.cancel()
        await self.broker.stop()
        for task in list(self.preparing.values()):
            with contextlib.suppress(BaseException):
                await task
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
        self.worker.assigned(assigned)  # each partition is resumed once it is ready


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
