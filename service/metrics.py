"""Prometheus metrics of the worker (prometheus-client, default registry), served on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from service.version import VERSION

PAGES_FETCHED = Counter("amili_sync_pages_fetched_total", "ARM pages fetched and parsed", ["client_no"])
CUSTOMERS_READ = Counter("amili_sync_customers_read_total", "Customers read from the ARM API", ["client_no"])
API_CALLS = Counter("amili_sync_api_calls_total", "ARM API calls by HTTP status (or error kind)", ["status"])
API_REQUEST_SECONDS = Histogram(
    "amili_sync_api_request_seconds",
    "Duration of one ARM API request/response (body included), by route (list, one, token) and HTTP "
    "status (or error: no answer)",
    ["route", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PAGES_TOLERANT = Counter(
    "amili_sync_pages_tolerant_total",
    "ARM answers the strict decoder refused and the tolerant models read (or refused): such an answer "
    "costs about 3x the decoding of an ordinary one",
)
API_RETRIES = Counter("amili_sync_api_retries_total", "ARM API call retries by cause", ["cause"])
SLICES = Counter(
    "amili_sync_slices_total", "Query slices read because of the maximumCount cap", ["client_no"]
)
CHANGE_EVENTS = Counter("amili_sync_change_events_total", "Change events published (committed)", ["type"])
RUNS = Counter("amili_sync_runs_total", "Sync runs by final status", ["status"])
RUN_DURATION = Histogram(
    "amili_sync_run_duration_seconds",
    "Duration of sync runs",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 3600),
)
LAST_SUCCESS = Gauge(
    "amili_sync_last_success_timestamp_seconds",
    "Unix time of the last successful run per client",
    ["client_no"],
)
RESTORE_RECORDS = Counter(
    "amili_sync_restore_records_total", "Snapshot changelog records restored", ["partition"]
)
RESTORE_LAG = Gauge("amili_sync_restore_lag_records", "Changelog records still to restore", ["partition"])
PARTITIONS_OWNED = Gauge("amili_sync_partitions_owned", "Request partitions owned by this worker")
DLQ_RECORDS = Counter("amili_sync_dlq_records_total", "Requests sent to the dead-letter topic", ["reason"])
RUN_IN_PROGRESS = Gauge(
    "amili_sync_run_in_progress", "1 while a run for the client is in progress", ["client_no"]
)
BUILD_INFO = Gauge("amili_sync_build_info", "Always 1; the version of the running worker", ["version"])
BUILD_INFO.labels(VERSION).set(1)
