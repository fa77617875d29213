"""The sandbox ASGI application: ARM customer endpoints, a token endpoint, test controls, faults.

`create_app(SandboxConfig(...))` returns the ASGI callable. The outermost layer (`SandboxASGI`)
classifies each request (list, one, write, token), applies faults, counts statuses and adds a
`Server-Timing: app;dur=<ms>` header; the Starlette router behind it does the work.
See README.md in this folder for the behaviour and every choice made where Amili's docs are silent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from service.sandbox import data as g
from service.sandbox.faults import STATUS_KINDS, FaultEngine, FaultRule, FaultSpecError, poison_body
from service.sandbox.queries import PageCache, Query, QueryStore
from service.sandbox.store import ChangeError, ClientData, Filters, copy_customer
from service.sandbox.tokens import TokenIssuer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ERROR_NAMES: Final = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    409: "Conflict", 415: "UnsupportedMediaType", 422: "UnprocessableEntity", 429: "TooManyRequests",
    500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout",
}  # fmt: skip


@dataclass
class SandboxConfig:
    clients: dict[int, int]
    seed: int = 7
    base_path: str = "/arm/v1"
    token_path: str = "/token"  # noqa: S105 - a path, not a secret
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"  # noqa: S105 - the documented sandbox default
    static_tokens: tuple[str, ...] = ()
    token_ttl: int = 3600
    token_clients: tuple[int, ...] | None = None  # None: every configured client
    jwt_secret: str | None = None  # None: random per start
    token_numbers_as_strings: bool = False
    query_ttl: float = 900.0
    max_open_queries: int = 10_000
    total_count: str = "true"  # "true": every match; "capped": at most maximumCount
    next_page_on_last: str = "null"  # "null" or "absent"
    over_cap: str = "clamp"  # pagesize/maximumcount above the cap: "clamp" or "error" (400)
    page_size_default: int = 100
    page_size_cap: int = 1000
    maximum_count_cap: int = 10_000
    public_url: str | None = None  # scheme://host[:port] for nextPage/lastPage; default: from the request
    faults: Any = None  # initial fault spec
    page_cache_bytes: int = 64 * 1024 * 1024
    prefetch: bool = True  # render page n+1 of a query (into the page cache) right after serving page n
    list_order: str = "key"  # "key": customerNo order; "name": by casefolded name (then key)
    customer_no_filter: str = "exact"  # customerno: "exact" or "prefix" match
    name_mix: str = "classic"  # how generated names are made (service/sandbox/names.py)
    client_name_mix: dict[int, str] = field(default_factory=dict)  # per client, over name_mix

    def switches(self) -> dict[str, str]:
        return {
            "totalCount": self.total_count,
            "listOrder": self.list_order,
            "customerNoFilter": self.customer_no_filter,
        }


# runtime switches (POST /_sandbox/config): JSON key -> (attribute, allowed values)
SWITCHES: Final = {
    "totalCount": ("total_count", ("true", "capped")),
    "listOrder": ("list_order", ("key", "name")),
    "customerNoFilter": ("customer_no_filter", ("exact", "prefix")),
}


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, parameter: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter
        self.headers = headers or {}


def error_body(status: int, message: str, parameter: str | None = None) -> bytes:
    body: dict[str, Any] = {"status": status, "error": ERROR_NAMES.get(status, "Error"), "message": message}
    if parameter is not None:
        body["parameter"] = parameter
    return orjson.dumps(body)


def error_response(exc: ApiError) -> Response:
    return Response(
        error_body(exc.status, exc.message, exc.parameter),
        exc.status,
        exc.headers,
        media_type="application/json",
    )


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type="application/json")


class Stats:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.by_route: dict[str, Counter[str]] = {}
        self.tokens_issued = 0

    def record(self, route: str, status: int | str) -> None:
        key = str(status)
        self.requests[key] += 1
        self.by_route.setdefault(route, Counter())[key] += 1


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.base_path = "/" + config.base_path.strip("/") if config.base_path.strip("/") else ""
        self.token_path = "/" + config.token_path.strip("/")
        self.clients = {
            no: ClientData(no, n, config.seed, config.client_name_mix.get(no, config.name_mix))
            for no, n in config.clients.items()
        }
        self.initial_switches = config.switches()
        self.queries = QueryStore(config.query_ttl, config.max_open_queries)
        self.pages = PageCache(config.page_cache_bytes)
        self.faults = FaultEngine()
        self.stats = Stats()
        token_clients = config.token_clients if config.token_clients is not None else tuple(config.clients)
        self.tokens = TokenIssuer(
            secret=config.jwt_secret,
            ttl=config.token_ttl,
            client_id=config.client_id,
            client_secret=config.client_secret,
            clients=token_clients,
            static_tokens=config.static_tokens,
            numbers_as_strings=config.token_numbers_as_strings,
        )
        if config.faults is not None:
            self.faults.set(config.faults, config.seed)

    def reset(self) -> None:
        for client in self.clients.values():
            client.overlay.clear()
            client.by_no.clear()
            client.next_key = client.n
            client.count = client.n
        self.queries.clear()
        self.pages.clear()
        self.faults.clear()
        self.faults.reset_counters()
        self.stats = Stats()
        for key, value in self.initial_switches.items():
            setattr(self.config, SWITCHES[key][0], value)

    def classify(self, method: str, path: str) -> tuple[str | None, int | None]:
        """(route, client number) of an API request; route None for health, controls and unknown paths."""
        if path == self.token_path:
            return ("token" if method == "POST" else "other"), None
        prefix = self.base_path + "/clients/"
        if not path.startswith(prefix):
            return None, None
        parts = path[len(prefix) :].split("/")
        client_no = int(parts[0]) if parts[0].isdigit() else None
        if len(parts) in (2, 3) and parts[1] == "customers":
            if method == "GET":
                return ("list" if len(parts) == 2 else "one"), client_no
            return "write", client_no
        return "other", client_no


# ---------------------------------------------------------------------------------------------
# request parsing


def query_params(request: Request) -> dict[str, str]:
    """Query parameters, names lower-cased (ASP.NET-style binding), first value wins; "" = not given."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key.lower(), value)
    return {k: v for k, v in params.items() if v.strip() != ""}


def int_param(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isdigit() or (text[:1] in "+-" and text[1:].isdigit())) or not text.isascii():
        raise ApiError(400, f"{name} must be an integer, got {raw!r}", name)
    return int(text)


def _check_date(value: str) -> bool:
    if value == "":
        return True
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _type_ok(kind: str, value: Any) -> bool:
    if kind == g.FieldType.STR:
        return isinstance(value, str)
    if kind == g.FieldType.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == g.FieldType.NUM:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == g.FieldType.BOOL:
        return isinstance(value, bool)
    if kind == g.FieldType.DATE:
        return isinstance(value, str) and _check_date(value)
    if kind == g.FieldType.STR_LIST:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def validate_customer_body(body: Any) -> dict[str, Any]:
    """Check a POST/PUT body against the documented customer object; 400 naming the first bad key."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object (one customer)")
    for key, value in body.items():
        kind = g.CUSTOMER_SCHEMA.get(key)
        if kind is None:
            raise ApiError(400, f"unknown field {key!r}", key)
        if value is None:
            continue
        if key == "postalAddress":
            if not isinstance(value, dict):
                raise ApiError(400, "postalAddress must be an object", key)
            for sub, sub_value in value.items():
                if sub not in g.POSTAL_ADDRESS_KEYS:
                    raise ApiError(400, f"unknown field postalAddress.{sub}", f"postalAddress.{sub}")
                if sub_value is not None and not isinstance(sub_value, str):
                    raise ApiError(400, f"postalAddress.{sub} must be a string", f"postalAddress.{sub}")
        elif key == "distribution":
            if not isinstance(value, dict):
                raise ApiError(400, "distribution must be an object", key)
            for sub, sub_value in value.items():
                sub_kind = g.DISTRIBUTION_SCHEMA.get(sub)
                if sub_kind is None:
                    raise ApiError(400, f"unknown field distribution.{sub}", f"distribution.{sub}")
                if sub_value is not None and not _type_ok(sub_kind, sub_value):
                    raise ApiError(400, f"distribution.{sub} must be a {sub_kind}", f"distribution.{sub}")
        elif not _type_ok(kind, value):
            raise ApiError(400, f"{key} must be a{'n' if kind[0] in 'aeiou' else ''} {kind}", key)
    return body


def merge_customer(current: g.Customer, body: dict[str, Any], today: str) -> g.Customer:
    """Apply a write: a missing or null key keeps its value; postalAddress is replaced as a whole group."""
    new = copy_customer(current)
    for key, value in body.items():
        if value is None or key in ("customerNo", "clientNo"):
            continue
        if key == "postalAddress":
            address = {k: (value.get(k) if value.get(k) is not None else "") for k in g.POSTAL_ADDRESS_KEYS}
            if address != current.get("postalAddress") and "postalAddressChanged" not in body:
                new["postalAddressChanged"] = today
            new[key] = address
        elif key == "distribution":
            merged = dict(current.get("distribution") or {})
            merged.update({k: v for k, v in value.items() if v is not None})
            new[key] = merged
        elif g.CUSTOMER_SCHEMA[key] == g.FieldType.DATE and value == "":
            new.pop(key, None)  # "" clears a date (it is then absent)
        else:
            new[key] = list(value) if isinstance(value, list) else value
    return {k: new[k] for k in g.CUSTOMER_SCHEMA if k in new}


# ---------------------------------------------------------------------------------------------
# handlers


class Api:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _client(self, request: Request) -> ClientData:
        """Authenticate (401), then the client: 400 bad number, 404 unknown, 403 not in the token."""
        auth = self.state.tokens.verify(request.headers.get("authorization"))
        if not auth.ok:
            raise ApiError(401, auth.message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        raw = request.path_params["clientno"]
        if not raw.isdigit() or not raw.isascii():
            raise ApiError(400, f"clientno must be an integer, got {raw!r}", "clientno")
        client_no = int(raw)
        client = self.state.clients.get(client_no)
        if client is None:
            raise ApiError(404, f"client {client_no} not found")
        if auth.clients is not None and client_no not in auth.clients:
            raise ApiError(403, f"the token does not give access to client {client_no}")
        return client

    def _link_base(self, request: Request) -> str:
        if self.state.config.public_url:
            return self.state.config.public_url.rstrip("/") + self.state.base_path
        return (
            f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}{self.state.base_path}"
        )

    async def list_customers(self, request: Request) -> Response:
        try:
            client = self._client(request)
            params = query_params(request)
            now = time.monotonic()
            qid = params.get("query")
            page_no = int_param(params, "pageno")
            if page_no is None:
                page_no = 1
            if page_no < 1:
                raise ApiError(400, f"pageno must be 1 or more, got {page_no}", "pageno")
            if qid is not None:
                query = self._open_query(client, qid, now)
            else:
                query = self._new_query(client, params, now)
            query.reads += 1
            query.pages_read.add(page_no)
            return Response(
                self._page(query, page_no, self._link_base(request)), media_type="application/json"
            )
        except ApiError as exc:
            return error_response(exc)

    def _open_query(self, client: ClientData, qid: str, now: float) -> Query:
        query, why = self.state.queries.lookup(qid, now)
        if query is not None and query.client is not client:
            query, why = None, "unknown"
        if query is not None and self.state.faults.query_expired(
            client.client_no, query.reads, now - query.created
        ):
            self.state.queries.forget(qid, "expired (sandbox fault)")
            query, why = None, "expired (sandbox fault)"
        if query is None:
            raise ApiError(404, f"query {qid!r} is {why}", "query")
        return query

    def _new_query(self, client: ClientData, params: dict[str, str], now: float) -> Query:
        cfg = self.state.config
        page_size = int_param(params, "pagesize")
        if page_size is None:
            page_size = cfg.page_size_default
        elif page_size < 5:
            page_size = 10
        elif page_size > cfg.page_size_cap:
            if cfg.over_cap == "error":
                raise ApiError(
                    400, f"pagesize must be at most {cfg.page_size_cap}, got {page_size}", "pagesize"
                )
            page_size = cfg.page_size_cap
        maximum = int_param(params, "maximumcount")
        if maximum is None:
            maximum = cfg.maximum_count_cap
        elif maximum < 1:
            raise ApiError(400, f"maximumcount must be 1 or more, got {maximum}", "maximumcount")
        elif maximum > cfg.maximum_count_cap:
            if cfg.over_cap == "error":
                raise ApiError(
                    400,
                    f"maximumcount must be at most {cfg.maximum_count_cap}, got {maximum}",
                    "maximumcount",
                )
            maximum = cfg.maximum_count_cap
        filters = Filters(
            customer_no=params.get("customerno"),
            account_no=int_param(params, "accountno"),
            organization_no=params.get("organizationno"),
            name=params.get("name"),
            category=params.get("customercategory"),
            customer_no_prefix=cfg.customer_no_filter == "prefix",
        )
        refs, total = client.select(filters, maximum, cfg.list_order)
        return self.state.queries.create(client, refs, total, page_size, maximum, now)

    def _page(self, query: Query, page_no: int, link_base: str) -> bytes:
        key = (query.id, page_no, link_base)
        body = self.state.pages.get(key)
        if body is None:
            body = self._render(query, page_no, link_base)
            self.state.pages.put(key, body)
        if self.state.config.prefetch and page_no < query.total_pages:
            # Render the next page once this response is out (the event loop runs it after the
            # current request), so a reader that follows nextPage finds it ready.
            asyncio.get_running_loop().call_soon(self._prefetch, query, page_no + 1, link_base)
        return body

    def _prefetch(self, query: Query, page_no: int, link_base: str) -> None:
        key = (query.id, page_no, link_base)
        if self.state.pages.get(key) is None and self.state.queries.is_open(query.id):
            self.state.pages.put(key, self._render(query, page_no, link_base))

    def _render(self, query: Query, page_no: int, link_base: str) -> bytes:
        cfg = self.state.config
        size = query.page_size
        total_pages = query.total_pages
        refs = query.refs[(page_no - 1) * size : page_no * size]
        resolve = query.client.resolve
        customers = [resolve(r) for r in refs]
        url = f"{link_base}/clients/{query.client.client_no}/customers?query={query.id}&pageno="
        summary: dict[str, Any] = {
            "pageNo": page_no,
            "currentPageSize": len(customers),
            "pageSizeLimit": size,
            "totalPages": total_pages,
            "totalCount": query.total if cfg.total_count == "true" else min(query.total, query.maximum),
            "maximumCount": query.maximum,
            "nextPage": f"{url}{page_no + 1}" if page_no < total_pages else None,
            "lastPage": f"{url}{total_pages}" if total_pages else None,
            "queryId": query.id,
        }
        if cfg.next_page_on_last == "absent":
            for name in ("nextPage", "lastPage"):
                if summary[name] is None:
                    del summary[name]
        return orjson.dumps({"summary": summary, "customers": customers})

    async def get_customer(self, request: Request) -> Response:
        try:
            client = self._client(request)
            key = client.find(request.path_params["customerno"])
            customer = client.get(key) if key is not None else None
            if customer is None:
                raise ApiError(404, f"customer {request.path_params['customerno']!r} not found")
            return json_response(customer)
        except ApiError as exc:
            return error_response(exc)

    async def _json_body(self, request: Request) -> Any:
        raw = await request.body()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "the body is not valid JSON") from None

    async def post_customer(self, request: Request) -> Response:
        """POST: create one customer, or update it when the customerNo exists."""
        try:
            client = self._client(request)
            body = validate_customer_body(await self._json_body(request))
            self._check_client_no(client, body)
            customer_no = body.get("customerNo")
            if customer_no is not None and customer_no.strip() == "":
                raise ApiError(400, "customerNo must not be empty", "customerNo")
            key = client.find(customer_no) if customer_no is not None else None
            if key is not None:
                current = client.get(key)
                assert current is not None
                updated = merge_customer(current, body, _today())
                client.store(key, updated)
                return json_response(updated)
            account_no = body.get("accountNo") or g.BASE_ACCOUNT_NO + client.next_key
            blank = g.blank_customer(client.client_no, account_no, customer_no or "")
            created = merge_customer(blank, body, _today())
            created = client.create(created, customer_no)
            return json_response(created, 201)
        except ApiError as exc:
            return error_response(exc)

    async def put_customer(self, request: Request) -> Response:
        """PUT: update the customer named by customerNo in the body."""
        try:
            client = self._client(request)
            body = validate_customer_body(await self._json_body(request))
            self._check_client_no(client, body)
            customer_no = body.get("customerNo")
            if not customer_no:
                raise ApiError(400, "customerNo is required", "customerNo")
            key = client.find(customer_no)
            current = client.get(key) if key is not None else None
            if key is None or current is None:
                raise ApiError(404, f"customer {customer_no!r} not found")
            updated = merge_customer(current, body, _today())
            client.store(key, updated)
            return json_response(updated)
        except ApiError as exc:
            return error_response(exc)

    @staticmethod
    def _check_client_no(client: ClientData, body: dict[str, Any]) -> None:
        if body.get("clientNo") is not None and body["clientNo"] != client.client_no:
            raise ApiError(400, f"clientNo {body['clientNo']} does not match the path", "clientNo")

    async def delete_customer(self, request: Request) -> Response:
        try:
            client = self._client(request)
            customer_no = request.path_params["customerno"]
            key = client.find(customer_no)
            current = client.get(key) if key is not None else None
            if key is None or current is None:
                raise ApiError(404, f"customer {customer_no!r} not found")
            balance = current.get("balanceTotal") or 0
            if balance != 0:
                raise ApiError(
                    422, f"customer {customer_no!r} has a balance ({balance}) and cannot be deleted"
                )
            client.delete(key)
            return json_response({"customerNo": current["customerNo"], "deleted": True})
        except ApiError as exc:
            return error_response(exc)

    async def token(self, request: Request) -> Response:
        tokens = self.state.tokens
        form = dict(urllib.parse.parse_qsl((await request.body()).decode("utf-8", "replace")))
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        client_secret = form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if not client_id and basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:].strip()).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            client_id, _, client_secret = decoded.partition(":")
        if grant != "client_credentials":
            return json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials",
                },
                400,
            )
        if not tokens.credentials_ok(client_id, client_secret):
            return json_response(
                {"error": "invalid_client", "error_description": "unknown client_id or secret"}, 401
            )
        self.state.stats.tokens_issued += 1
        return json_response(tokens.issue())

    async def health(self, request: Request) -> Response:
        return json_response({"status": "Healthy"})


# ---------------------------------------------------------------------------------------------
# test controls under /_sandbox (no auth)


class Controls:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def _body(self, request: Request) -> Any:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "the body is not valid JSON") from None

    def _client(self, request: Request) -> ClientData:
        raw = request.path_params["clientno"]
        client = self.state.clients.get(int(raw)) if raw.isdigit() else None
        if client is None:
            raise ApiError(404, f"client {raw} not found")
        return client

    async def changes(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "want a JSON object")
            allowed = {"clientNo", "seed", "balance", "address", "registrationStatus", "created", "deleted"}
            unknown = set(body) - allowed
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
            changes = client.apply_changes(seed, amounts, _today())
        except ChangeError as exc:
            return error_response(ApiError(400, str(exc)))
        except ApiError as exc:
            return error_response(exc)
        return json_response({"changes": changes})

    async def get_faults(self, request: Request) -> Response:
        return json_response(self.state.faults.describe())

    async def set_faults(self, request: Request) -> Response:
        try:
            self.state.faults.set(await self._body(request), self.state.config.seed)
        except FaultSpecError as exc:
            return error_response(ApiError(400, str(exc)))
        except ApiError as exc:
            return error_response(exc)
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
        try:
            client = self._client(request)
            params = query_params(request)
            offset = int_param(params, "offset") or 0
            limit = int_param(params, "limit")
        except ApiError as exc:
            return error_response(exc)
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
        try:
            return json_response({"count": self._client(request).count})
        except ApiError as exc:
            return error_response(exc)

    async def mint_token(self, request: Request) -> Response:
        """A token with chosen clients and ttl (negative: already expired), for tests."""
        try:
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "want a JSON object")
            clients = body.get("clients")
            if clients is not None and (
                not isinstance(clients, list)
                or any(isinstance(c, bool) or not isinstance(c, int) for c in clients)
            ):
                raise ApiError(400, "clients must be a list of client numbers", "clients")
            ttl = body.get("ttl")
            if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)):
                raise ApiError(400, "ttl must be an integer (seconds)", "ttl")
        except ApiError as exc:
            return error_response(exc)
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
        try:
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "want a JSON object of switches")
            for key, value in body.items():
                if key not in SWITCHES or value not in SWITCHES[key][1]:
                    allowed = {k: list(v[1]) for k, v in SWITCHES.items()}
                    raise ApiError(400, f"unknown switch or value {key}={value!r}; allowed: {allowed}")
            for key, value in body.items():
                setattr(self.state.config, SWITCHES[key][0], value)
        except ApiError as exc:
            return error_response(exc)
        return await self.config(request)


# ---------------------------------------------------------------------------------------------
# the outer layer: faults, stats, Server-Timing


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

    async def _truncated(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send, route: str
    ) -> None:
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.router(scope, receive, capture)
        body = b"".join(parts)
        cut = max(0, min(len(body) - 1, int(len(body) * rule.fraction)))
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        declared = cut if rule.mode == "json" else len(body)
        headers.append((b"content-length", str(declared).encode()))
        status = start.get("status", 200)
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
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.router(scope, receive, capture)
        status = start.get("status", 200)
        body = b"".join(parts)
        if status == 200:
            body = poison_body(rule, body, client_no)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
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


def create_app(config: SandboxConfig) -> SandboxASGI:
    state = SandboxState(config)
    api = Api(state)
    ctl = Controls(state)
    base = state.base_path

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(
            ApiError(exc.status_code, exc.detail or ERROR_NAMES.get(exc.status_code, "error"))
        )

    routes = [
        Route(f"{base}/clients/{{clientno}}/customers", api.list_customers, methods=["GET"]),
        Route(f"{base}/clients/{{clientno}}/customers", api.post_customer, methods=["POST"]),
        Route(f"{base}/clients/{{clientno}}/customers", api.put_customer, methods=["PUT"]),
        Route(f"{base}/clients/{{clientno}}/customers/{{customerno}}", api.get_customer, methods=["GET"]),
        Route(
            f"{base}/clients/{{clientno}}/customers/{{customerno}}", api.delete_customer, methods=["DELETE"]
        ),
        Route(state.token_path, api.token, methods=["POST"]),
        Route("/health", api.health, methods=["GET"]),
        Route(f"{base}/health", api.health, methods=["GET"]),
        Route("/_sandbox/changes", ctl.changes, methods=["POST"]),
        Route("/_sandbox/faults", ctl.get_faults, methods=["GET"]),
        Route("/_sandbox/faults", ctl.set_faults, methods=["POST"]),
        Route("/_sandbox/faults", ctl.clear_faults, methods=["DELETE"]),
        Route("/_sandbox/reset", ctl.reset, methods=["POST"]),
        Route("/_sandbox/stats", ctl.stats, methods=["GET"]),
        Route("/_sandbox/token", ctl.mint_token, methods=["POST"]),
        Route("/_sandbox/config", ctl.config, methods=["GET"]),
        Route("/_sandbox/config", ctl.set_config, methods=["POST"]),
        Route("/_sandbox/clients/{clientno}/customers", ctl.customers, methods=["GET"]),
        Route("/_sandbox/clients/{clientno}/count", ctl.count, methods=["GET"]),
    ]
    router = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    router.state.sandbox = state
    return SandboxASGI(state, router)
