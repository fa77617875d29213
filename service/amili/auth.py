"""Bearer tokens: a static token, or OAuth2 client credentials with a cached, shared refresh.

Client credentials: `POST token_url` form-encoded `grant_type=client_credentials`, `client_id`,
`client_secret` and, when configured, `scope`, `resource`, `audience` (the identity-service flow
assumed in `docs/amili-api.md`). The answer's lifetime is the earliest of: `expires_in` (seconds; a number or
a numeric string such as `"3599"`), `expires_on` (unix time, number or numeric string, or an ISO
8601 time) and the `exp` claim of a JWT access token (both whole seconds, so they can end a token up
to a second before `expires_in` says); else 300 s. The token is reused until shortly before it
expires (10 % of its lifetime, at least half a second for short tokens and at most 60 s early, so a
request still in flight does not arrive with an expired token); concurrent callers share one
refresh through an `asyncio.Lock`. A 401 from the API invalidates the token it was sent with, and
the call is retried once with a fresh one (see `AmiliClient`).

Token endpoint failures: 429/5xx/timeouts/resets and malformed bodies are retried like API calls;
any other status, or retries running out, raise `AmiliAuthError`. Neither the secret nor a token is
ever put in a message or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
import orjson

from service.config import ApiSettings
from service.logs import get_logger

from ._http import Caller, CallStats, Malformed, Redactor
from .errors import AmiliAuthError, AmiliError, AmiliProtocolError, AmiliUnavailable

log = get_logger("service.amili")

DEFAULT_LIFETIME = 300.0
MAX_EARLY_REFRESH = 60.0


@dataclass(frozen=True)
class TokenAnswer:
    access_token: str
    lifetime: float  # seconds from now


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _jwt_exp(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return None
    return _number(payload.get("exp")) if isinstance(payload, dict) else None


def parse_token_answer(data: Any, now: float | None = None) -> TokenAnswer:
    """Read a token endpoint's JSON answer (already decoded). `now` is wall-clock unix time (tests)."""
    if not isinstance(data, Mapping):
        raise AmiliAuthError("token endpoint answered JSON that is not an object")
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise AmiliAuthError("token endpoint answered without an access_token")
    token_type = data.get("token_type")
    if isinstance(token_type, str) and token_type.lower() != "bearer":
        raise AmiliAuthError(f"token endpoint answered token_type {token_type[:20]!r}, expected Bearer")
    current = time.time() if now is None else now
    relative = _number(data.get("expires_in"))
    expires_on = data.get("expires_on")
    at = _number(expires_on)
    if at is None and isinstance(expires_on, str):
        try:
            parsed = datetime.fromisoformat(expires_on.strip().replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            at = parsed.timestamp()
    # absolute times (whole seconds, and the JWT's own `exp`) can end a token before expires_in says;
    # the earliest wins, but an absolute time already past (a skewed clock) is not trusted
    absolute = [t - current for t in (at, _jwt_exp(token)) if t is not None and t > current]
    candidates = ([relative] if relative is not None else []) + absolute
    lifetime = min(candidates) if candidates else DEFAULT_LIFETIME
    return TokenAnswer(token, max(0.0, lifetime))


class Auth(Protocol):
    can_refresh: bool

    async def token(self) -> str | None: ...

    async def invalidate(self, used: str | None) -> None: ...


class NoAuth:
    can_refresh = False

    async def token(self) -> str | None:
        return None

    async def invalidate(self, used: str | None) -> None:
        return None


class StaticToken:
    can_refresh = False

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str | None:
        return self._token

    async def invalidate(self, used: str | None) -> None:
        return None


class ClientCredentials:
    """OAuth2 client credentials with a cached token and one shared refresh."""

    can_refresh = True

    def __init__(self, settings: ApiSettings, caller: Caller, redactor: Redactor) -> None:
        assert settings.token_url and settings.client_id and settings.client_secret
        self._settings = settings
        self._url = settings.token_url
        self._caller = caller
        self._redactor = redactor
        self._lock = asyncio.Lock()
        self._value: str | None = None
        self._refresh_at = 0.0  # loop time
        self.fetches = 0  # token requests sent (for tests and logs)

    def _fresh(self) -> str | None:
        if self._value is not None and asyncio.get_running_loop().time() < self._refresh_at:
            return self._value
        return None

    async def token(self) -> str | None:
        if (value := self._fresh()) is not None:
            return value
        async with self._lock:
            if (value := self._fresh()) is not None:
                return value
            answer = await self._fetch()
            early = min(MAX_EARLY_REFRESH, max(0.1 * answer.lifetime, min(1.0, 0.5 * answer.lifetime)))
            self._value = answer.access_token
            self._refresh_at = asyncio.get_running_loop().time() + answer.lifetime - early
            self._redactor.add(answer.access_token)
            log.info("amili.token_refreshed", lifetime_s=round(answer.lifetime, 1), fetches=self.fetches)
            return self._value

    async def invalidate(self, used: str | None) -> None:
        """Forget the token if it is still the one a 401 came back for (else someone refreshed already)."""
        if used is not None and used == self._value:
            self._value = None

    async def _fetch(self) -> TokenAnswer:
        s = self._settings
        form = {"grant_type": "client_credentials", "client_id": s.client_id or ""}
        form["client_secret"] = s.client_secret.get_secret_value() if s.client_secret else ""
        for key in ("scope", "resource", "audience"):
            if value := getattr(s, key):
                form[key] = value
        self.fetches += 1
        path = httpx.URL(self._url).path or "/"

        def handle(response: httpx.Response) -> TokenAnswer:
            if response.status_code != 200:
                raise AmiliAuthError(
                    f"Amili token endpoint: POST {path} answered {response.status_code}: "
                    f"{self._redactor.excerpt(response.content)}"
                )
            try:
                data = orjson.loads(response.content)
            except orjson.JSONDecodeError as exc:
                raise Malformed(f"{exc.msg} at char {exc.pos}") from None
            return parse_token_answer(data)

        try:
            return await self._caller.call(
                "POST",
                self._url,
                handle=handle,
                client_no=None,
                path=path,
                stats=CallStats(),
                data=form,
                headers=_form_headers,
                limited=False,
            )
        except (AmiliUnavailable, AmiliProtocolError) as exc:
            raise AmiliAuthError(f"Amili token endpoint: {exc}") from None
        except AmiliAuthError:
            raise
        except AmiliError as exc:  # pragma: no cover - defensive
            raise AmiliAuthError(f"Amili token endpoint: {exc}") from None


async def _form_headers() -> Mapping[str, str]:
    return {"Accept": "application/json"}


def make_auth(settings: ApiSettings, caller: Caller, redactor: Redactor) -> Auth:
    """Client credentials when `token_url` is set, else the static `token`, else no Authorization."""
    if settings.token_url:
        return ClientCredentials(settings, caller, redactor)
    if settings.token is not None:
        return StaticToken(settings.token.get_secret_value())
    return NoAuth()
