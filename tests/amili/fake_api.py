"""An in-memory ARM customer endpoint for `httpx.MockTransport` (unit tests only).

Name filter: case-insensitive prefix; other filters exact. `true_total=False` caps totalCount at
maximumCount like an API that hides the true count. `fault(request)` may return a response to send
instead of the normal one (fault injection per test).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
import orjson

from service.config import ApiSettings

BASE = "https://arm.test/arm/v1"
TOKEN_URL = "https://auth.test/token"
CLIENT_SECRET = "s3cret-client-secret-value"


def make_customers(n: int, client_no: int = 2218, names: list[str] | None = None) -> list[dict[str, Any]]:
    first = [
        "Ola",
        "Kari",
        "Per",
        "Anne",
        "Øyvind",
        "Åse",
        "Ærlig",
        "Bjørn",
        "Liv",
        "Zara",
        "7-Eleven",
        "Hans",
    ]
    out = []
    for i in range(n):
        name = names[i % len(names)] if names else f"{first[i % len(first)]} Nordmann {i}"
        out.append(
            {
                "clientNo": client_no,
                "accountNo": 500000 + i,
                "customerNo": str(100000 + i),
                "name": name,
                "balanceTotal": i * 1.5,
                "postalAddress": {"addressLine1": f"Gate {i}", "postalCode": "0150", "cityName": "Oslo"},
                "registrationStatusDate": "2025-03-06",
                "someFutureField": {"x": i},
            }
        )
    return out


@dataclass
class FakeArm:
    customers: dict[int, list[dict[str, Any]]]
    true_total: bool = True
    default_cap: int = 10_000
    token: str = "tok-0"
    token_answer: Callable[[int], dict[str, Any]] | None = None
    token_delay: float = 0.0
    fault: Callable[[httpx.Request], httpx.Response | None] | None = None
    next_page_style: str = "url"  # url | null | absent | empty
    queries: dict[str, tuple[list[dict[str, Any]], int, int]] = field(default_factory=dict)
    requests: list[tuple[float, httpx.Request]] = field(default_factory=list)
    token_requests: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((time.monotonic(), request))
        if self.fault is not None and (answer := self.fault(request)) is not None:
            return answer
        if request.url.host == "auth.test":
            return await self._token(request)
        if self.valid_tokens and request.headers.get("Authorization", "")[7:] not in self.valid_tokens:
            return httpx.Response(401, json={"error": "invalid token"})
        raw = request.url.raw_path.decode().split("?")[0]
        parts = [unquote(p) for p in raw.split("/")]  # ['', 'arm', 'v1', 'clients', n, 'customers', (no)]
        client_no = int(parts[4])
        if client_no not in self.customers:
            return httpx.Response(
                404, json={"status": 404, "error": "NotFound", "message": f"client {client_no} not found"}
            )
        if client_no == 403:
            return httpx.Response(403, json={"message": "forbidden"})
        rows = self.customers[client_no]
        if len(parts) == 7:
            for row in rows:
                if row["customerNo"] == parts[6]:
                    return httpx.Response(200, json=row)
            return httpx.Response(
                404, json={"status": 404, "error": "NotFound", "message": "customer not found"}
            )
        q = request.url.params
        if "query" in q:
            if q["query"] not in self.queries:
                return httpx.Response(
                    404, json={"status": 404, "error": "NotFound", "message": "query not found"}
                )
            matched, cap, size = self.queries[q["query"]]
            return self._page(request, q["query"], matched, cap, size, int(q["pageno"]))
        size = int(q.get("pagesize", "100"))
        size = 10 if size < 5 else size
        cap = int(q.get("maximumcount", str(self.default_cap)))
        matched = [r for r in rows if self._match(r, q)]
        qid = f"q{next(self._ids)}"
        self.queries[qid] = (matched, cap, size)
        return self._page(request, qid, matched, cap, size, 1)

    @staticmethod
    def _match(row: dict[str, Any], q: httpx.QueryParams) -> bool:
        fields = {
            "customerno": "customerNo",
            "accountno": "accountNo",
            "organizationno": "organizationNo",
            "customercategory": "customerCategory",
        }
        for key, name in fields.items():
            if key in q and str(row.get(name)).casefold() != q[key].casefold():
                return False
        return not (
            "name" in q and not str(row.get("name") or "").casefold().startswith(q["name"].casefold())
        )

    def _page(
        self,
        request: httpx.Request,
        qid: str,
        matched: list[dict[str, Any]],
        cap: int,
        size: int,
        page_no: int,
    ) -> httpx.Response:
        visible = matched[:cap]
        total_pages = math.ceil(len(visible) / size)
        chunk = visible[(page_no - 1) * size : page_no * size]
        summary: dict[str, Any] = {
            "pageNo": page_no,
            "currentPageSize": len(chunk),
            "pageSizeLimit": size,
            "totalPages": total_pages,
            "totalCount": len(matched) if self.true_total else min(len(matched), cap),
            "maximumCount": cap,
            "lastPage": f"{BASE}/x?query={qid}&pageno={total_pages}",
            "queryId": qid,
        }
        if page_no < total_pages:
            summary["nextPage"] = f"{BASE}/x?query={qid}&pageno={page_no + 1}"
        elif self.next_page_style == "null":
            summary["nextPage"] = None
        elif self.next_page_style == "empty":
            summary["nextPage"] = ""
        return httpx.Response(200, content=orjson.dumps({"summary": summary, "customers": chunk}))

    async def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests += 1
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        form = dict(httpx.QueryParams(request.content.decode()))
        if form.get("client_secret") != CLIENT_SECRET or form.get("grant_type") != "client_credentials":
            return httpx.Response(401, json={"error": "invalid_client"})
        self.token = f"tok-{self.token_requests}"
        self.valid_tokens = {self.token}
        answer = (
            self.token_answer(self.token_requests)
            if self.token_answer
            else {"access_token": self.token, "token_type": "Bearer", "expires_in": "3599"}
        )
        answer.setdefault("access_token", self.token)
        return httpx.Response(200, json=answer)

    def list_requests(self) -> list[httpx.Request]:
        return [r for _, r in self.requests if r.url.host == "arm.test"]


def unit_settings(**overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "base_url": BASE,
        "token_url": TOKEN_URL,
        "client_id": "cid",
        "client_secret": CLIENT_SECRET,
        "page_size": 10,
        "maximum_count": 100,
        "concurrency": 4,
        "rate_limit": 10_000,
        "retry_attempts": 4,
        "retry_timeout": 10,
        "retry_wait_initial": 0.01,
        "retry_wait_max": 0.05,
    }
    values.update(overrides)
    return ApiSettings(**values)
