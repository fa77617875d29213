"""The worker's Kafka contract, declared once: the request subscriber's options and, for the
AsyncAPI document, every topic it publishes to with its payload schema."""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from service.config import Settings
from service.sync import event_models as em
from service.sync import kinds
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
    """Value of `{clientNo}/{customerNo}` on the compacted snapshot topic. `state` null: a removal
    marker, which keeps the revision so that a re-created customer continues its sequence."""

    state: em.CustomerState | None
    rev: int


def publications(settings: Settings) -> list[tuple[str, type[BaseModel], str]]:
    """(topic, payload model, description) of everything the worker publishes: one entry per event
    kind of the registry (the configured groups, custom ones too, then the lifecycle kinds), the run
    results, the snapshot changelog and the dead letters."""
    t = settings.topics
    events = [(t.kind_topic(k), k.model, k.description) for k in kinds.all_kinds(settings.sync.groups)]
    return [
        *events,
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
