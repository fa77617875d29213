"""The worker's Kafka contract, declared once: the request subscriber's options and, for the
AsyncAPI document, every topic it publishes to with its payload schema."""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from service.config import Settings
from service.sync import event_models as em
from service.sync.requests import FetchRequest
from service.sync.results import RunResult

TITLE = "amili-customer-sync"


def subscriber_options(settings: Settings) -> dict[str, Any]:
    k = settings.kafka
    return {
        "group_id": k.group_id,
        "group_instance_id": k.group_instance_id,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_interval_ms": k.max_poll_interval_ms,
        "rebalance_timeout_ms": k.rebalance_timeout_ms,
        "session_timeout_ms": k.session_timeout_ms,
        "max_records": 1,
        "title": "fetch-requests",
        "description": (
            "Fetch-customers requests, keyed by clientNo. One sync run each; consumed with manual "
            "acknowledgement: the offset is committed in the run's last Kafka transaction."
        ),
    }


class SnapshotRecord(BaseModel):
    """Value of `{clientNo}/{customerNo}` on the compacted snapshot topic (tombstone: removed)."""

    state: em.CustomerState
    rev: int


def publications(settings: Settings) -> list[tuple[str, type[BaseModel], str]]:
    """(topic, payload model, description) of everything the worker publishes."""
    t = settings.topics
    return [
        (
            t.name(t.balance_changed),
            em.BalanceChanged,
            "Balance changed (CloudEvents binary mode, ce_* headers).",
        ),
        (t.name(t.address_changed), em.AddressChanged, "Postal address changed (CloudEvents binary mode)."),
        (
            t.name(t.registration_status_changed),
            em.RegistrationStatusChanged,
            "Registration status changed (CloudEvents binary mode).",
        ),
        (t.lifecycle_topic, em.CustomerCreated, "Customer created (ce_type amili.customer.created.v1)."),
        (t.lifecycle_topic, em.CustomerRemoved, "Customer removed (ce_type amili.customer.removed.v1)."),
        (
            t.lifecycle_topic,
            em.CustomerBaseline,
            "Baseline of a client's first run (amili.customer.baseline.v1).",
        ),
        (t.results_topic, RunResult, "One run result per request, keyed by clientNo."),
        (t.snapshot_topic, SnapshotRecord, "Compacted snapshot changelog, co-partitioned with the requests."),
        (
            t.dlq_topic,
            FetchRequest,
            "Rejected requests: original key and bytes, dlq-* headers name the error.",
        ),
    ]


def declare_publishers(broker: KafkaBroker, settings: Settings) -> None:
    """Register the publications on the broker for the AsyncAPI document (never called to send)."""
    for topic, model, description in publications(settings):
        broker.publisher(topic, schema=model, title=f"{topic}:{model.__name__}", description=description)
