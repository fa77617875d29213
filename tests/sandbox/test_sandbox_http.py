"""The sandbox over real HTTP: paging, queryIds, filters, status codes, writes, changes, controls."""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from .conftest import STATIC_TOKEN, Sandbox


def all_current(sb: Sandbox, client: int, **params: Any) -> list[dict[str, Any]]:
    r = sb.http.get(f"{sb.handle.control_url}/clients/{client}/customers", params=params)
    assert r.status_code == 200
    return list(r.json())


def read_all_pages(
    sb: Sandbox, client: int, **params: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Follow nextPage from a new query; (customers, summaries)."""
    r = sb.customers(client, **params)
    assert r.status_code == 200, r.text
    summaries = [r.json()["summary"]]
    customers = list(r.json()["customers"])
    while summaries[-1]["nextPage"]:
        r = sb.http.get(summaries[-1]["nextPage"], headers=sb.auth())
        assert r.status_code == 200, r.text
        summaries.append(r.json()["summary"])
        customers.extend(r.json()["customers"])
    return customers, summaries


def test_paging_with_query_id_serves_the_first_10000(sb: Sandbox) -> None:
    r = sb.customers(2218, pagesize=1000)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["summary", "customers"]
    s = body["summary"]
    assert list(s) == [
        "pageNo",
        "currentPageSize",
        "pageSizeLimit",
        "totalPages",
        "totalCount",
        "maximumCount",
        "nextPage",
        "lastPage",
        "queryId",
    ]
    qid = s["queryId"]
    assert s["pageNo"] == 1 and s["currentPageSize"] == 1000 and s["pageSizeLimit"] == 1000
    assert s["totalCount"] == 25_000, "default: the true match count, above maximumCount"
    assert s["maximumCount"] == 10_000 and s["totalPages"] == 10
    assert s["nextPage"] == f"{sb.base}/clients/2218/customers?query={qid}&pageno=2"
    assert s["lastPage"] == f"{sb.base}/clients/2218/customers?query={qid}&pageno=10"
    pages = {1: body["customers"]}
    for page in (7, 2, 10, 3, 3, 9, 4, 5, 6, 8):  # any order, and twice
        r = sb.customers(2218, query=qid, pageno=page)
        assert r.status_code == 200
        s2 = r.json()["summary"]
        assert s2["pageNo"] == page and s2["queryId"] == qid and s2["totalCount"] == 25_000
        assert s2["nextPage"] == (
            None if page == 10 else f"{sb.base}/clients/2218/customers?query={qid}&pageno={page + 1}"
        )
        if page in pages:
            assert r.json()["customers"] == pages[page], "a page read twice is the same"
        pages[page] = r.json()["customers"]
    numbers = [c["customerNo"] for p in range(1, 11) for c in pages[p]]
    assert len(numbers) == len(set(numbers)) == 10_000, "pages are disjoint"
    first = all_current(sb, 2218, limit=10_000)
    assert [c for p in range(1, 11) for c in pages[p]] == first
    # beyond the last page: an empty page, no nextPage
    r = sb.customers(2218, query=qid, pageno=11)
    assert r.status_code == 200 and r.json()["customers"] == [] and r.json()["summary"]["nextPage"] is None


def test_following_next_page_and_small_clients(sb: Sandbox) -> None:
    customers, summaries = read_all_pages(sb, 3000, pagesize=7)
    assert len(summaries) == math.ceil(500 / 7) == summaries[0]["totalPages"]
    assert customers == all_current(sb, 3000)
    assert summaries[-1]["currentPageSize"] == 500 % 7 and summaries[-1]["nextPage"] is None
    query = parse_qs(urlsplit(summaries[0]["nextPage"]).query)
    assert set(query) == {"query", "pageno"}, "continuation links carry only query and pageno"


def test_page_size_rules(sb: Sandbox) -> None:
    def limit(**params: Any) -> int:
        r = sb.customers(2218, **params)
        assert r.status_code == 200, r.text
        s = r.json()["summary"]
        assert len(r.json()["customers"]) == s["currentPageSize"] == s["pageSizeLimit"]
        return int(s["pageSizeLimit"])

    assert limit() == 100
    assert limit(pagesize=5) == 5
    assert limit(pagesize=4) == 10 and limit(pagesize=0) == 10 and limit(pagesize=-3) == 10
    assert limit(pagesize=1000) == 1000
    assert limit(pagesize=1001) == 1000, "above the cap: clamped (default --over-cap clamp)"
    assert limit(PageSize=7) == 7, "parameter names are matched case-insensitively"
    assert limit(pagesize="") == 100, "an empty value counts as not given"
    r = sb.customers(2218, maximumcount=250, pagesize=100)
    s = r.json()["summary"]
    assert s["maximumCount"] == 250 and s["totalPages"] == 3 and s["totalCount"] == 25_000
    r = sb.customers(2218, maximumcount=50_000)
    assert r.json()["summary"]["maximumCount"] == 10_000
    r = sb.customers(4000, pagesize=1000)
    s = r.json()["summary"]
    assert s["totalPages"] == 1 and s["nextPage"] is None and s["lastPage"].endswith("&pageno=1")


def test_filters(sb: Sandbox) -> None:
    everyone = all_current(sb, 3000)

    def names(**params: Any) -> list[str]:
        got, summaries = read_all_pages(sb, 3000, pagesize=1000, **params)
        assert summaries[0]["totalCount"] == len(got)
        return [c["customerNo"] for c in got]

    def want(pred: Any) -> list[str]:
        return [c["customerNo"] for c in everyone if pred(c)]

    target = everyone[123]
    assert names(customerno=target["customerNo"]) == [target["customerNo"]]
    assert names(accountno=target["accountNo"]) == [target["customerNo"]]
    company = next(c for c in everyone if c["organizationNo"])
    assert names(organizationno=company["organizationNo"]) == want(
        lambda c: c["organizationNo"] == company["organizationNo"]
    )
    assert names(customercategory="BUS") == want(lambda c: c["customerCategory"] == "BUS")
    assert names(customercategory="bus") == names(customercategory="BUS"), "values are case-insensitive"
    prefix = target["name"][:3]
    got = names(name=prefix.swapcase())
    assert target["customerNo"] in got
    assert got == want(lambda c: c["name"].casefold().startswith(prefix.casefold()))
    assert names(name="Ø") == want(lambda c: c["name"][0] in "Øø")
    assert names(name=target["name"][:2], customercategory=target["customerCategory"]) == want(
        lambda c: (
            c["name"].casefold().startswith(target["name"][:2].casefold())
            and c["customerCategory"] == target["customerCategory"]
        )
    )
    assert names(name="no such name at all") == []
    assert names(customerno="1000123", name="x-nobody") == []
    r = sb.customers(3000, name="no such name")
    s = r.json()["summary"]
    assert s["totalCount"] == 0 and s["totalPages"] == 0 and s["nextPage"] is None and s["lastPage"] is None
    # unknown parameters of the docs (expand, options, userid) are accepted and ignored
    assert names(expand="x", options="y", userid="z", customerno="") == want(lambda c: True)


def test_get_one_customer(sb: Sandbox) -> None:
    first = all_current(sb, 3000, limit=3)
    r = sb.get(f"/clients/3000/customers/{first[2]['customerNo']}")
    assert r.status_code == 200 and r.json() == first[2]
    r = sb.get("/clients/3000/customers/9999999")
    assert r.status_code == 404
    assert r.json()["status"] == 404 and r.json()["error"] == "NotFound" and "9999999" in r.json()["message"]


def test_status_codes(sb: Sandbox) -> None:
    r = sb.customers(2218, pagesize="ten")
    assert r.status_code == 400 and r.json()["parameter"] == "pagesize" and "pagesize" in r.json()["message"]
    for name, value in (
        ("pageno", "x"),
        ("pageno", 0),
        ("maximumcount", 0),
        ("maximumcount", "1.5"),
        ("accountno", "abc"),
    ):
        r = sb.customers(2218, **{name: value})
        assert r.status_code == 400, (name, value)
        assert r.json() == {
            "status": 400,
            "error": "BadRequest",
            "message": r.json()["message"],
            "parameter": name,
        }
    r = sb.get("/clients/abc/customers")
    assert r.status_code == 400 and r.json()["parameter"] == "clientno"
    # 401: missing, malformed, wrong signature, expired
    assert sb.http.get(f"{sb.base}/clients/2218/customers").status_code == 401
    r = sb.http.get(f"{sb.base}/clients/2218/customers", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert sb.customers(2218, token="not-a-jwt").status_code == 401
    forged = sb.token[:-4] + ("AAAA" if not sb.token.endswith("AAAA") else "BBBB")
    assert sb.customers(2218, token=forged).status_code == 401
    r = sb.customers(2218, token=sb.new_token(ttl=-10))
    assert r.status_code == 401 and r.json()["message"] == "token expired"
    # 403: the token does not list the client; 404: unknown client (also with a static token)
    restricted = sb.new_token(clients=[2218])
    assert sb.customers(2218, token=restricted).status_code == 200
    r = sb.customers(3000, token=restricted)
    assert r.status_code == 403 and r.json()["error"] == "Forbidden"
    assert sb.get("/clients/3000/customers/1000000", token=restricted).status_code == 403
    assert sb.customers(5555).status_code == 404
    assert sb.customers(5555, token=STATIC_TOKEN).status_code == 404
    assert sb.customers(3000, token=STATIC_TOKEN).status_code == 200
    # 404 for unknown paths and a JSON body for 405
    assert sb.http.get(f"{sb.base}/nothing", headers=sb.auth()).status_code == 404
    r = sb.http.patch(f"{sb.base}/clients/2218/customers", headers=sb.auth())
    assert r.status_code == 405 and r.json()["status"] == 405
    # 422 on DELETE of a customer with a balance
    with_balance = next(c for c in all_current(sb, 3000) if c["balanceTotal"] != 0)
    r = sb.http.delete(f"{sb.base}/clients/3000/customers/{with_balance['customerNo']}", headers=sb.auth())
    assert r.status_code == 422 and r.json()["error"] == "UnprocessableEntity"


def test_unknown_and_expired_query_id(sb: Sandbox) -> None:
    r = sb.customers(3000, query="nope", pageno=2)
    assert r.status_code == 404 and r.json()["parameter"] == "query" and "unknown" in r.json()["message"]
    qid = sb.customers(3000).json()["summary"]["queryId"]
    assert sb.customers(4000, query=qid).status_code == 404, "a queryId belongs to its client"
    assert sb.control("POST", "/reset").status_code == 200
    assert sb.customers(3000, query=qid, pageno=1).status_code == 404


def test_token_endpoint(sb: Sandbox) -> None:
    r = sb.fetch_token()
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert 3600 <= body["expires_on"] - body["not_before"] <= 3601 and isinstance(body["expires_on"], int)
    assert body["expires_on"] >= time.time() + 3599
    import jwt

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["clients"] == [2218, 3000, 4000] and claims["sub"] == sb.handle.client_id
    assert claims["exp"] == body["expires_on"] and claims["iat"] == body["not_before"]
    bad = sb.http.post(
        sb.handle.token_url, data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    wrong_grant = sb.http.post(sb.handle.token_url, data={"grant_type": "password"})
    assert wrong_grant.status_code == 400 and wrong_grant.json()["error"] == "unsupported_grant_type"
    basic = sb.http.post(
        sb.handle.token_url,
        data={"grant_type": "client_credentials"},
        auth=(sb.handle.client_id, sb.handle.client_secret),
    )
    assert basic.status_code == 200
    stats = sb.control("GET", "/stats").json()
    assert (
        stats["tokensIssued"] == 2 and stats["requests"]["401"] == 1 and stats["byRoute"]["token"]["200"] == 2
    )


def test_writes(sb: Sandbox) -> None:
    url = f"{sb.base}/clients/4000/customers"
    # POST without customerNo: created with a new number
    r = sb.http.post(url, headers=sb.auth(), json={"name": "Åse Ny", "postalAddress": {"cityName": "Bodø"}})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["customerNo"] == "1000040" and created["name"] == "Åse Ny" and created["clientNo"] == 4000
    assert created["postalAddress"]["cityName"] == "Bodø" and created["postalAddress"]["addressLine1"] == ""
    assert sb.get(f"/clients/4000/customers/{created['customerNo']}").json() == created
    # POST with a chosen customerNo, then POST again: create-or-update
    r = sb.http.post(
        url, headers=sb.auth(), json={"customerNo": "AB-77", "name": "Ørjan", "balanceTotal": 12.5}
    )
    assert r.status_code == 201
    r = sb.http.post(url, headers=sb.auth(), json={"customerNo": "ab-77", "phoneNo": "99887766"})
    assert r.status_code == 200 and r.json()["name"] == "Ørjan" and r.json()["phoneNo"] == "99887766"
    # PUT: missing or null keys keep their value; the address group is replaced as a whole
    target = all_current(sb, 4000, limit=1)[0]
    r = sb.http.put(
        url,
        headers=sb.auth(),
        json={
            "customerNo": target["customerNo"],
            "name": None,
            "phoneNo": "12345678",
            "postalAddress": {"addressLine1": "Ny vei 1", "postalCode": "0150", "cityName": "Oslo"},
            "distribution": {"type": "E"},
        },
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["name"] == target["name"] and updated["phoneNo"] == "12345678"
    assert updated["postalAddress"] == {
        "addressLine1": "Ny vei 1",
        "addressLine2": "",
        "addressLine3": "",
        "postalCode": "0150",
        "cityName": "Oslo",
        "countryText": "",
        "countryCode": "",
    }
    assert updated["distribution"] == {**target["distribution"], "type": "E"}
    assert {k for k in target if target[k] != updated.get(k)} <= {
        "phoneNo",
        "postalAddress",
        "distribution",
        "postalAddressChanged",
    }
    # the next query sees the writes
    listed = {c["customerNo"]: c for c in read_all_pages(sb, 4000, pagesize=1000)[0]}
    assert listed[target["customerNo"]] == updated and listed["AB-77"]["phoneNo"] == "99887766"
    assert len(listed) == 42
    # PUT errors: unknown customer 404, bad type / unknown key 400 naming it, clientNo mismatch 400
    assert sb.http.put(url, headers=sb.auth(), json={"customerNo": "nobody"}).status_code == 404
    r = sb.http.put(url, headers=sb.auth(), json={"customerNo": target["customerNo"], "dueDays": "ten"})
    assert r.status_code == 400 and r.json()["parameter"] == "dueDays"
    r = sb.http.put(url, headers=sb.auth(), json={"customerNo": target["customerNo"], "colour": "red"})
    assert r.status_code == 400 and r.json()["parameter"] == "colour"
    r = sb.http.post(url, headers=sb.auth(), json={"clientNo": 2218, "name": "x"})
    assert r.status_code == 400 and r.json()["parameter"] == "clientNo"
    assert sb.http.put(url, headers=sb.auth(), content=b"{not json").status_code == 400
    # DELETE: 200 without balance, then 404; 422 with a balance
    r = sb.http.delete(f"{url}/{created['customerNo']}", headers=sb.auth())
    assert r.status_code == 200 and r.json() == {"customerNo": created["customerNo"], "deleted": True}
    assert sb.http.delete(f"{url}/{created['customerNo']}", headers=sb.auth()).status_code == 404
    assert sb.http.delete(f"{url}/AB-77", headers=sb.auth()).status_code == 422
    assert sb.control("GET", "/clients/4000/count").json() == {"count": 41}


def test_changes_are_visible_in_the_next_query(sb: Sandbox) -> None:
    old_qid = sb.customers(3000, pagesize=1000).json()["summary"]["queryId"]
    old_page = sb.customers(3000, query=old_qid).json()["customers"]
    spec = {
        "clientNo": 3000,
        "seed": 1,
        "balance": 0.02,
        "address": 0.01,
        "registrationStatus": 0.01,
        "created": 5,
        "deleted": 4,
    }
    r = sb.control("POST", "/changes", spec)
    assert r.status_code == 200, r.text
    changes = r.json()["changes"]
    assert [c["kind"] for c in changes].count("balance") == 10
    assert {c["kind"] for c in changes} == {"balance", "address", "registration_status", "created", "deleted"}
    assert len({c["customerNo"] for c in changes}) == len(changes) == 10 + 5 + 5 + 5 + 4
    for c in changes:
        assert set(c) == {"customerNo", "kind", "before", "after"}
    listed = {c["customerNo"]: c for c in read_all_pages(sb, 3000, pagesize=1000)[0]}
    assert len(listed) == 500 + 5 - 4
    for c in changes:
        if c["after"] is None:
            assert c["customerNo"] not in listed
            assert sb.get(f"/clients/3000/customers/{c['customerNo']}").status_code == 404
        else:
            assert listed[c["customerNo"]] == c["after"]
    assert list(listed.values()) == all_current(sb, 3000)
    # an open query is a snapshot: its pages do not change
    assert sb.customers(3000, query=old_qid).json()["customers"] == old_page
    # the control endpoint validates
    assert sb.control("POST", "/changes", {"clientNo": 3000, "balance": 2.5}).status_code == 400
    assert sb.control("POST", "/changes", {"clientNo": 3000, "colour": 1}).status_code == 400
    assert sb.control("POST", "/changes", {"clientNo": 1}).status_code == 404
    assert sb.control("POST", "/changes", {"seed": 1}).status_code == 400


def test_deleted_regardless_of_balance_and_reset(sb: Sandbox) -> None:
    before = all_current(sb, 4000)
    changes = sb.control("POST", "/changes", {"clientNo": 4000, "seed": 9, "deleted": 40}).json()["changes"]
    assert len(changes) == 40 and any(c["before"]["balanceTotal"] != 0 for c in changes)
    assert sb.control("GET", "/clients/4000/count").json() == {"count": 0}
    assert all_current(sb, 4000) == []
    r = sb.customers(4000)
    assert r.json()["customers"] == [] and r.json()["summary"]["totalCount"] == 0
    sb.control("POST", "/reset")
    assert all_current(sb, 4000) == before


def test_stats_and_health(sb: Sandbox) -> None:
    assert sb.http.get(sb.handle.control_url.replace("/_sandbox", "/health")).json() == {"status": "Healthy"}
    assert sb.http.get(f"{sb.base}/health").status_code == 200
    qid = sb.customers(3000).json()["summary"]["queryId"]
    sb.customers(3000, query=qid, pageno=2)
    sb.customers(3000, pagesize="x")
    stats = sb.control("GET", "/stats").json()
    assert stats["requests"] == {"200": 2, "400": 1}
    assert stats["byRoute"] == {"list": {"200": 2, "400": 1}}
    assert stats["queriesOpen"] == 1 and stats["tokensIssued"] == 0
    config = sb.control("GET", "/config").json()
    assert config["clients"] == {"2218": 25000, "3000": 500, "4000": 40} and config["seed"] == 7


def test_server_timing_header(sb: Sandbox) -> None:
    r = sb.customers(2218, pagesize=1000)
    name, _, duration = r.headers["server-timing"].partition(";dur=")
    assert name == "app" and float(duration) > 0


def test_same_seed_same_data_over_http(sb: Sandbox) -> None:
    first = all_current(sb, 3000)
    sb.control("POST", "/changes", {"clientNo": 3000, "seed": 4, "balance": 0.5})
    sb.control("POST", "/reset")
    assert all_current(sb, 3000) == first
    with httpx.Client() as http:  # a stateless check that the list endpoint serves the same objects
        r = http.get(f"{sb.base}/clients/3000/customers", params={"pagesize": 1000}, headers=sb.auth())
        assert r.json()["customers"] == first


def test_keep_alive_responses_are_not_delayed(sb: Sandbox) -> None:
    """TCP_NODELAY is on: a keep-alive response does not wait for a delayed ACK (~40 ms each)."""
    health = sb.handle.control_url.replace("/_sandbox", "/health")
    sb.http.get(health)
    started = time.perf_counter()
    for _ in range(10):
        assert sb.http.get(health).status_code == 200
    assert time.perf_counter() - started < 0.3
