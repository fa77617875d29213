"""Unit tests of the sandbox store: filters against brute force, the overlay, seeded changes."""

from __future__ import annotations

from typing import Any

import pytest

from service.sandbox.store import ChangeError, ClientData, Filters

N = 4000


@pytest.fixture
def client() -> ClientData:
    return ClientData(2218, N, 7)


def current(client: ClientData) -> list[dict[str, Any]]:
    return [client.resolve(r) for r in client.iter_current()]


def selected(client: ClientData, f: Filters, limit: int = 10_000) -> tuple[list[dict[str, Any]], int]:
    refs, total = client.select(f, limit)
    return [client.resolve(r) for r in refs], total


def brute(client: ClientData, f: Filters) -> list[dict[str, Any]]:
    return [c for c in current(client) if f.matches(c)]


FILTERS = [
    Filters(),
    Filters(name="ø"),
    Filters(name="Ola"),
    Filters(name="ola "),
    Filters(name="HANSEN"),
    Filters(name="1"),
    Filters(name="«"),
    Filters(name="zzz-nobody"),
    Filters(category="BUS"),
    Filters(category="cons"),
    Filters(category="PUB", name="b"),
    Filters(category="XYZ"),
    Filters(customer_no="1000017"),
    Filters(customer_no="1000017", name="nobody"),
    Filters(customer_no="999"),
    Filters(account_no=500_123),
    Filters(account_no=123),
]


@pytest.mark.parametrize("f", FILTERS, ids=repr)
def test_filters_match_brute_force(client: ClientData, f: Filters) -> None:
    want = brute(client, f)
    got, total = selected(client, f)
    assert got == want
    assert total == len(want)


def test_organization_number_filter(client: ClientData) -> None:
    company = next(c for c in current(client) if c["organizationNo"])
    got, total = selected(client, Filters(organization_no=company["organizationNo"]))
    assert company in got and total == len(got) >= 1
    assert all(c["organizationNo"] == company["organizationNo"] for c in got)
    assert selected(client, Filters(organization_no="123")) == ([], 0)


def test_limit_keeps_order_and_true_total(client: ClientData) -> None:
    got, total = selected(client, Filters(category="CONS"), limit=50)
    want = brute(client, Filters(category="CONS"))
    assert got == want[:50] and total == len(want)


def test_filters_see_the_overlay(client: ClientData) -> None:
    changes = client.apply_changes(
        3, {"address": 40, "deleted": 30, "created": 25, "balance": 0.01}, "2026-01-02"
    )
    renamed = client.get(client.find("1000005") or 0)
    assert renamed is not None
    renamed = {**renamed, "name": "Øyvind Overlay", "customerCategory": "PUB"}
    client.store(5, renamed)
    for f in [*FILTERS, Filters(name="øyvind o"), Filters(category="PUB")]:
        got, total = selected(client, f)
        assert got == brute(client, f), f
        assert total == len(got)
    assert selected(client, Filters(name="Øyvind Overlay"))[0] == [renamed]
    created = [c["after"] for c in changes if c["kind"] == "created"]
    assert selected(client, Filters(customer_no=created[0]["customerNo"]))[0] == [created[0]]
    assert current(client)[-25:] == created  # created customers sort after the generated ones


def test_changes_are_disjoint_real_and_seeded(client: ClientData) -> None:
    spec: dict[str, float | int] = {
        "balance": 0.02,
        "address": 0.01,
        "registration_status": 0.005,
        "created": 10,
        "deleted": 10,
    }
    before_all = {c["customerNo"]: c for c in current(client)}
    changes = client.apply_changes(1, spec, "2026-01-02")
    kinds = [c["kind"] for c in changes]
    assert kinds.count("balance") == 80 and kinds.count("address") == 40
    assert (
        kinds.count("registration_status") == 20
        and kinds.count("created") == 10
        and kinds.count("deleted") == 10
    )
    numbers = [c["customerNo"] for c in changes]
    assert len(set(numbers)) == len(numbers), "one kind of change per customer"
    for ch in changes:
        b, a = ch["before"], ch["after"]
        if ch["kind"] == "created":
            assert b is None and a["customerNo"] not in before_all
            continue
        assert b == before_all[ch["customerNo"]]
        if ch["kind"] == "deleted":
            assert a is None and client.find(ch["customerNo"]) is None
            continue
        assert a is not None and client.get(client.find(ch["customerNo"]) or -1) == a
        changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
        if ch["kind"] == "balance":
            assert changed == {"balanceTotal"} and a["balanceTotal"] != b["balanceTotal"]
        elif ch["kind"] == "address":
            assert "postalAddress" in changed and changed <= {"postalAddress", "postalAddressChanged"}
        else:
            assert changed <= {"registrationStatusCode", "registrationStatusDate"}
            assert a["registrationStatusCode"] != b["registrationStatusCode"]
    assert client.count == N
    # the same seed on the same state gives the same changes
    again = ClientData(2218, N, 7).apply_changes(1, spec, "2026-01-02")
    assert again == changes
    other = ClientData(2218, N, 7).apply_changes(2, spec, "2026-01-02")
    assert [c["customerNo"] for c in other] != numbers


def test_change_amount_rules(client: ClientData) -> None:
    assert (
        len(client.apply_changes(1, {"balance": 0.0001}, "2026-01-02")) == 1
    )  # a fraction > 0 is at least 1
    assert len(client.apply_changes(1, {"balance": 1.0}, "2026-01-02")) == N  # 1.0: every customer
    with pytest.raises(ChangeError):
        client.apply_changes(1, {"balance": 1.5}, "2026-01-02")
    with pytest.raises(ChangeError):
        client.apply_changes(1, {"deleted": N + 1}, "2026-01-02")
    with pytest.raises(ChangeError):
        client.apply_changes(1, {"created": -1}, "2026-01-02")


def test_delete_then_recreate_same_customer_no(client: ClientData) -> None:
    key = client.find("1000003")
    assert key == 3
    client.delete(3)
    assert client.find("1000003") is None and client.count == N - 1
    created = client.create({"name": "Ny Kunde"}, "1000003")
    assert client.find("1000003") == N and created["accountNo"] == 500_000 + N
    assert current(client)[-1]["customerNo"] == "1000003"
