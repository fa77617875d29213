"""Unit tests of the fault suite's consistency check and of the engine's hot-path shortcuts (no Kafka)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import orjson
import pytest

from service.amili.models import DECLARED_FIELDS
from service.amili.parsing import parse_customer
from service.engine.extract import customer_fields, customer_state
from service.engine.unapplied import Unapplied
from service.snapshot.store import encode_state, stores_state
from service.sync.events import uuid4_text
from service.sync.records import encode_removed
from service.sync.state import TrackingRules, tracked_state
from testkit.oracle import BASELINE_TYPE, KIND_TO_TYPE, Verdict, check

RULES = TrackingRules()


def customer(no: str, balance: float = 100.0, city: str = "Oslo") -> dict[str, Any]:
    return {
        "customerNo": no,
        "accountNo": 500000 + int(no),
        "name": f"Kari {no}",
        "currency": "NOK",
        "balanceTotal": balance,
        "postalAddress": {"addressLine1": "Storgata 1", "postalCode": "0150", "cityName": city},
        "registrationStatusCode": "RESIDENT",
        "registrationStatusDate": "2025-01-01",
    }


def event(kind: str, no: str, after: dict[str, Any] | None, eid: str | None = None) -> dict[str, Any]:
    return {
        "id": eid or str(uuid.uuid4()),
        "type": KIND_TO_TYPE.get(kind, kind),
        "customerNo": no,
        "after": after,
    }


def snapshot_of(client: int, customers: list[dict[str, Any]]) -> dict[bytes, bytes | None]:
    return {
        f"{client}/{c['customerNo']}".encode(): encode_state(tracked_state(c, RULES), 0) for c in customers
    }


def run_check(
    events: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    now: list[dict[str, Any]],
    stored: list[dict[str, Any]] | None = None,
) -> Verdict:
    start = [customer("1"), customer("2")]
    return check(
        Verdict("unit"),
        events=[event(BASELINE_TYPE, c["customerNo"], c) for c in start] + events,
        results=[{"requestId": "r1"}, {"requestId": "r2"}],
        request_ids=["r1", "r2"],
        changes=changes,
        baseline_customers=["1", "2"],
        snapshot=snapshot_of(7, now if stored is None else stored),
        current_customers=now,
        client_no=7,
    )


def test_every_change_exactly_once_passes() -> None:
    after = customer("1", balance=664)  # the API's integer arrives as 664.0 in the event
    changes = [{"customerNo": "1", "kind": "balance", "before": customer("1"), "after": after}]
    verdict = run_check([event("balance", "1", {"balanceTotal": 664.0})], changes, [after, customer("2")])
    assert verdict.ok(), verdict.problems()


def test_lost_duplicated_unexpected_and_snapshot_drift_are_found() -> None:
    moved = customer("1", city="Bergen")
    changes = [{"customerNo": "1", "kind": "address", "before": customer("1"), "after": moved}]
    lost = run_check([], changes, [moved, customer("2")])
    assert lost.n_lost == 1 and not lost.ok()
    ev = event("address", "1", {"postalAddress": tracked_state(moved, RULES)["postalAddress"]}, "same-id")
    dup = run_check([ev, ev], changes, [moved, customer("2")])
    assert dup.n_duplicated == 2  # one extra event, and its id seen twice
    wrong = run_check([event("deleted", "2", None)], [], [customer("1"), customer("2")], [customer("1")])
    assert sum(wrong.unexpected.values()) == 1  # a removal no deletion explains
    assert any("not in the snapshot" in m for m in wrong.snapshot_mismatches)


def test_a_removal_marker_in_the_snapshot_is_an_absent_customer() -> None:
    removed = [{"customerNo": "2", "kind": "deleted", "before": customer("2"), "after": None}]
    events = [event("deleted", "2", None)]
    verdict = check(
        Verdict("unit"),
        events=[event(BASELINE_TYPE, c["customerNo"], c) for c in (customer("1"), customer("2"))] + events,
        results=[{"requestId": "r1"}],
        request_ids=["r1"],
        changes=removed,
        baseline_customers=["1", "2"],
        snapshot={**snapshot_of(7, [customer("1")]), b"7/2": encode_removed(2)},
        current_customers=[customer("1")],
        client_no=7,
    )
    assert verdict.ok(), verdict.problems()
    stale = check(
        Verdict("unit"),
        events=[event(BASELINE_TYPE, c["customerNo"], c) for c in (customer("1"), customer("2"))],
        results=[{"requestId": "r1"}],
        request_ids=["r1"],
        changes=[],
        baseline_customers=["1", "2"],
        snapshot={**snapshot_of(7, [customer("1")]), b"7/2": encode_removed(2)},
        current_customers=[customer("1"), customer("2")],
        client_no=7,
    )
    assert any("2 exists in the API but not in the snapshot" in m for m in stale.snapshot_mismatches)


def test_engine_state_shortcut_matches_the_reference() -> None:
    variants: list[dict[str, Any]] = [
        customer("1"),
        {**customer("2"), "postalAddress": {"addressLine1": "", "cityName": None}},
        {**customer("3"), "balanceTotal": "", "registrationStatusDate": "", "postalAddress": None},
        {**customer("4"), "name": "", "extraField": {"x": ""}},
    ]
    names = RULES.state_fields()
    declared = DECLARED_FIELDS
    for raw in variants:
        model = parse_customer(orjson.dumps(raw))
        state = customer_state(model, names, declared)
        assert state == tracked_state(customer_fields(model, names), RULES)
        stored = encode_state(state, 3)
        assert stores_state(stored, orjson.dumps(state))
        assert not stores_state(stored, orjson.dumps({**state, "balanceTotal": -1.5}))


@pytest.mark.parametrize("_", range(3))
def test_uuid4_text_is_uuid4(_: int) -> None:
    digest = os.urandom(32)
    assert uuid4_text(digest) == str(uuid.UUID(bytes=digest[:16], version=4))


def test_unapplied_buffer_round_trips() -> None:
    buf = Unapplied()
    records = [(f"7/{i}".encode(), orjson.dumps({"state": {"i": i}, "rev": 0})) for i in range(1000)]
    for k, v in records:
        buf.add(k, v)
    assert len(buf) == 1000
    assert list(buf.records()) == records
