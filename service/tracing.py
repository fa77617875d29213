"""OpenTelemetry tracing, opt-in by the standard `OTEL_*` environment variables, free when off.

On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) or an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless `OTEL_SDK_DISABLED=true`
or `OTEL_TRACES_EXPORTER=none`. The OTLP exporter speaks http/protobuf; every other OTLP variable
(headers, timeout, certificate, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) is read by the SDK.
Off, nothing of OpenTelemetry is imported and every helper here is a no-op.

The trace of one request:
- FastStream's `KafkaTelemetryMiddleware` (`service.entrypoints.telemetry`) opens the consumer span of the request message,
  continuing the W3C `traceparent` header the producer put on it (if any);
- `run_span` is the run, a child of that span (or, outside FastStream, of the record's
  `traceparent`); the API calls (`span(..., kind="client")` in `service.amili`) and the Kafka
  transactions (`service.kafka.publisher`) are its children;
- every event carries `ce_traceparent` (CloudEvents distributed tracing extension) with the run's
  span (`current_traceparent()`), so downstream consumers continue the trace.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

from service.version import VERSION

SERVICE_NAME = "amili-customer-sync"
TRACER_NAME = "service"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

Kind = Literal["internal", "client", "producer", "consumer"]
AttributeValue = str | int | float | bool


class SpanLike(Protocol):
    def set_attribute(self, key: str, value: AttributeValue) -> None: ...


class _NoSpan:
    def set_attribute(self, key: str, value: AttributeValue) -> None:
        pass


_NO_SPAN = _NoSpan()
_provider: Any = None  # the SDK TracerProvider while tracing is on
_tracer: Any = None


def tracing_requested(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def enabled() -> bool:
    return _tracer is not None


def configure_tracing(env: Mapping[str, str] | None = None) -> bool:
    """Start tracing when the environment asks for it; True if it is on."""
    env = os.environ if env is None else env
    if not tracing_requested(env):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    if names == ["console"]:
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    attributes = {"service.version": VERSION}
    if not env.get("OTEL_SERVICE_NAME"):  # the variable, when set, names the service
        attributes["service.name"] = SERVICE_NAME
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider)
    return True


def install(provider: Any) -> None:
    """Trace through this SDK `TracerProvider` (tests install one with an in-memory exporter)."""
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME, VERSION)


def shutdown_tracing() -> None:
    """Export what is buffered and stop (at the end of the process)."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def provider() -> Any:
    """The SDK `TracerProvider` while tracing is on, else None."""
    return _provider


def _kind(kind: Kind) -> Any:
    from opentelemetry.trace import SpanKind

    return {
        "internal": SpanKind.INTERNAL,
        "client": SpanKind.CLIENT,
        "producer": SpanKind.PRODUCER,
        "consumer": SpanKind.CONSUMER,
    }[kind]


@contextlib.contextmanager
def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, kind: Kind = "internal"
) -> Iterator[SpanLike]:
    """A child span of the current one (no-op when tracing is off). An exception leaving the block
    is recorded on the span and sets its status to error."""
    if _tracer is None:
        yield _NO_SPAN
        return
    with _tracer.start_as_current_span(name, kind=_kind(kind), attributes=dict(attributes or {})) as current:
        yield current


@contextlib.contextmanager
def run_span(
    headers: Sequence[tuple[str, bytes]] | None, attributes: Mapping[str, AttributeValue] | None = None
) -> Iterator[SpanLike]:
    """The span of one run. Its parent is the current span (FastStream's span of the request
    message), else the W3C trace context in the record's `headers`, else none (a new trace)."""
    if _tracer is None:
        yield _NO_SPAN
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = None
    if not trace.get_current_span().get_span_context().is_valid:
        carrier = {
            k.lower(): v.decode("latin-1") for k, v in headers or () if k.lower() in (TRACEPARENT, TRACESTATE)
        }
        parent = TraceContextTextMapPropagator().extract(carrier)
    with _tracer.start_as_current_span(
        "amili-sync run", context=parent, kind=_kind("internal"), attributes=dict(attributes or {})
    ) as current:
        yield current


def annotate(attributes: Mapping[str, AttributeValue]) -> None:
    """Set attributes on the current span (no-op when tracing is off)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(dict(attributes))


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, None when tracing is off or no span is current."""
    if _tracer is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get(TRACEPARENT)
