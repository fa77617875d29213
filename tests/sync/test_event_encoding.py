"""The fast event encoder gives exactly the bytes of the straightforward one (`testkit/
reference_events.py`, the encoder as it was): the same key, value, headers, id, kind and topic for
every kind of change, with and without a trace, for odd values too."""

from __future__ import annotations

import dataclasses
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from service.sync import kinds
from service.sync.diff import Change, StoredState, diff_customer, removal
from service.sync.events import EventContext, build_event, uuid4_text
from service.sync.records import encode_state
from service.sync.state import TrackingRules, tracked_state
from testkit import reference_events

RULES = TrackingRules()
CUSTOM = TrackingRules.from_config({**RULES.groups, "credit_limit": ["limitAmount", "dueDays"]}, False)
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def ctx(traceparent: str | None = None, **over: Any) -> EventContext:
    fields: dict[str, Any] = {
        "client_no": 2218,
        "request_id": uuid.UUID(int=0xABCDEF),
        "observed_at": datetime(2026, 12, 2, 6, 45, 17, 123456, tzinfo=UTC),
        "source": "urn:amili:arm",
        "schema_base_url": "https://schemas.example/events",
        "traceparent": traceparent,
        **over,
    }
    return EventContext(**fields)


def customer(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "accountNo": 500001,
        "name": 'Åse "Ødegård" \\ AS',
        "currency": "NOK",
        "balanceTotal": 1000.5,
        "postalAddress": {"addressLine1": "Storgata 1\n", "postalCode": "0150", "cityName": "Oslo"},
        "registrationStatusCode": "ACTIVE",
        "registrationStatusDate": "2025-03-06",
        "limitAmount": 2000,
        "dueDays": 14,
    }
    return {**base, **over}


def changes() -> list[Change]:
    """Every kind of change, from states with ordinary and odd values."""
    old = tracked_state(customer(), CUSTOM)
    news = [
        customer(balanceTotal=-250),
        customer(balanceTotal=None, currency=None),
        customer(balanceTotal=1e300, postalAddress={"cityName": "Tromsø", "countryCode": "NO"}),
        customer(registrationStatusCode="DECEASED", registrationStatusDate=None, limitAmount=0),
        customer(postalAddress=None, accountNo=None, dueDays=30, name="🙂"),
    ]
    out: list[Change] = []
    for i, new in enumerate(news):
        out += diff_customer(
            f"C-{i}", StoredState(old, 3 + i), tracked_state(new, CUSTOM), CUSTOM, baseline=False
        )
    for i, new in enumerate([customer(), customer(accountNo=None), {"name": "only a name"}]):
        state = tracked_state(new, CUSTOM)
        out += diff_customer(f"B{i}", None, state, CUSTOM, baseline=True)
        out += diff_customer(f"N{i}", None, state, CUSTOM, baseline=False, removed_rev=i)
        out.append(removal(f"R{i}", StoredState(state, 7)))
    return out


def _same(change: Change, context: EventContext) -> None:
    now = build_event(change, context)
    former = reference_events.build_event(change, context)
    assert now._asdict() == dataclasses.asdict(former)
    assert now.value == orjson.dumps(reference_events.event_data(change, context))


def test_every_kind_of_change_encodes_exactly_as_before() -> None:
    found = changes()
    assert {c.kind for c in found} == {
        "balance",
        "address",
        "registration_status",
        "credit_limit",
        "baseline",
        "created",
        "removed",
    }
    for context in (ctx(), ctx(TRACE)):
        for change in found:
            _same(change, context)


@pytest.mark.parametrize(
    "context",
    [
        ctx(client_no=1, source="urn:other", schema_base_url="https://s"),
        ctx(observed_at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))),
        ctx(observed_at=datetime(2026, 1, 1, 0, 0, 0, 0, tzinfo=UTC), traceparent=TRACE),
    ],
)
def test_other_contexts_encode_exactly_as_before(context: EventContext) -> None:
    for change in changes():
        _same(change, context)


def test_the_parts_of_one_context_are_rendered_once_per_kind() -> None:
    context = ctx(TRACE)
    first = [build_event(c, context) for c in changes()]
    assert context.parts("balance") is context.parts("balance")
    again = [build_event(c, context) for c in changes()]
    assert first == again


def test_extras_that_would_replace_a_common_field_keep_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind whose extras name a common field: replaced in place, as `dict.update` does."""

    def extras(before: Any, after: Any, context: Any) -> dict[str, Any]:
        return {"accountNo": "replaced", "delta": 1}

    monkeypatch.setitem(kinds.BUILTIN, "balance", dataclasses.replace(kinds.BALANCE, extras=extras))
    [change] = [c for c in changes() if c.kind == "balance"][:1]
    _same(change, ctx())
    data = orjson.loads(build_event(change, ctx()).value)
    assert list(data)[:3] == ["clientNo", "customerNo", "accountNo"]
    assert data["accountNo"] == "replaced"


def test_a_kind_with_empty_extras_has_only_the_common_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        kinds.BUILTIN, "balance", dataclasses.replace(kinds.BALANCE, extras=lambda b, a, c: {})
    )
    [change] = [c for c in changes() if c.kind == "balance"][:1]
    _same(change, ctx())


def test_uuid4_text_is_the_uuid_module_s_text() -> None:
    for _ in range(2_000):
        digest = os.urandom(32)
        assert uuid4_text(digest) == str(uuid.UUID(bytes=digest[:16], version=4))
    for byte in range(256):  # every value of the version and variant bytes
        digest = bytes([byte]) * 32
        assert uuid4_text(digest) == str(uuid.UUID(bytes=digest[:16], version=4))


def test_snapshot_records_are_unchanged() -> None:
    for state in [{}, tracked_state(customer(), CUSTOM), {"x": [1, "é", None], "y": {"z": 1.5}}]:
        for rev in (0, 1, 12, 2**40):
            assert encode_state(state, rev) == reference_events.encode_state(state, rev)
