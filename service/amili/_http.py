"""One HTTP call with retries, rate limit, Retry-After and redaction (internal to `service.amili`).

Retries use **stamina** rather than bare tenacity: it is already a dependency, wraps tenacity with
the policy we want in one call (exponential backoff with jitter, bounded by attempts *and* total
time), supports `async for attempt in retry_context(...)` so the whole attempt (send, read body,
parse) is retried as one unit, and lets a backoff hook return an explicit wait, which is how
`Retry-After` is honoured. Its own instrumentation is off (`_instrument.py`): each retry is counted
(`amili_sync_api_retries_total`) and logged (`amili.retry`) once, here, with the client and path.

What is retried: 429, every 5xx, httpx timeouts, transport errors (connect errors, resets,
`RemoteProtocolError` on a cut-off body, `ReadError`) and a 2xx body that is not valid JSON (a
truncated body is a transport accident far more often than a server bug; when it persists through
every attempt it becomes an `AmiliProtocolError`). 4xx answers are not retried.

`Retry-After` (delta-seconds or HTTP-date) sets the wait of that retry to at least the asked time
(plus jitter), even above `retry_wait_max`, and pauses every other call of this client until then
(a 429 is about the client, not about one URL). When the asked wait does not fit in what is left of
`retry_timeout`, the call gives up at once instead of sleeping past its budget. An HTTP-date has
one-second resolution, so one second is added to it: we never come back before the date.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import stamina
from aiolimiter import AsyncLimiter

from service.config import ApiSettings
from service.logs import MASK, get_logger, mask_value
from service.metrics import API_CALLS, API_RETRIES

from ._instrument import exchange
from .errors import AmiliProtocolError, AmiliUnavailable

T = TypeVar("T")
log = get_logger("service.amili")

EXCERPT_CHARS = 200


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP-date), None if absent/invalid.

    `now` is the wall-clock time (for tests). A date in the past gives 0. A date gets one extra second
    (its resolution), so a wait computed from it is never shorter than what the server meant.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current + 1.0)


class Redactor:
    """Removes secrets (token, client secret, past tokens) and personal numbers from text we quote."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = [s for s in secrets if s]

    def add(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
            del self._secrets[:-8]  # the static secrets come first; keep the last few tokens

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return str(mask_value(text))

    def excerpt(self, body: bytes) -> str:
        text = body[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
        text = " ".join(self(text).split())
        return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


@dataclass
class CallStats:
    """Counts of one read (or of nothing, for single calls): API calls by status, retries by cause."""

    api_calls: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)

    def call(self, status: str) -> None:
        self.api_calls[status] = self.api_calls.get(status, 0) + 1
        API_CALLS.labels(status=status).inc()

    def retry(self, cause: str) -> None:
        self.retries[cause] = self.retries.get(cause, 0) + 1
        API_RETRIES.labels(cause=cause).inc()


class Transient(Exception):
    """A failure worth retrying. `cause` is the status ("503") or error kind ("ReadTimeout")."""

    def __init__(self, cause: str, *, retry_after: float | None = None, detail: str = "") -> None:
        self.cause = cause
        self.retry_after = retry_after
        self.detail = detail
        self.gave_up: str | None = None
        super().__init__(cause)

    def describe(self) -> str:
        text = self.cause
        if self.retry_after is not None:
            text += f" (Retry-After {self.retry_after:.1f} s)"
        if self.detail:
            text += f": {self.detail}"
        if self.gave_up:
            text += f"; {self.gave_up}"
        return text

    def __repr__(self) -> str:
        return f"Transient({self.describe()!r})"


class Malformed(Transient):
    """A 2xx answer whose body is not valid JSON."""

    def __init__(self, detail: str) -> None:
        super().__init__("malformed_json", detail=detail)


# What a handled response's stream is replaced by (`unlink_stream`): empty, shared, never read.
_READ = httpx.ByteStream(b"")


def unlink_stream(response: httpx.Response) -> None:
    """Break the reference cycle between an httpx response and its stream.

    httpx binds the stream to its response and the response to the stream (to time the body), so a
    response, and its body (a page of 1,000 customers: ~1.2 MB), outlives its last use until the
    cyclic garbage collector runs: with the collector tuned for runs, tens of pages' bodies. Once
    the body was read (`AsyncClient.request` reads it whole) and handled, the stream is not needed;
    without it the body is freed as soon as the response is dropped (docs/performance.md).
    """
    response.stream = _READ


def make_limiter(rate: float) -> AsyncLimiter:
    """One token bucket for the whole client: `rate` requests per second, bursts of up to `rate`."""
    if rate >= 1:
        return AsyncLimiter(rate, 1.0)
    return AsyncLimiter(1, 1.0 / rate)


class Caller:
    """Sends requests through one `httpx.AsyncClient` with the retry policy, rate limit and pause."""

    def __init__(self, http: httpx.AsyncClient, settings: ApiSettings, redactor: Redactor) -> None:
        self.http = http
        self.settings = settings
        self.redactor = redactor
        self.limiter = make_limiter(settings.rate_limit)
        self._not_before = 0.0  # loop time before which no request is sent (Retry-After)

    async def call(
        self,
        method: str,
        url: str,
        *,
        handle: Callable[[httpx.Response], T],
        client_no: int | None,
        path: str,
        stats: CallStats,
        headers: Callable[[], Awaitable[Mapping[str, str]]] | None = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        limited: bool = True,
    ) -> T:
        """Send until `handle(response)` returns (it sees every status but 429/5xx; it may raise
        `Malformed` to retry) or the retry budget runs out (`AmiliUnavailable`, or
        `AmiliProtocolError` when the last failure was a malformed body)."""
        tries = _Attempts(self.settings, asyncio.get_running_loop())
        try:
            async for attempt in tries.retry_context():
                with attempt:
                    tries.num = attempt.num
                    if tries.last is not None:
                        self._note_retry(tries, tries.last, stats, client_no, method, path)
                    try:
                        return await self._once(method, url, handle, stats, headers, params, data, limited)
                    except Transient as exc:
                        tries.failed(exc)
                        raise
        except Transient as exc:
            raise _give_up(exc, client_no, method, path, tries.num) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        method: str,
        url: str,
        handle: Callable[[httpx.Response], T],
        stats: CallStats,
        headers: Callable[[], Awaitable[Mapping[str, str]]] | None,
        params: Mapping[str, Any] | None,
        data: Mapping[str, str] | None,
        limited: bool,
    ) -> T:
        """One attempt: wait for our turn, send, and hand a non-transient answer to `handle`."""
        await self._respect_pause()
        if limited:
            await self.limiter.acquire()
        extra = dict(await headers()) if headers is not None else None
        response = await self._send(method, url, stats, params, data, extra)
        try:
            stats.call(str(response.status_code))
            self._raise_if_transient(response)
            return handle(response)
        finally:
            unlink_stream(response)

    async def _respect_pause(self) -> None:
        loop = asyncio.get_running_loop()
        # the pause can be extended while we sleep (another 429), hence the loop
        while (delay := self._not_before - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    def _pause(self, seconds: float) -> None:
        until = asyncio.get_running_loop().time() + seconds
        self._not_before = max(self._not_before, until)

    async def _send(
        self,
        method: str,
        url: str,
        stats: CallStats,
        params: Mapping[str, Any] | None,
        data: Mapping[str, str] | None,
        headers: dict[str, str] | None,
    ) -> httpx.Response:
        """The request itself; a transport failure (no answer) becomes a `Transient`."""
        with exchange(method, url) as answered:  # the latency histogram and the API call's span
            try:
                response = await self.http.request(method, url, params=params, data=data, headers=headers)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                kind = type(exc).__name__
                stats.call(kind)
                raise Transient(kind, detail=self.redactor(str(exc))[:EXCERPT_CHARS]) from None
            answered.status = response.status_code
        return response

    def _raise_if_transient(self, response: httpx.Response) -> None:
        """429 and 5xx are retried; a Retry-After in them pauses every call of this client."""
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > 0:
                self._pause(retry_after)
            raise Transient(
                str(status), retry_after=retry_after, detail=self.redactor.excerpt(response.content)
            )

    @staticmethod
    def _note_retry(
        tries: _Attempts, last: Transient, stats: CallStats, client_no: int | None, method: str, path: str
    ) -> None:
        # counted and logged once here, with the client and path (stamina's own instrumentation is off)
        stats.retry(last.cause)
        log.warning(
            "amili.retry",
            clientNo=client_no,
            method=method,
            path=path,
            cause=last.describe(),
            attempt=tries.num,
            waited=round(tries.loop.time() - tries.failed_at, 3),
        )


class _Attempts:
    """One call's attempts: the retry budget, the last failure and when it happened."""

    def __init__(self, settings: ApiSettings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.loop = loop
        self.started = loop.time()
        self.num = 0
        self.last: Transient | None = None
        self.failed_at = self.started

    def retry_context(self) -> AsyncIterable[stamina.Attempt]:
        s = self.settings
        return stamina.retry_context(
            on=self.backoff,
            attempts=s.retry_attempts,
            timeout=s.retry_timeout,
            wait_initial=s.retry_wait_initial,
            wait_max=s.retry_wait_max,
            wait_jitter=s.retry_wait_initial,
        )

    def failed(self, exc: Transient) -> None:
        self.last, self.failed_at = exc, self.loop.time()

    def backoff(self, exc: Exception) -> bool | float:
        """stamina's hook: retry a `Transient`; a Retry-After sets the wait, unless it overruns the budget."""
        if not isinstance(exc, Transient):
            return False
        if exc.retry_after is None:
            return True
        left = self.settings.retry_timeout - (self.loop.time() - self.started)
        if exc.retry_after > left:
            exc.gave_up = f"Retry-After exceeds the {left:.1f} s left of the retry budget"
            return False
        return exc.retry_after + random.uniform(0, self.settings.retry_wait_initial)


def _give_up(
    exc: Transient, client_no: int | None, method: str, path: str, attempts: int
) -> AmiliProtocolError | AmiliUnavailable:
    """The error a call raises once its retries are spent on `exc`."""
    if isinstance(exc, Malformed):
        return AmiliProtocolError(
            f"Amili API: client {client_no}: {method} {path}: the body is not valid JSON "
            f"after {attempts} attempt(s): {exc.detail}"
        )
    return AmiliUnavailable(client_no, path, exc.describe(), attempts, method)
