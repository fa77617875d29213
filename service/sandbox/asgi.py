"""The outer ASGI layer: classify each API request, apply faults, count statuses, add Server-Timing.

It wraps the Starlette router: a request that draws no fault runs through it with a
`Server-Timing: app;dur=<ms>` header added; a fault answers instead of it (a status), cuts the
connection (drop, truncate), rewrites its 200 body (poison) or expires the query first.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette

from service.sandbox.faults import STATUS_KINDS, FaultRule, poison_body
from service.sandbox.responses import error_body
from service.sandbox.state import SandboxState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


def _uvicorn_cycle(send: Send) -> Any:
    """uvicorn's per-request cycle object behind `send` (h11), which owns the transport."""
    cycle = getattr(send, "__self__", None)
    return cycle if cycle is not None and hasattr(cycle, "transport") else None


def _close_connection(send: Send) -> None:
    """Close the TCP connection now, with no (further) response bytes."""
    cycle = _uvicorn_cycle(send)
    if cycle is None:
        raise ConnectionAbortedError("sandbox fault: dropped connection")
    cycle.keep_alive = False
    cycle.disconnected = True  # uvicorn must not answer 500 for us on the closed transport
    cycle.transport.close()


class SandboxASGI:
    def __init__(self, state: SandboxState, router: Starlette) -> None:
        self.state = state
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return
        route, client_no = self.state.classify(scope["method"], scope["path"])
        if route is None:
            await self.router(scope, receive, send)
            return
        continuation = route == "list" and _query_id(scope) is not None
        decision = self.state.faults.decide(route, client_no, continuation)
        if decision.delay > 0:
            await asyncio.sleep(decision.delay)
        rule = decision.rule
        if rule is None:
            await self._run(scope, receive, send, route)
        elif rule.kind in STATUS_KINDS:
            await self._status_fault(rule, send, route)
        elif rule.kind == "drop":
            if rule.phase == "after":
                await self.router(scope, receive, _discard)
            _close_connection(send)
            self.state.stats.record(route, "dropped")
        elif rule.kind == "truncate":
            await self._truncated(rule, scope, receive, send, route)
        elif rule.kind == "poison":
            await self._poisoned(rule, scope, receive, send, route, client_no)
        elif rule.kind == "query_expiry":
            qid = _query_id(scope)
            if qid:
                self.state.queries.forget(qid, "expired (sandbox fault)")
            await self._run(scope, receive, send, route)
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(rule.kind)

    async def _run(self, scope: Scope, receive: Receive, send: Send, route: str) -> None:
        started = time.perf_counter()
        statuses: list[int] = []

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
                duration = (time.perf_counter() - started) * 1000
                headers = [
                    *message.get("headers", []),
                    (b"server-timing", f"app;dur={duration:.3f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.router(scope, receive, timed_send)
        finally:
            self.state.stats.record(route, statuses[0] if statuses else 500)

    async def _status_fault(self, rule: FaultRule, send: Send, route: str) -> None:
        status = int(rule.kind)
        body = error_body(status, f"sandbox fault: {status}")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        retry_after = rule.retry_after_header()
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer error="invalid_token"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self.state.stats.record(route, status)

    async def _captured(self, scope: Scope, receive: Receive) -> tuple[int, Headers, bytes]:
        """The router's whole answer: status, headers without content-length (the caller sets it), body."""
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.router(scope, receive, capture)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        return start.get("status", 200), headers, b"".join(parts)

    async def _truncated(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send, route: str
    ) -> None:
        status, headers, body = await self._captured(scope, receive)
        cut = max(0, min(len(body) - 1, int(len(body) * rule.fraction)))
        declared = cut if rule.mode == "json" else len(body)
        headers.append((b"content-length", str(declared).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if rule.mode == "json":
            await send({"type": "http.response.body", "body": body[:cut], "more_body": False})
            self.state.stats.record(route, status)
        else:
            await send({"type": "http.response.body", "body": body[:cut], "more_body": True})
            _close_connection(send)
            self.state.stats.record(route, "truncated")

    async def _poisoned(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send, route: str, client_no: int | None
    ) -> None:
        """The handler's answer; a 200 gets the rule's poison body (other statuses pass as they are)."""
        status, headers, body = await self._captured(scope, receive)
        if status == 200:
            body = poison_body(rule, body, client_no)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self.state.stats.record(route, status)


def _query_id(scope: Scope) -> str | None:
    raw = scope.get("query_string", b"").decode("latin-1")
    for key, value in urllib.parse.parse_qsl(raw):
        if key.lower() == "query" and value.strip():
            return str(value)
    return None


async def _discard(message: Message) -> None:
    return None
