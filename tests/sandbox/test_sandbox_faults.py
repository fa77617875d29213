"""Every fault kind over real HTTP, the fault spec's validation, and the seeded determinism."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx
import pytest

from .conftest import Sandbox


def set_faults(sb: Sandbox, spec: Any) -> dict[str, Any]:
    r = sb.control("POST", "/faults", spec)
    assert r.status_code == 200, r.text
    return dict(r.json())


def statuses(sb: Sandbox, n: int, client: int = 4000) -> list[int]:
    return [sb.customers(client).status_code for _ in range(n)]


def test_429_count_and_retry_after_seconds(sb: Sandbox) -> None:
    set_faults(sb, {"faults": [{"kind": "429", "count": 3, "retryAfter": 2}]})
    responses = [sb.customers(4000) for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 429, 200]
    assert all(r.headers["retry-after"] == "2" for r in responses[:3])
    assert responses[0].json() == {"status": 429, "error": "TooManyRequests", "message": "sandbox fault: 429"}
    stats = sb.control("GET", "/stats").json()
    assert stats["requests"] == {"429": 3, "200": 1} and stats["faultsFired"] == {"429": 3}
    described = sb.control("GET", "/faults").json()["faults"][0]
    assert described["fired"] == 3 and described["remaining"] == 0 and described["kind"] == "429"


def test_429_retry_after_http_date(sb: Sandbox) -> None:
    set_faults(sb, {"kind": "429", "count": 1, "retryAfter": 30, "retryAfterFormat": "http-date"})
    r = sb.customers(4000)
    assert r.status_code == 429
    when = email.utils.parsedate_to_datetime(r.headers["retry-after"]).timestamp()
    assert 25 < when - time.time() < 35
    set_faults(sb, {"kind": "429", "count": 1, "retryAfterFormat": "none"})
    r = sb.customers(4000)
    assert r.status_code == 429 and "retry-after" not in r.headers


def test_5xx_in_order_then_ok(sb: Sandbox) -> None:
    set_faults(
        sb,
        [{"kind": k, "count": 1} for k in ("500", "502", "503", "504")]
        + [{"kind": "503", "count": 1, "retryAfter": 5}],
    )
    responses = [sb.customers(4000) for _ in range(6)]
    assert [r.status_code for r in responses] == [500, 502, 503, 504, 503, 200]
    assert "retry-after" not in responses[2].headers and responses[4].headers["retry-after"] == "5"
    assert responses[1].json()["error"] == "BadGateway"


def test_401_fault(sb: Sandbox) -> None:
    set_faults(sb, {"kind": "401", "count": 1})
    assert statuses(sb, 2) == [401, 200]


def test_skip_routes_and_clients(sb: Sandbox) -> None:
    set_faults(sb, [{"kind": "500", "count": 1, "skip": 2}])
    assert statuses(sb, 4) == [200, 200, 500, 200]
    set_faults(sb, [{"kind": "429", "routes": ["one"]}])
    assert sb.customers(4000).status_code == 200
    assert sb.get("/clients/4000/customers/1000001").status_code == 429
    set_faults(sb, [{"kind": "503", "clients": [3000], "routes": "*"}])
    assert sb.customers(4000).status_code == 200 and sb.customers(3000).status_code == 503
    assert sb.fetch_token().status_code == 200, "the token route has no client"


def test_latency(sb: Sandbox) -> None:
    set_faults(sb, {"kind": "latency", "ms": 300, "count": 1})
    started = time.perf_counter()
    r = sb.customers(4000)
    slow = time.perf_counter() - started
    assert r.status_code == 200 and slow >= 0.3
    assert float(r.headers["server-timing"].split("dur=")[1]) < 300, "Server-Timing excludes the added delay"
    started = time.perf_counter()
    sb.customers(4000)
    assert time.perf_counter() - started < 0.3
    # latency combines with a status fault
    set_faults(sb, [{"kind": "latency", "ms": 200, "count": 1}, {"kind": "503", "count": 1}])
    started = time.perf_counter()
    assert sb.customers(4000).status_code == 503 and time.perf_counter() - started >= 0.2


def test_dropped_connection(sb: Sandbox) -> None:
    set_faults(sb, {"kind": "drop", "count": 1})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        sb.customers(4000)
    assert sb.customers(4000).status_code == 200, "the next request is served"
    stats = sb.control("GET", "/stats").json()
    assert stats["requests"] == {"dropped": 1, "200": 1}


def test_dropped_after_handling_a_write(sb: Sandbox) -> None:
    set_faults(sb, {"kind": "drop", "count": 1, "phase": "after", "routes": ["write"]})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        sb.http.post(
            f"{sb.base}/clients/4000/customers", headers=sb.auth(), json={"customerNo": "D1", "name": "X"}
        )
    assert sb.get("/clients/4000/customers/D1").status_code == 200, "the write happened, the answer was lost"


def test_truncated_json_body(sb: Sandbox) -> None:
    full = sb.customers(4000, pagesize=40).content
    set_faults(sb, {"kind": "truncate", "count": 1, "fraction": 0.5})
    r = sb.customers(4000, pagesize=40)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert len(r.content) == len(full) // 2 == int(r.headers["content-length"])
    assert full.startswith(r.content[:100])
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    assert sb.customers(4000).status_code == 200


def test_truncated_http_body(sb: Sandbox) -> None:
    set_faults(sb, {"kind": "truncate", "count": 1, "fraction": 0.3, "mode": "http"})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        sb.customers(4000, pagesize=40)
    assert sb.customers(4000).status_code == 200
    assert sb.control("GET", "/stats").json()["requests"] == {"truncated": 1, "200": 1}


def test_query_expiry_after_reads(sb: Sandbox) -> None:
    set_faults(sb, {"kind": "query_expiry", "afterReads": 2})
    qid = sb.customers(3000, pagesize=100).json()["summary"]["queryId"]  # read 1
    assert sb.customers(3000, query=qid, pageno=2).status_code == 200  # read 2
    r = sb.customers(3000, query=qid, pageno=3)
    assert r.status_code == 404 and r.json()["parameter"] == "query" and "expired" in r.json()["message"]
    assert sb.customers(3000, query=qid, pageno=1).status_code == 404, "stays expired"
    assert sb.customers(3000).status_code == 200, "new queries work"


def test_query_expiry_after_seconds(sb: Sandbox) -> None:
    set_faults(sb, {"kind": "query_expiry", "afterSeconds": 0.4})
    qid = sb.customers(3000).json()["summary"]["queryId"]
    assert sb.customers(3000, query=qid, pageno=2).status_code == 200
    time.sleep(0.5)
    assert sb.customers(3000, query=qid, pageno=3).status_code == 404


def test_query_expiry_now_count_form(sb: Sandbox) -> None:
    set_faults(sb, {"kind": "query_expiry", "count": 1})
    qid = sb.customers(3000).json()["summary"]["queryId"]  # a new query is not hit
    assert sb.customers(3000, query=qid, pageno=2).status_code == 404
    qid2 = sb.customers(3000).json()["summary"]["queryId"]
    assert sb.customers(3000, query=qid2, pageno=2).status_code == 200


def test_token_endpoint_failures(sb: Sandbox) -> None:
    set_faults(sb, {"kind": "503", "count": 2, "routes": ["token"], "retryAfter": 1})
    responses = [sb.fetch_token() for _ in range(3)]
    assert [r.status_code for r in responses] == [503, 503, 200]
    assert responses[0].headers["retry-after"] == "1"
    assert sb.customers(4000).status_code == 200, "the ARM routes are not hit"
    set_faults(sb, {"kind": "500", "count": 1, "routes": ["token"]})
    assert sb.fetch_token().status_code == 500
    stats = sb.control("GET", "/stats").json()
    assert stats["tokensIssued"] == 1 and stats["byRoute"]["token"] == {"503": 2, "200": 1, "500": 1}


def test_rate_is_seeded(sb: Sandbox) -> None:
    spec = {"seed": 11, "faults": [{"kind": "500", "rate": 0.5}]}
    set_faults(sb, spec)
    first = statuses(sb, 24)
    assert 4 < first.count(500) < 20
    set_faults(sb, spec)
    assert statuses(sb, 24) == first, "same seed, same faults"
    set_faults(sb, {**spec, "seed": 12})
    assert statuses(sb, 24) != first
    set_faults(sb, {"seed": 11, "faults": [{"kind": "500", "rate": 0.5, "count": 2}]})
    assert statuses(sb, 24).count(500) == 2


def test_fault_controls(sb: Sandbox) -> None:
    shown = set_faults(sb, {"seed": 3, "faults": [{"kind": "429", "rate": 0.1}]})
    assert shown == {
        "seed": 3,
        "faults": [{"kind": "429", "rate": 0.1, "seen": 0, "fired": 0, "remaining": None}],
    }
    assert sb.control("DELETE", "/faults").json()["faults"] == []
    for bad in (
        {"kind": "418"},
        {"kind": "429", "rate": 2},
        {"kind": "429", "colour": 1},
        {"kind": "drop", "phase": "during"},
        {"kind": "429", "routes": ["nope"]},
        {"faults": {}},
        {"kind": "truncate", "fraction": 1},
        "429",
        {"kind": "429", "count": 1.5},
    ):
        r = sb.control("POST", "/faults", bad)
        assert r.status_code == 400, bad
        assert r.json()["status"] == 400
    assert sb.control("GET", "/faults").json()["faults"] == [], "a bad spec changes nothing"
    set_faults(sb, {"kind": "503"})
    assert sb.customers(4000).status_code == 503
    sb.control("POST", "/reset")
    assert sb.customers(4000).status_code == 200, "reset clears faults"
    # controls and health are never faulted
    set_faults(sb, {"kind": "500", "routes": "*"})
    assert sb.control("GET", "/stats").status_code == 200
    assert sb.http.get(sb.handle.control_url.replace("/_sandbox", "/health")).status_code == 200
