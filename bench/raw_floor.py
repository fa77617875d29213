"""The raw floor: the pages the client floor read, fetched with plain httpx and decoded with
`orjson.loads` alone (no models, no guards, no slicing logic). It is the reference of the client
floor: what reading the same pages costs when nothing but HTTP and JSON decoding is done.

How "the same pages" is kept exact: the client floor's HTTP transport is wrapped by `ListRecorder`,
which records every list request the read sends, in order: the first request of each query (its
filters, `pagesize`, `maximumcount`) and every page request (`query` + `pageno`). A queryId only
lives in the server, so a page request is recorded against the first request whose answer issued
that queryId (read from the answer's `summary`, which the sandbox writes first). The raw floor
then sends the same first requests with the same parameters and, for each, the same page numbers
under the queryId its own answer got: the same requests, the same concurrency (`concurrency`
connections sending at once, pages of open queries before new queries, as the reader does), the
same token, the same headers. It does not wait for a parent slice before its children (it knows
them already), so it is an upper bound of what any reader of these pages can do.

    .venv/bin/python -m bench.floor ... --raw PLAN.json   # in a fresh process, like the client floor
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from service.amili.client import connection_limits
from service.config import ApiSettings

QUERY_ID = b'"queryId":"'


@dataclass
class Query:
    """One first request of the client's read and the page numbers it then fetched under its queryId."""

    params: dict[str, str]
    query_id: str | None = None
    pages: list[int] = field(default_factory=list)


@dataclass
class ListRecorder:
    """Records the list requests of one read (install with `transport`)."""

    queries: list[Query] = field(default_factory=list)
    by_query_id: dict[str, Query] = field(default_factory=dict)
    unmatched_pages: int = 0
    requests: int = 0

    def transport(self, settings: ApiSettings) -> httpx.AsyncBaseTransport:
        """The transport `httpx.AsyncClient` builds itself for these settings, wrapped."""
        inner = httpx.AsyncHTTPTransport(
            limits=connection_limits(settings),
            http1=True,
            http2=False,
        )
        return _Recording(inner, self)

    def plan(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "unmatched_pages": self.unmatched_pages,
            "queries": [{"params": q.params, "pages": q.pages} for q in self.queries],
        }


def query_id_of(body: bytes) -> str | None:
    """The queryId of a list answer, found without decoding the page (the summary comes first)."""
    at = body.find(QUERY_ID, 0, 4096)
    if at < 0:
        at = body.find(QUERY_ID)
    if at < 0:
        return None
    start = at + len(QUERY_ID)
    end = body.find(b'"', start)
    return body[start:end].decode() if end > start else None


class _Recording(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncHTTPTransport, recorder: ListRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not request.url.path.endswith("/customers") or request.method != "GET":
            return response
        rec = self.recorder
        rec.requests += 1
        params = dict(request.url.params)
        qid = params.get("query")
        if qid is not None:
            query = rec.by_query_id.get(qid)
            if query is None:
                rec.unmatched_pages += 1
            else:
                query.pages.append(int(params["pageno"]))
            return response
        # a first request: its body is read here (the client reads it whole anyway) for the queryId
        body = await response.aread()
        query = Query({k: v for k, v in params.items() if k != "userid"})
        rec.queries.append(query)
        if 200 <= response.status_code < 300:
            query.query_id = query_id_of(body)
            if query.query_id:
                rec.by_query_id[query.query_id] = query
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request,
            extensions=response.extensions,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _token(http: httpx.AsyncClient, settings: ApiSettings) -> dict[str, str]:
    if not (settings.token_url and settings.client_secret):
        return {}
    answer = await http.post(
        settings.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": settings.client_id or "",
            "client_secret": settings.client_secret.get_secret_value(),
        },
    )
    answer.raise_for_status()
    return {"Authorization": "Bearer " + answer.json()["access_token"]}


async def replay_async(settings: ApiSettings, client_no: int, plan: dict[str, Any]) -> dict[str, Any]:
    """Send the plan's requests with plain httpx, `settings.concurrency` at a time; decode each
    answer with `orjson.loads`; count the customers of every answer the client kept (a first answer
    that says totalCount >= maximumCount was split by the client, so it is decoded but not counted)."""
    from service.amili.client import USER_AGENT

    queries: list[dict[str, Any]] = plan["queries"]
    firsts: deque[dict[str, Any]] = deque(queries)
    pages: deque[tuple[str, int]] = deque()
    url = f"{settings.base_url.rstrip('/')}/clients/{client_no}/customers"
    limits = httpx.Limits(
        max_connections=max(settings.max_connections, settings.concurrency),
        max_keepalive_connections=max(settings.max_connections, settings.concurrency),
        keepalive_expiry=30.0,
    )
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.read_timeout,
        pool=settings.connect_timeout + settings.read_timeout,
    )
    counts = {"customers": 0, "requests": 0, "bytes": 0}
    async with httpx.AsyncClient(limits=limits, timeout=timeout, http1=True, http2=False) as http:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **await _token(http, settings)}
        warm = await http.get(f"{url}/0", headers=headers)  # a warm connection, outside the timing
        del warm

        async def get(params: dict[str, Any]) -> Any:
            answer = await http.get(url, params=params, headers=headers)
            answer.raise_for_status()
            body = answer.content
            counts["requests"] += 1
            counts["bytes"] += len(body)
            return orjson.loads(body)

        async def worker() -> None:
            while pages or firsts:
                if pages:
                    query_id, page_no = pages.popleft()
                    data = await get({"query": query_id, "pageno": page_no})
                    counts["customers"] += len(data["customers"])
                    continue
                query = firsts.popleft()
                data = await get(query["params"])
                summary = data["summary"]
                total, cap = summary.get("totalCount"), summary.get("maximumCount")
                truncated = total is not None and cap is not None and total >= cap and not query["pages"]
                if not truncated:
                    counts["customers"] += len(data["customers"])
                pages.extend((summary["queryId"], page_no) for page_no in query["pages"])

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(settings.concurrency)))
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
    return {
        "concurrency": settings.concurrency,
        "customers": counts["customers"],
        "requests": counts["requests"],
        "planned_requests": plan["requests"],
        "mib": round(counts["bytes"] / 2**20, 1),
        "seconds": round(wall, 3),
        "customers_per_s": round(counts["customers"] / wall) if wall else 0.0,
        "client_cpu_s": round(cpu, 3),
        "client_cpu_share": round(cpu / wall, 3) if wall else 0.0,
    }


def replay(settings: ApiSettings, client_no: int, plan: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(replay_async(settings, client_no, plan))
