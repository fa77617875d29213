"""Print the worker's real /metrics exposition text with every metric of `service.metrics` touched.

`python -m tests.ops.exposition | promtool check metrics` (scripts/check-ops, tests/ops). Runs in
its own process so the example label values never reach another test's registry.
"""

from __future__ import annotations

import sys

from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

import service.metrics


def worker_metrics() -> list[MetricWrapperBase]:
    """The metric objects that `service.metrics` defines, in definition order."""
    return [m for m in vars(service.metrics).values() if isinstance(m, MetricWrapperBase)]


def touch(metric: MetricWrapperBase) -> None:
    labelnames = metric._labelnames
    if isinstance(metric, Counter):
        (metric.labels(*["example"] * len(labelnames)) if labelnames else metric).inc()
    elif isinstance(metric, Gauge):
        (metric.labels(*["example"] * len(labelnames)) if labelnames else metric).set(1)
    elif isinstance(metric, Histogram):
        (metric.labels(*["example"] * len(labelnames)) if labelnames else metric).observe(1.5)
    else:  # Summary, Info, Enum: a new kind needs a line here
        raise TypeError(f"no example for {type(metric).__name__}")


def exposition() -> bytes:
    for metric in worker_metrics():
        touch(metric)
    return generate_latest()


if __name__ == "__main__":
    sys.stdout.buffer.write(exposition())
