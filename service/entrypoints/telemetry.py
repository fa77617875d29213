"""FastStream's Kafka telemetry middleware, when tracing is on (`service.tracing`): it opens the span
of each request message, continuing the message's W3C `traceparent`; the run's span is its child.
Here, in the entry point, because only the entry points import FastStream."""

from __future__ import annotations

from typing import Any

from service import tracing


def telemetry_middlewares() -> tuple[Any, ...]:
    provider = tracing.provider()
    if provider is None:
        return ()
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    return (KafkaTelemetryMiddleware(tracer_provider=provider, include_messages_counters=False),)
