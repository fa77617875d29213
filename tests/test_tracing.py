"""Tracing with the SDK's in-memory exporter: the run span continues the request's `traceparent`, API
calls are its children, events carry `ce_traceparent`; off by default, with nothing imported."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service import tracing
from service.amili import AmiliClient
from service.sync.diff import Change
from service.sync.events import EventContext, build_event
from tests.amili.fake_api import FakeArm, make_customers, unit_settings
from tests.conftest import ROOT

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.shutdown_tracing()


def test_tracing_is_requested_by_the_standard_variables() -> None:
    assert not tracing.tracing_requested({})
    assert tracing.tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert tracing.tracing_requested({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing.tracing_requested({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
    assert not tracing.tracing_requested({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})


async def test_the_run_continues_the_request_trace_and_api_calls_are_its_children(
    spans: InMemorySpanExporter,
) -> None:
    fake = FakeArm({2218: make_customers(2)})
    with tracing.run_span([("traceparent", TRACEPARENT.encode())], {"messaging.kafka.offset": 7}):
        async with AmiliClient(unit_settings(), transport=fake.transport()) as amili:
            assert await amili.get_customer(2218, "100000") is not None
        with tracing.span("kafka transaction", {"messaging.batch.message_count": 2}, "producer"):
            pass
        traceparent = tracing.current_traceparent()
        tracing.annotate({"amili.client_no": 2218})
    finished = {s.name: s for s in spans.get_finished_spans()}
    run = finished["amili-sync run"]
    assert format(run.context.trace_id, "032x") == TRACE_ID
    assert run.parent is not None
    assert format(run.parent.span_id, "016x") == PARENT_ID
    assert run.attributes is not None
    assert run.attributes["messaging.kafka.offset"] == 7
    assert run.attributes["amili.client_no"] == 2218
    for name, kind in (("amili token", SpanKind.CLIENT), ("amili one", SpanKind.CLIENT)):
        child = finished[name]
        assert child.kind == kind
        assert child.parent is not None
        assert child.parent.span_id == run.context.span_id
    assert finished["amili one"].attributes is not None
    assert finished["amili one"].attributes["http.response.status_code"] == 200
    assert finished["kafka transaction"].kind == SpanKind.PRODUCER
    assert finished["kafka transaction"].parent.span_id == run.context.span_id  # type: ignore[union-attr]
    # the events of the run carry the run's trace context
    assert traceparent == f"00-{TRACE_ID}-{run.context.span_id:016x}-01"
    ctx = EventContext(2218, uuid4(), datetime.now(UTC), "urn:amili:arm", "https://s", traceparent)
    change = Change("balance", "100000", {"balanceTotal": 1}, {"balanceTotal": 2}, ["balanceTotal"], 1, {})
    assert dict(build_event(change, ctx).headers)["ce_traceparent"] == traceparent.encode()


def test_without_a_traceparent_the_run_starts_a_trace(spans: InMemorySpanExporter) -> None:
    with tracing.run_span(None):
        pass
    [run] = spans.get_finished_spans()
    assert run.parent is None


def test_an_event_without_trace_context_has_no_ce_traceparent() -> None:
    ctx = EventContext(2218, uuid4(), datetime.now(UTC), "urn:amili:arm", "https://s")
    change = Change("balance", "100000", {"balanceTotal": 1}, {"balanceTotal": 2}, ["balanceTotal"], 1, {})
    assert "ce_traceparent" not in dict(build_event(change, ctx).headers)
    assert tracing.current_traceparent() is None


# FastStream itself imports `opentelemetry.semconv` (a table of names) to see whether it is there;
# the API's tracing machinery, the SDK and the exporter are what tracing would cost
TRACING_MODULES = (
    "opentelemetry.trace",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.context",
)


def test_off_by_default_without_importing_the_sdk() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code = (
        f"TRACING_MODULES = {TRACING_MODULES!r}\n"
        "import sys\n"
        "import service.entrypoints.cli, service.entrypoints.app, service.kafka.publisher\n"
        "from service import tracing\n"
        "assert tracing.configure_tracing() is False\n"
        "from service.entrypoints.telemetry import telemetry_middlewares\n"
        "assert telemetry_middlewares() == ()\n"
        "with tracing.run_span(None), tracing.span('x'):\n"
        "    assert tracing.current_traceparent() is None\n"
        "print(sorted(m for m in sys.modules if m.startswith(TRACING_MODULES)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
