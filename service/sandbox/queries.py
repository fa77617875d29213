"""Frozen query results, kept under a queryId, and a byte-budgeted cache of rendered pages."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from service.sandbox.store import ClientData, Ref


@dataclass
class Query:
    id: str
    client: ClientData
    refs: list[Ref]  # the served customers (at most maximumCount), frozen when the query was made
    total: int  # every match, even above maximumCount
    page_size: int
    maximum: int
    created: float  # time.monotonic()
    expires: float
    reads: int = 0
    pages_read: set[int] = field(default_factory=set)

    @property
    def total_pages(self) -> int:
        return (len(self.refs) + self.page_size - 1) // self.page_size


class QueryStore:
    """Open queries in creation order (which is also expiry order: one TTL for all)."""

    def __init__(self, ttl: float, max_open: int) -> None:
        self.ttl = ttl
        self.max_open = max_open
        self._open: OrderedDict[str, Query] = OrderedDict()
        self._gone: OrderedDict[str, str] = OrderedDict()  # recently forgotten ids -> why (for messages)

    def __len__(self) -> int:
        return len(self._open)

    def sweep(self, now: float) -> None:
        while self._open:
            qid, query = next(iter(self._open.items()))
            if query.expires > now:
                break
            self.forget(qid, "expired")

    def create(
        self, client: ClientData, refs: list[Ref], total: int, page_size: int, maximum: int, now: float
    ) -> Query:
        self.sweep(now)
        while len(self._open) >= self.max_open:
            self.forget(next(iter(self._open)), "expired (too many open queries)")
        qid = secrets.token_urlsafe(16)  # 22 characters, base64url, like the docs' example
        query = Query(qid, client, refs, total, page_size, maximum, now, now + self.ttl)
        self._open[qid] = query
        return query

    def lookup(self, qid: str, now: float) -> tuple[Query | None, str]:
        """The open query, or None and why ("unknown" or "expired ...")."""
        query = self._open.get(qid)
        if query is not None and query.expires <= now:
            self.forget(qid, "expired")
            query = None
        if query is None:
            return None, self._gone.get(qid, "unknown")
        return query, ""

    def is_open(self, qid: str) -> bool:
        return qid in self._open

    def forget(self, qid: str, why: str) -> None:
        if self._open.pop(qid, None) is not None:
            self._gone[qid] = why
            while len(self._gone) > 100_000:
                self._gone.popitem(last=False)

    def open_count(self, now: float) -> int:
        self.sweep(now)
        return len(self._open)

    def clear(self) -> None:
        self._open.clear()
        self._gone.clear()


class PageCache:
    """Rendered page bodies by (queryId, pageNo, link base), least recently used out first."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.size = 0
        self._pages: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()

    def get(self, key: tuple[str, int, str]) -> bytes | None:
        body = self._pages.get(key)
        if body is not None:
            self._pages.move_to_end(key)
        return body

    def put(self, key: tuple[str, int, str], body: bytes) -> None:
        if len(body) > self.budget:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._pages[key] = body
        self.size += len(body)
        while self.size > self.budget:
            _, evicted = self._pages.popitem(last=False)
            self.size -= len(evicted)

    def clear(self) -> None:
        self._pages.clear()
        self.size = 0
