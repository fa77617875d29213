"""Test controls under /_sandbox (no auth): changes, faults, reset, stats, tokens, switches, dumps.

Handlers raise `ApiError` (or the store's `ChangeError`, the fault engine's `FaultSpecError`); the
app's one exception handler renders them (see app.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from service.sandbox.config import SWITCHES, switch_values
from service.sandbox.responses import ApiError, json_response
from service.sandbox.state import SandboxState
from service.sandbox.store import ClientData
from service.sandbox.validation import int_param, json_body, query_params, today

CHANGE_KEYS = frozenset(
    {"clientNo", "seed", "balance", "address", "registrationStatus", "created", "deleted"}
)


class Controls:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def _object(self, request: Request, what: str = "a JSON object") -> dict[str, Any]:
        """The body as a JSON object (a blank body is `{}`); 400 otherwise."""
        body = await json_body(request, blank={})
        if not isinstance(body, dict):
            raise ApiError(400, f"want {what}")
        return body

    def _client(self, request: Request) -> ClientData:
        raw = request.path_params["clientno"]
        client = self.state.clients.get(int(raw)) if raw.isdigit() else None
        if client is None:
            raise ApiError(404, f"client {raw} not found")
        return client

    async def changes(self, request: Request) -> Response:
        body = await self._object(request)
        unknown = set(body) - CHANGE_KEYS
        if unknown:
            raise ApiError(400, f"unknown keys: {', '.join(sorted(unknown))}", sorted(unknown)[0])
        client_no = body.get("clientNo")
        if isinstance(client_no, bool) or not isinstance(client_no, int):
            raise ApiError(400, "clientNo (integer) is required", "clientNo")
        client = self.state.clients.get(client_no)
        if client is None:
            raise ApiError(404, f"client {client_no} not found")
        seed = body.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ApiError(400, "seed must be an integer", "seed")
        amounts = {
            "balance": body.get("balance", 0),
            "address": body.get("address", 0),
            "registration_status": body.get("registrationStatus", 0),
            "created": body.get("created", 0),
            "deleted": body.get("deleted", 0),
        }
        return json_response({"changes": client.apply_changes(seed, amounts, today())})

    async def get_faults(self, request: Request) -> Response:
        return json_response(self.state.faults.describe())

    async def set_faults(self, request: Request) -> Response:
        self.state.faults.set(await json_body(request, blank={}), self.state.config.seed)
        return json_response(self.state.faults.describe())

    async def clear_faults(self, request: Request) -> Response:
        self.state.faults.clear()
        return json_response(self.state.faults.describe())

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return json_response({"reset": True})

    async def stats(self, request: Request) -> Response:
        s = self.state.stats
        return json_response(
            {
                "requests": dict(s.requests),
                "byRoute": {route: dict(c) for route, c in s.by_route.items()},
                "queriesOpen": self.state.queries.open_count(time.monotonic()),
                "tokensIssued": s.tokens_issued,
                "faultsFired": dict(self.state.faults.fired_by_kind),
            }
        )

    async def customers(self, request: Request) -> Response:
        """Every current customer of a client (offset/limit), streamed as one JSON array."""
        client = self._client(request)
        params = query_params(request)
        offset = int_param(params, "offset") or 0
        limit = int_param(params, "limit")
        refs = list(client.iter_current())
        refs = refs[offset:] if limit is None else refs[offset : offset + limit]

        async def chunks() -> AsyncIterator[bytes]:
            yield b"["
            for start in range(0, len(refs), 1000):
                part = orjson.dumps([client.resolve(r) for r in refs[start : start + 1000]])
                yield (b"," if start else b"") + part[1:-1]
                await asyncio.sleep(0)
            yield b"]"

        return StreamingResponse(chunks(), media_type="application/json")

    async def count(self, request: Request) -> Response:
        return json_response({"count": self._client(request).count})

    async def mint_token(self, request: Request) -> Response:
        """A token with chosen clients and ttl (negative: already expired), for tests."""
        body = await self._object(request)
        clients = body.get("clients")
        if clients is not None and (
            not isinstance(clients, list)
            or any(isinstance(c, bool) or not isinstance(c, int) for c in clients)
        ):
            raise ApiError(400, "clients must be a list of client numbers", "clients")
        ttl = body.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)):
            raise ApiError(400, "ttl must be an integer (seconds)", "ttl")
        return json_response(self.state.tokens.issue(tuple(clients) if clients is not None else None, ttl))

    async def config(self, request: Request) -> Response:
        cfg = self.state.config
        return json_response(
            {
                "clients": {str(k): v for k, v in cfg.clients.items()},
                "seed": cfg.seed,
                "basePath": self.state.base_path,
                "tokenPath": self.state.token_path,
                "tokenTtl": cfg.token_ttl,
                "tokenClients": list(self.state.tokens.clients),
                "queryTtl": cfg.query_ttl,
                "maxOpenQueries": cfg.max_open_queries,
                "totalCount": cfg.total_count,
                "nextPageOnLast": cfg.next_page_on_last,
                "overCap": cfg.over_cap,
                "pageSizeDefault": cfg.page_size_default,
                "pageSizeCap": cfg.page_size_cap,
                "maximumCountCap": cfg.maximum_count_cap,
                "nameMix": {str(no): c.mix for no, c in self.state.clients.items()},
                **cfg.switches(),
            }
        )

    async def set_config(self, request: Request) -> Response:
        """Change runtime switches: `{"totalCount": "capped", "listOrder": "name", "customerNoFilter":
        "prefix"}` (any subset); a bad key or value: 400 and nothing changes."""
        body = await self._object(request, "a JSON object of switches")
        for key, value in body.items():
            if key not in SWITCHES or value not in switch_values(SWITCHES[key][1]):
                allowed = {k: switch_values(mode) for k, (_, mode) in SWITCHES.items()}
                raise ApiError(400, f"unknown switch or value {key}={value!r}; allowed: {allowed}")
        for key, value in body.items():
            attribute, mode = SWITCHES[key]
            setattr(self.state.config, attribute, mode(value))
        return await self.config(request)
