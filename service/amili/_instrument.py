"""Instrumentation of each HTTP exchange with the API (internal to `service.amili`): the
`amili_sync_api_request_seconds{route,status}` histogram and, when tracing is on, a client span.

Retries are counted (`amili_sync_api_retries_total{cause}`) and logged (`amili.retry`) once, by
`_http.Caller`, with the client, path and cause. stamina would by default add its own Prometheus
counter (`stamina_retries_total`) and structlog warning (`stamina.retry_scheduled`) for the same
retry, so its instrumentation hooks are turned off here, once, when the package is imported.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import stamina.instrumentation

from service import tracing
from service.metrics import API_REQUEST_SECONDS

stamina.instrumentation.set_on_retry_hooks(())

_ONE = re.compile(r"customers/[^/?]+$")


def route_of(method: str, url: str) -> str:
    """The route label of a call: `token` (the token endpoint), `one` (GET one customer), `list`
    (a list query or one of its pages), `other`."""
    if method == "POST":
        return "token"
    path = url.split("?", 1)[0].rstrip("/")
    if _ONE.search(path):
        return "one"
    if path.endswith("customers"):
        return "list"
    return "other"


@dataclass
class Exchange:
    """What the caller learns of one exchange: the HTTP status (None until an answer arrived)."""

    status: int | None = None


@contextmanager
def exchange(method: str, url: str) -> Iterator[Exchange]:
    """Time one request/response (body included) into the histogram, in a client span; without a
    status when the block is left (a transport error), the status label is `error`."""
    route = route_of(method, url)
    outcome = Exchange()
    started = time.perf_counter()
    with tracing.span(
        f"amili {route}", {"http.request.method": method, "amili.route": route}, "client"
    ) as span:
        try:
            yield outcome
        finally:
            status = "error" if outcome.status is None else str(outcome.status)
            API_REQUEST_SECONDS.labels(route=route, status=status).observe(time.perf_counter() - started)
            if outcome.status is not None:
                span.set_attribute("http.response.status_code", outcome.status)
