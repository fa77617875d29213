"""The pure core: normalization, diff, event ids, CloudEvents and schemas, request parsing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from service.sync.diff import StoredState, diff_customer, needs_snapshot_update, removal
from service.sync.events import EventContext, build_event
from service.sync.kinds import EVENT_MODELS, json_schema
from service.sync.requests import MalformedRequest, parse_request
from service.sync.state import TrackingRules, normalize, tracked_state
from testkit.events import SCHEMAS, check_event

RULES = TrackingRules()
CTX = EventContext(
    2218, uuid.UUID(int=1), datetime(2026, 1, 1, tzinfo=UTC), "urn:amili:arm", "https://s/events"
)
ADDRESS = {
    "addressLine1": "Storgata 1",
    "addressLine2": "",
    "postalCode": "0150",
    "cityName": "Oslo",
    "countryCode": "NO",
}


def customer(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "customerNo": "100001",
        "accountNo": 500001,
        "name": "Åse Ødegård",
        "currency": "NOK",
        "balanceTotal": 1000,
        "postalAddress": ADDRESS,
        "registrationStatusCode": "ACTIVE",
        "registrationStatusDate": "2025-03-06",
        "ssn": "01019921717",
        "dateOfBirth": "1999-01-01",
    }
    base.update(over)
    return base


def test_missing_null_and_empty_are_the_same_value() -> None:
    assert normalize(None) is None
    assert normalize("") is None
    assert normalize([]) is None
    assert normalize({"a": "", "b": None}) is None
    assert normalize({"a": "x", "b": ""}) == {"a": "x"}
    a = tracked_state(customer(registrationStatusDate=""), RULES)
    b = tracked_state({k: v for k, v in customer().items() if k != "registrationStatusDate"}, RULES)
    assert a == b
    assert diff_customer("1", StoredState(a, 1), b, RULES, baseline=False) == []


def test_personal_fields_are_not_tracked_unless_asked() -> None:
    assert "ssn" not in tracked_state(customer(), RULES)
    assert "dateOfBirth" not in tracked_state(customer(), RULES)
    assert tracked_state(customer(), TrackingRules(include_personal=True))["ssn"] == "01019921717"


def test_each_group_changes_on_its_own_and_context_changes_are_silent() -> None:
    old = StoredState(tracked_state(customer(), RULES), 3)
    moved = tracked_state(
        customer(postalAddress={**ADDRESS, "cityName": "Bergen", "postalCode": "5003"}), RULES
    )
    [change] = diff_customer("100001", old, moved, RULES, baseline=False)
    assert change.kind == "address"
    assert change.changed_fields == ["postalAddress.cityName", "postalAddress.postalCode"]
    assert change.before == {"postalAddress": {k: v for k, v in ADDRESS.items() if v}}
    renamed = tracked_state(customer(name="Åse Ødegård Berg"), RULES)
    assert diff_customer("100001", old, renamed, RULES, baseline=False) == []
    assert needs_snapshot_update(old, renamed)
    both = tracked_state(customer(balanceTotal=250.5, registrationStatusCode="DECEASED"), RULES)
    kinds = sorted(c.kind for c in diff_customer("100001", old, both, RULES, baseline=False))
    assert kinds == ["balance", "registration_status"]


def test_created_baseline_and_removed() -> None:
    state = tracked_state(customer(), RULES)
    [created] = diff_customer("100001", None, state, RULES, baseline=False)
    [base] = diff_customer("100001", None, state, RULES, baseline=True)
    assert (created.kind, base.kind) == ("created", "baseline")
    assert created.before is None
    assert base.after == state
    gone = removal("100001", StoredState(state, 2))
    assert (gone.kind, gone.after) == ("removed", None)


def test_event_ids_are_deterministic_and_change_with_revision() -> None:
    old = StoredState(tracked_state(customer(), RULES), 1)
    new = tracked_state(customer(balanceTotal=1500), RULES)
    [c1] = diff_customer("100001", old, new, RULES, baseline=False)
    [c2] = diff_customer("100001", old, new, RULES, baseline=False)
    assert build_event(c1, CTX).id == build_event(c2, CTX).id
    later = StoredState(old.state, 7)  # same values again later: A→B→A→B is a new change
    [c3] = diff_customer("100001", later, new, RULES, baseline=False)
    assert build_event(c3, CTX).id != build_event(c1, CTX).id


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (customer(), customer(balanceTotal=1500.25), "balance"),
        (customer(), customer(postalAddress={**ADDRESS, "cityName": "Tromsø"}), "address"),
        (customer(), customer(registrationStatusCode="EMIGRATED"), "registration_status"),
        (None, customer(), "created"),
        (None, customer(), "baseline"),
    ],
)
def test_every_event_is_a_valid_binary_cloudevent_matching_its_schema(
    before: dict[str, object] | None, after: dict[str, object], kind: str
) -> None:
    old = StoredState(tracked_state(before, RULES), 1) if before else None
    changes = diff_customer("100001", old, tracked_state(after, RULES), RULES, baseline=kind == "baseline")
    [event] = [build_event(c, CTX) for c in changes]
    data = check_event(event.key, event.value, event.headers)
    assert (
        data["type"] == f"amili.customer.{kind if kind in ('created', 'baseline') else kind + '_changed'}.v1"
    )
    if kind == "balance":
        assert data["delta"] == 500.25
        assert data["currency"] == "NOK"


def test_removed_event_is_valid() -> None:
    event = build_event(removal("100001", StoredState(tracked_state(customer(), RULES), 4)), CTX)
    assert check_event(event.key, event.value, event.headers)["before"]["balanceTotal"] == 1000


def test_committed_schema_files_match_the_models() -> None:
    for event_type in EVENT_MODELS:
        committed = json.loads((SCHEMAS / f"{event_type}.json").read_text())
        assert committed == json_schema(event_type), "run scripts/gen-docs"


GOOD = {"requestId": str(uuid.uuid4()), "clientNo": 2218, "requestedAt": "2026-11-24T10:00:00+00:00"}


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        (b"2218", b"{not json", "bad_json"),
        (b"2218", b"[1,2]", "bad_json"),
        (b"2218", json.dumps({**GOOD, "clientNo": "abc"}).encode(), "invalid"),
        (b"2218", json.dumps({**GOOD, "extra": 1}).encode(), "unknown_field"),
        (b"2218", json.dumps({**GOOD, "filters": {"colour": "red"}}).encode(), "unknown_field"),
        (b"2218", json.dumps({**GOOD, "requestedAt": "2026-11-24T10:00:00"}).encode(), "invalid"),
        (None, json.dumps(GOOD).encode(), "no_key"),
        (b"9999", json.dumps(GOOD).encode(), "key_mismatch"),
        (b"2218", b"{" + b" " * 70_000 + b"}", "oversize"),
        (b"2218", None, "empty"),
    ],
)
def test_malformed_requests_are_named(key: bytes | None, value: bytes | None, code: str) -> None:
    with pytest.raises(MalformedRequest) as info:
        parse_request(key, value, 65_536)
    assert info.value.code == code
    assert str(info.value)


def test_a_good_request_parses_with_filters() -> None:
    req = parse_request(
        b"2218", json.dumps({**GOOD, "filters": {"name": "A"}, "reason": "x"}).encode(), 65_536
    )
    assert req.clientNo == 2218
    assert req.filter_query == {"name": "A"}
    assert req.is_filtered
