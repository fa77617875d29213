"""Unit tests of the customer generator (in process, no server)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from service.sandbox import data as g
from service.sandbox import names as w
from service.sandbox.store import ClientData

# Every key of the documented customer object (docs.amili.dev, "GET a list of customers", both
# examples) with the JSON type its example value has. "number" = int or float.
DOC_TYPES: dict[str, Any] = {
    "clientNo": int, "accountNo": int, "customerNo": str, "name": str, "postalAddress": dict,
    "postalReturnStatus": int, "postalReturnDate": str, "customerCategory": str, "emailAddressDocument": list,
    "secondaryEmailAddress": list, "phoneNo": str, "secondaryPhoneNo": str, "organizationNo": str,
    "organizationNoScheme": str, "dateOfBirth": str, "yearOfBirth": int, "ssn": str, "ssnCountry": str,
    "informalName": str, "customerGroupCode": str, "priceNetOrGross": str, "language": str,
    "usingLanguage": str, "currency": str, "distribution": dict, "sellerReference": str, "buyerReference": str,
    "bankAccountNo": str, "stopReminderUntil": str, "stopDebtCollectionUntil": str,
    "stopInterestCalcUntil": str, "efakturaBlockIds": list, "peppolBlockIds": list, "digipostBlockIds": list,
    "dueDays": int, "vatLiable": bool, "arRules": list, "naceCodes": list, "districtCodes": list,
    "parentCustomerNo": str, "parentOrganizationNo": str, "discountRate": "number", "activeStatusWeb": str,
    "customerMessage": str, "limitAmount": "number", "registrationStatusCode": str,
    "registrationStatusDate": str, "postalAddressChanged": str, "customerKid": str, "balanceTotal": "number",
}  # fmt: skip
POSTAL_KEYS = {
    "addressLine1",
    "addressLine2",
    "addressLine3",
    "postalCode",
    "cityName",
    "countryText",
    "countryCode",
}
DISTRIBUTION_TYPES = {
    "type": str,
    "einvoiceCode": int,
    "peppolEndpointId": str,
    "peppolEndpointIdScheme": str,
}
DATE_KEYS = {k for k in DOC_TYPES if k.endswith(("Date", "Until", "Changed")) or k == "dateOfBirth"}
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(scope="module")
def customers() -> list[dict[str, Any]]:
    client = ClientData(2218, 5000, 7)
    return [client.generate(i) for i in range(5000)]


def test_every_documented_field_with_its_type(customers: list[dict[str, Any]]) -> None:
    present: Counter[str] = Counter()
    for c in customers:
        assert set(c) <= set(DOC_TYPES), set(c) - set(DOC_TYPES)
        for key, value in c.items():
            present[key] += 1
            want = DOC_TYPES[key]
            if want == "number":
                assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
            elif want is int:
                assert isinstance(value, int) and not isinstance(value, bool), (key, value)
            else:
                assert isinstance(value, want), (key, value)
            if key in DATE_KEYS:
                assert ISO_DATE.match(value), (key, value)
            if want is list:
                assert all(isinstance(v, str) for v in value), (key, value)
        assert set(c["postalAddress"]) == POSTAL_KEYS
        assert all(isinstance(v, str) for v in c["postalAddress"].values())
        assert set(c["distribution"]) == set(DISTRIBUTION_TYPES)
        for key, typ in DISTRIBUTION_TYPES.items():
            assert isinstance(c["distribution"][key], typ)
    # every documented key shows up somewhere, and the optional ones are sometimes absent
    assert set(present) == set(DOC_TYPES)
    optional = {k for k, n in present.items() if n < len(customers)}
    assert optional == set(g.OPTIONAL_KEYS)


def test_identifiers(customers: list[dict[str, Any]]) -> None:
    numbers = [c["customerNo"] for c in customers]
    assert len(set(numbers)) == len(numbers)
    assert numbers[:3] == ["1000000", "1000001", "1000002"]
    assert [c["accountNo"] for c in customers[:2]] == [500000, 500001]
    orgnos = [c["organizationNo"] for c in customers if c["organizationNo"]]
    assert len(orgnos) > 1000
    for orgno in orgnos:
        assert len(orgno) == 9 and orgno[0] in "89"
        weights = (3, 2, 7, 6, 5, 4, 3, 2)
        check = 11 - sum(int(d) * wt for d, wt in zip(orgno[:8], weights, strict=True)) % 11
        assert (0 if check == 11 else check) == int(orgno[8]), orgno
    ssns = [c["ssn"] for c in customers if c["ssn"]]
    assert len(ssns) > 1000
    for c in customers:
        if c["ssn"]:
            ssn = c["ssn"]
            assert len(ssn) == 11 and ssn.isdigit()
            assert g.is_valid_synthetic_ssn(ssn)
            assert int(ssn[2:4]) > 80, "synthetic: month + 80"
            assert ssn[:2] == c["dateOfBirth"][8:10] and ssn[4:6] == c["dateOfBirth"][2:4]
            assert c["ssnCountry"] == "NO"
    kids = [c["customerKid"] for c in customers if c["customerKid"]]
    assert kids and all(len(k) == 21 and g.is_valid_kid(k) for k in kids)
    accounts = [c["bankAccountNo"] for c in customers if c["bankAccountNo"]]
    assert accounts and all(g.is_valid_bank_account(a) for a in accounts)
    # the docs' own KID example follows the same layout
    assert g.make_kid(2218, 500002) == "500221850000200000006"


def test_awkward_names_exist(customers: list[dict[str, Any]]) -> None:
    firsts = Counter(c["name"][0] for c in customers)
    for letter in "ÆØÅ":
        assert firsts[letter] + firsts[letter.lower()] > 0, letter
    assert sum(n for ch, n in firsts.items() if ch.isdigit()) > 10
    assert sum(n for ch, n in firsts.items() if ch.islower()) > 10
    assert sum(n for ch, n in firsts.items() if not ch.isalnum()) > 10
    assert any(c["name"].isupper() for c in customers)


def test_sparse_fields(customers: list[dict[str, Any]]) -> None:
    def share(pred: Any) -> float:
        return sum(1 for c in customers if pred(c)) / len(customers)

    assert 0 < share(lambda c: c["phoneNo"] == "") < 0.3
    assert 0 < share(lambda c: c["emailAddressDocument"] == []) < 0.3
    assert 0 < share(lambda c: c["ssn"] == "") < 0.9
    assert 0 < share(lambda c: c["postalAddress"]["cityName"] == "") < 0.05
    assert 0 < share(lambda c: "postalReturnDate" in c) < 0.2
    assert all(("postalReturnDate" in c) == (c["postalReturnStatus"] == 100) for c in customers)
    assert 0 < share(lambda c: c["balanceTotal"] != 0) < 0.9
    assert 0 < share(lambda c: isinstance(c["balanceTotal"], float)) < 0.9
    assert share(lambda c: c["balanceTotal"] < 0) > 0
    cats = Counter(c["customerCategory"] for c in customers)
    assert set(cats) == {"CONS", "BUS", "PUB", ""}
    assert share(lambda c: c["postalAddress"]["countryCode"] not in ("NO", "")) > 0
    codes = Counter(c["registrationStatusCode"] for c in customers)
    assert len(codes) > 5 and codes[""] > 0


def test_postal_codes_look_real(customers: list[dict[str, Any]]) -> None:
    norwegian = [c["postalAddress"] for c in customers if c["postalAddress"]["countryCode"] == "NO"]
    assert all(re.fullmatch(r"\d{4}", a["postalCode"]) and a["cityName"] for a in norwegian)
    assert {a["cityName"] for a in norwegian} >= {"Oslo", "Bergen", "Tromsø", "Ålesund"}


def test_deterministic_per_client_seed_and_index() -> None:
    a = ClientData(2218, 100, 7)
    b = ClientData(2218, 300_000, 7)  # the client's size does not change its customers
    assert [a.generate(i) for i in range(100)] == [b.generate(i) for i in range(100)]
    assert b.generate(70_000) == ClientData(2218, 70_001, 7).generate(70_000)
    other_seed = ClientData(2218, 100, 8)
    other_client = ClientData(3000, 100, 7)
    assert sum(a.generate(i)["name"] == other_seed.generate(i)["name"] for i in range(100)) < 20
    assert (
        sum(a.generate(i)["postalAddress"] == other_client.generate(i)["postalAddress"] for i in range(100))
        < 20
    )


def test_case_variants_do_not_change_matching() -> None:
    for kind in range(g.N_KINDS):
        for a in range(0, 256, 3):
            for b in range(0, 256, 5):
                name = g.base_name(kind, a, b)
                assert name.upper().casefold() == name.casefold() == name.lower().casefold()


def test_word_lists_have_the_awkward_starts() -> None:
    starts = {n[0] for n in (*w.FIRST_NAMES, *w.COMPANY_WORDS)}
    assert {"Æ", "Ø", "Å"} <= starts
    assert any(s.isdigit() for s in starts) and any(s.islower() for s in starts)
    assert any(not s.isalnum() for s in starts)
