"""The event and snapshot-record encoders as the service had them before its fast path
(`service.sync.events.build_event`): the event data as a dict dumped by orjson, the id from the
dumped change, every header tuple built per event, the record as a dumped dict; only per-run
strings (request id, time, source, type headers) rendered once.

Kept as the oracle of the contract's bytes: the tests check that the service's encoders give exactly
these keys, values, headers and ids, and `bench/event_bench.py` measures both side by side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from service.sync.diff import Change
from service.sync.events import EventContext
from service.sync.kinds import kind


@dataclass(frozen=True)
class ReferenceEvent:
    """The former `OutEvent` (a frozen dataclass)."""

    kind: str
    topic_kind: str
    id: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def event_id(client_no: int, change: Change) -> str:
    material = orjson.dumps(
        [client_no, change.customer_no, kind(change.kind).ce_type, change.rev, change.before, change.after],
        option=orjson.OPT_SORT_KEYS,
    )
    return uuid4_text(hashlib.sha256(material).digest())


def uuid4_text(digest: bytes) -> str:
    """`str(UUID(bytes=digest[:16], version=4))` (tested against it)."""
    b = bytearray(digest[:16])
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@cache
def _type_headers(kind_name: str, schema_base_url: str) -> tuple[bytes, bytes]:
    etype = kind(kind_name).ce_type
    return etype.encode(), f"{schema_base_url}/{etype}.json".encode()


def event_data(change: Change, ctx: EventContext) -> dict[str, Any]:
    context: Mapping[str, Any] = change.context
    data: dict[str, Any] = {
        "clientNo": ctx.client_no,
        "customerNo": change.customer_no,
        "accountNo": context.get("accountNo"),
        "requestId": ctx.request_id_text,
        "observedAt": ctx.observed_at_text,
        "before": change.before,
        "after": change.after,
        "changedFields": change.changed_fields,
    }
    entry = kind(change.kind)
    if entry.extras is not None:
        data.update(entry.extras(change.before, change.after, context))
    return data


def build_event(change: Change, ctx: EventContext) -> ReferenceEvent:
    eid = event_id(ctx.client_no, change)
    etype, dataschema = _type_headers(change.kind, ctx.schema_base_url)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", eid.encode()),
        ("ce_source", ctx.source_header),
        ("ce_type", etype),
        ("ce_subject", change.customer_no.encode()),
        ("ce_time", ctx.observed_at_text.encode()),
        ("ce_dataschema", dataschema),
        ("content-type", b"application/json"),
    ]
    if ctx.traceparent:
        headers.append(("ce_traceparent", ctx.traceparent_header))
    return ReferenceEvent(
        kind=change.kind,
        topic_kind=kind(change.kind).topic_group,
        id=eid,
        key=f"{ctx.client_no}/{change.customer_no}".encode(),
        value=orjson.dumps(event_data(change, ctx)),
        headers=headers,
    )


def encode_state(state: dict[str, Any], rev: int) -> bytes:
    return orjson.dumps({"state": state, "rev": rev})
