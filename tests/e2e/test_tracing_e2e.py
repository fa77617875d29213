"""Tracing end to end: a real worker process exporting over OTLP/HTTP to a receiver in the test. A
request carrying a `traceparent` gives events whose `ce_traceparent` is in the same trace, and the
spans of the run, its API calls and its Kafka transactions arrive, children of the run's span."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from service.sandbox.testing import SandboxHandle
from testkit.kafka import TopicReader
from testkit.worker import WorkerProcess
from tests.conftest import KafkaBroker
from tests.e2e.conftest import WorkerEnv

CLIENT = 3300  # read only: its baseline events are enough
EVENT_TOPICS = ("balance-changed", "address-changed", "registration-status-changed", "lifecycle")


class OtlpReceiver:
    """An OTLP/HTTP trace receiver (http/protobuf): keeps every span it is sent, as plain dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    None,
                )
                for scope_spans in resource_spans.scope_spans:
                    for s in scope_spans.spans:
                        self.spans.append(
                            {
                                "name": s.name,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex(),
                                "service": service,
                                "attributes": {a.key: a.value.string_value for a in s.attributes},
                            }
                        )

    def of_trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


async def send_traced_request(bootstrap: str, prefix: str, traceparent: str) -> str:
    rid = str(uuid.uuid4())
    body = {"requestId": rid, "clientNo": CLIENT, "requestedAt": datetime.now(UTC).isoformat()}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{prefix}.fetch-requests",
            json.dumps(body).encode(),
            key=str(CLIENT).encode(),
            headers=[("traceparent", traceparent.encode())],
        )
    finally:
        await producer.stop()
    return rid


async def event_traceparents(bootstrap: str, prefix: str, request_id: str) -> list[str | None]:
    """`ce_traceparent` of every committed event of the request."""
    consumer = AIOKafkaConsumer(
        *(f"{prefix}.{t}" for t in EVENT_TOPICS),
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[str | None] = []
    try:
        while batch := await consumer.getmany(timeout_ms=2000, max_records=10_000):
            for records in batch.values():
                for r in records:
                    if json.loads(r.value)["requestId"] == request_id:
                        headers = dict(r.headers)
                        found.append(
                            headers["ce_traceparent"].decode() if "ce_traceparent" in headers else None
                        )
    finally:
        await consumer.stop()
    return found


# Its parameter list is alike other signatures (tail's) in shape only (kept): fixtures, one per line.
async def test_a_request_trace_continues_through_the_run_api_calls_transactions_and_events(
    kafka_broker: KafkaBroker,
    sandbox: SandboxHandle,
    topic_prefix: str,
    tmp_path: Path,
    otlp_receiver: OtlpReceiver,
    e2e_env: WorkerEnv,
) -> None:
    env = e2e_env(
        AMILI_SYNC_API__PAGE_SIZE="50",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    try:
        async with TopicReader(kafka_broker.bootstrap_servers, topic_prefix) as reader:
            rid = await send_traced_request(
                kafka_broker.bootstrap_servers, topic_prefix, f"00-{trace_id}-{parent_id}-01"
            )
            result = (await reader.wait_results([rid]))[rid]
        assert result["status"] == "succeeded", result
        traceparents = await event_traceparents(kafka_broker.bootstrap_servers, topic_prefix, rid)
    finally:
        worker.stop()  # a clean stop exports what is still buffered

    # every event of the run carries the run's trace context
    assert len(traceparents) == 200  # the client's baseline
    assert {tp.split("-")[1] if tp else None for tp in traceparents} == {trace_id}

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
        s["name"] == "amili-sync run" for s in otlp_receiver.of_trace(trace_id)
    ):
        await asyncio.sleep(0.2)
    spans = otlp_receiver.of_trace(trace_id)
    names = [s["name"] for s in spans]
    [run] = [s for s in spans if s["name"] == "amili-sync run"]
    assert run["service"] == "amili-customer-sync"
    assert run["attributes"]["amili.request_id"] == rid
    # the run continues the request's trace: under FastStream's span of the request message, whose
    # parent is the request's traceparent
    [process] = [s for s in spans if s["span_id"] == run["parent_span_id"]]
    assert process["parent_span_id"] == parent_id, names
    # the events' ce_traceparent names the run's span
    assert {tp.split("-")[2] for tp in traceparents if tp} == {run["span_id"]}
    children = [s for s in spans if s["parent_span_id"] == run["span_id"]]
    api = [s for s in children if s["name"] == "amili list"]
    transactions = [s for s in children if s["name"] == "kafka transaction"]
    assert len(api) >= 4, names  # 200 customers in pages of 50
    assert len(transactions) >= 2, names  # page transactions and the last one
