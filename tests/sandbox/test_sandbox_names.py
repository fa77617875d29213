"""Name mixes, name-ordered listing and the customerno prefix switch, over real HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from service.sandbox.store import ClientData, Filters

from .conftest import Sandbox, _start

DENSE, STUCK, CLASSIC = 2218, 3000, 4000


@pytest.fixture(scope="module")
def mixes() -> Iterator[Sandbox]:
    clients = {DENSE: 200_000, STUCK: 30_000, CLASSIC: 500}
    yield from _start(clients, 7, ["--name-mix", f"{DENSE}=dense,{STUCK}=stuck", "--static-token", "t"], "t")


@pytest.fixture
def mx(mixes: Sandbox) -> Iterator[Sandbox]:
    mixes.control("POST", "/reset")
    yield mixes
    mixes.control("POST", "/reset")


def total(sb: Sandbox, client: int, **params: str) -> int:
    r = sb.customers(client, pagesize=5, **params)
    assert r.status_code == 200, r.text
    return int(r.json()["summary"]["totalCount"])


@pytest.mark.parametrize(
    "prefix",
    ["kari ", "anne-marie ", "d'angelo ", "gó", "dr. ", "van der ", "über ", "holm & co "],
)
def test_dense_families_exceed_the_cap_through_awkward_characters(mx: Sandbox, prefix: str) -> None:
    assert total(mx, DENSE, name=prefix) > 10_000
    assert total(mx, DENSE, name=prefix.upper()) == total(mx, DENSE, name=prefix)  # case-insensitive


def test_dense_families_continue_through_letters_outside_a_fixed_alphabet(mx: Sandbox) -> None:
    for prefix in ("kari ç", "kari ö", "kari ü", "kari š", "kari ż"):
        assert 0 < total(mx, DENSE, name=prefix) < 10_000
    assert total(mx, CLASSIC, name="über") == 0  # the classic mix is unchanged


def test_no_dense_name_is_borne_by_more_than_the_cap_at_a_million(mx: Sandbox) -> None:
    """Names equal to a prefix cannot be split: the dense mix (the bench's, up to 1,000,000 customers,
    five times this client) keeps every exact name well under the 10,000 cap."""
    everyone = mx.control("GET", f"/clients/{DENSE}/customers").json()
    most = Counter(c["name"].casefold() for c in everyone).most_common(1)[0][1]
    assert 5 * most < 10_000 // 2


def test_stuck_mix_has_names_no_prefix_separates(mx: Sandbox) -> None:
    everyone = mx.control("GET", f"/clients/{STUCK}/customers").json()
    names = [c["name"] for c in everyone]
    assert names.count("Fjord AS") + names.count("FJORD AS") + names.count("fjord as") > 1_000
    assert total(mx, STUCK, name="fjord as") > 4_000  # the query total: every case variant
    assert "" in names and any(n.startswith(" ") for n in names)


def test_name_ordered_listing_switch(mx: Sandbox) -> None:
    by_key = mx.customers(DENSE, name="g", pagesize=1000).json()
    assert [c["customerNo"] for c in by_key["customers"]] == sorted(
        c["customerNo"] for c in by_key["customers"]
    )
    assert any(c["name"].casefold().startswith("gó") for c in by_key["customers"])  # a sample
    r = mx.control("POST", "/config", {"listOrder": "name"})
    assert r.status_code == 200 and r.json()["listOrder"] == "name"
    by_name = mx.customers(DENSE, name="g", pagesize=1000).json()
    folded = [c["name"].casefold() for c in by_name["customers"]]
    assert folded == sorted(folded)
    assert not any(n.startswith("gó") for n in folded)  # the first page is not a sample any more
    assert by_name["summary"]["totalCount"] == by_key["summary"]["totalCount"]
    last = mx.customers(DENSE, query=by_name["summary"]["queryId"], pageno=10).json()["customers"]
    assert [c["name"].casefold() for c in last] == sorted(c["name"].casefold() for c in last)
    assert folded[-1] <= last[0]["name"].casefold()


def test_name_order_merges_changed_customers(mx: Sandbox) -> None:
    mx.control("POST", "/config", {"listOrder": "name"})
    created = mx.control("POST", "/changes", {"clientNo": CLASSIC, "seed": 3, "created": 5, "deleted": 5})
    assert created.status_code == 200
    rows = mx.customers(CLASSIC, pagesize=1000).json()["customers"]
    folded = [c["name"].casefold() for c in rows]
    assert folded == sorted(folded) and len(rows) == 500
    gone = {c["customerNo"] for c in created.json()["changes"] if c["kind"] == "deleted"}
    assert not gone & {c["customerNo"] for c in rows}


def test_customerno_prefix_switch(mx: Sandbox) -> None:
    assert total(mx, CLASSIC, customerno="100004") == 0  # exact by default: no such customer
    assert total(mx, CLASSIC, customerno="1000042") == 1
    assert (
        mx.control("POST", "/config", {"customerNoFilter": "prefix"}).json()["customerNoFilter"] == "prefix"
    )
    assert total(mx, CLASSIC, customerno="100004") == 10
    assert total(mx, CLASSIC, customerno="10001") == 100
    assert total(mx, DENSE, customerno="10") == 100_000 and total(mx, DENSE, customerno="11") == 100_000
    assert total(mx, STUCK, customerno="1001", name="fjord as") == len(
        [
            c
            for c in ClientData(STUCK, 30_000, 7, "stuck").select(Filters(name="fjord as"), 30_000)[0]
            if 1000 <= c < 2000
        ]
    )
    mx.control("POST", "/reset")
    assert mx.control("GET", "/config").json()["customerNoFilter"] == "exact"  # reset restores the start


def test_bad_switch_is_refused_and_changes_nothing(mx: Sandbox) -> None:
    r = mx.control("POST", "/config", {"listOrder": "name", "customerNoFilter": "fuzzy"})
    assert r.status_code == 400 and "customerNoFilter" in r.json()["message"]
    assert mx.control("GET", "/config").json()["listOrder"] == "key"
