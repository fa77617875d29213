"""Start-up switches, on a second sandbox process: capped totals, absent nextPage, caps as 400s,
short query and token lifetimes, restricted tokens, string token numbers, other paths, start-up faults,
and the data seed across processes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from service.sandbox.store import ClientData

from .conftest import Sandbox, _start

ALT_ARGS = [
    "--token-ttl", "1", "--token-clients", "2218", "--total-count", "capped", "--next-page-on-last", "absent",
    "--over-cap", "error", "--query-ttl", "1", "--static-token", "alt-static", "--token-numbers", "string",
    "--maximum-count-cap", "1000", "--page-size-cap", "200", "--page-size-default", "50",
    "--base-path", "/custom/arm", "--token-path", "/oauth2/token", "--client-id", "alt-id",
    "--client-secret", "alt-secret", "--public-url", "https://api.example.test",
    "--faults", json.dumps({"seed": 5, "faults": [{"kind": "429", "count": 1, "routes": ["one"]}]}),
]  # fmt: skip


@pytest.fixture(scope="module")
def alt() -> Iterator[Sandbox]:
    yield from _start({2218: 2500, 3000: 30}, 8, ALT_ARGS, token="alt-static")  # issued tokens live 1 s


def test_faults_from_the_command_line(alt: Sandbox) -> None:
    # must run first in this module: the start-up fault hits the first GET-one request
    assert alt.get("/clients/2218/customers/1000000").status_code == 429
    assert alt.get("/clients/2218/customers/1000000").status_code == 200
    assert alt.control("GET", "/faults").json()["seed"] == 5


def test_paths_and_credentials(alt: Sandbox) -> None:
    assert alt.handle.base_url.endswith("/custom/arm") and alt.handle.token_url.endswith("/oauth2/token")
    assert alt.handle.client_id == "alt-id" and alt.handle.client_secret == "alt-secret"
    assert alt.customers(2218).status_code == 200
    assert (
        alt.http.get(
            alt.handle.base_url.replace("/custom/arm", "/arm/v1") + "/clients/2218/customers",
            headers=alt.auth(),
        ).status_code
        == 404
    )


def test_capped_total_and_absent_next_page(alt: Sandbox) -> None:
    r = alt.customers(2218, pagesize=200)
    s = r.json()["summary"]
    assert s["totalCount"] == 1000 == s["maximumCount"], "capped mode: totalCount <= maximumCount"
    assert s["totalPages"] == 5 and s["pageSizeLimit"] == 200
    assert s["nextPage"].startswith("https://api.example.test/custom/arm/clients/2218/customers?query=")
    seen = list(r.json()["customers"])
    while "nextPage" in s:
        r = alt.http.get(
            s["nextPage"].replace("https://api.example.test", alt.handle.base_url.rsplit("/custom", 1)[0]),
            headers=alt.auth(),
        )
        s = r.json()["summary"]
        seen.extend(r.json()["customers"])
    assert s["pageNo"] == 5 and "nextPage" not in s and s["lastPage"].endswith("pageno=5")
    assert len({c["customerNo"] for c in seen}) == 1000
    r = alt.customers(2218, name="no such name")
    assert "nextPage" not in r.json()["summary"] and "lastPage" not in r.json()["summary"]
    few = alt.customers(2218, customercategory="PUB", maximumcount=1000).json()["summary"]
    assert 0 < few["totalCount"] < 1000, "below the cap the count is the same in both modes"


def test_caps_as_errors_and_default_page_size(alt: Sandbox) -> None:
    assert alt.customers(2218).json()["summary"]["pageSizeLimit"] == 50
    r = alt.customers(2218, pagesize=201)
    assert r.status_code == 400 and r.json()["parameter"] == "pagesize"
    r = alt.customers(2218, maximumcount=1001)
    assert r.status_code == 400 and r.json()["parameter"] == "maximumcount"
    assert alt.customers(2218, pagesize=200, maximumcount=1000).status_code == 200


def test_restricted_tokens_and_string_numbers(alt: Sandbox) -> None:
    body = alt.fetch_token().json()
    assert body["expires_in"] == "1" and isinstance(body["expires_on"], str)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["clients"] == [2218]
    assert alt.customers(2218, token=body["access_token"]).status_code == 200
    assert alt.customers(3000, token=body["access_token"]).status_code == 403
    assert alt.customers(3000, token="alt-static").status_code == 200, "static tokens work for every client"


def test_token_and_query_expiry(alt: Sandbox) -> None:
    token = alt.fetch_token().json()["access_token"]
    r = alt.customers(3000, token="alt-static", pagesize=10)
    qid = r.json()["summary"]["queryId"]
    assert alt.customers(2218, token=token).status_code == 200
    assert alt.customers(3000, token="alt-static", query=qid, pageno=2).status_code == 200
    time.sleep(2.1)
    r = alt.customers(2218, token=token)
    assert r.status_code == 401 and r.json()["message"] == "token expired"
    r = alt.customers(3000, token="alt-static", query=qid, pageno=3)
    assert r.status_code == 404 and "expired" in r.json()["message"]
    assert alt.control("GET", "/stats").json()["queriesOpen"] == 0


def test_seeds_across_processes(alt: Sandbox, main_sandbox: Sandbox) -> None:
    def served(sb: Sandbox) -> list[dict[str, object]]:
        r = httpx.get(f"{sb.handle.control_url}/clients/2218/customers", params={"limit": 300})
        return list(r.json())

    seven = served(main_sandbox)
    in_process = ClientData(2218, 300, 7)
    assert seven == [in_process.generate(i) for i in range(300)], "same seed, same data (another process)"
    eight = served(alt)
    assert [c["customerNo"] for c in eight] == [c["customerNo"] for c in seven]
    assert sum(a["name"] == b["name"] for a, b in zip(seven, eight, strict=True)) < 30, (
        "another seed, other data"
    )
    assert eight == [ClientData(2218, 300, 8).generate(i) for i in range(300)]
