"""Sandbox fixtures: real sandbox subprocesses on free ports, shared per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.sandbox.testing import SandboxHandle, running_sandbox

MAIN_CLIENTS = {2218: 25_000, 3000: 500, 4000: 40}
STATIC_TOKEN = "static-test-token"


@dataclass
class Sandbox:
    """A running sandbox and an httpx client with a valid token for every client."""

    handle: SandboxHandle
    http: httpx.Client
    token: str

    @property
    def base(self) -> str:
        return self.handle.base_url

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        return self.http.get(self.base + path, params=params, headers=self.auth(token))

    def customers(self, client: int, token: str | None = None, **params: Any) -> httpx.Response:
        return self.get(f"/clients/{client}/customers", token, **params)

    def control(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.http.request(method, self.handle.control_url + path, json=body)

    def new_token(self, **body: Any) -> str:
        r = self.control("POST", "/token", body)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def fetch_token(self) -> httpx.Response:
        return self.http.post(
            self.handle.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self.handle.client_id,
                "client_secret": self.handle.client_secret,
            },
        )


def _start(
    clients: dict[int, int], seed: int, extra: list[str], token: str | None = None
) -> Iterator[Sandbox]:
    """A sandbox process; its `token` is `token` (e.g. a static one) or one fetched from the token endpoint."""
    with running_sandbox(clients, seed=seed, extra_args=extra) as handle, httpx.Client(timeout=30) as http:
        sandbox = Sandbox(handle, http, token or "")
        if token is None:
            r = sandbox.fetch_token()
            assert r.status_code == 200, r.text
            sandbox.token = r.json()["access_token"]
        yield sandbox


@pytest.fixture(scope="session")
def main_sandbox() -> Iterator[Sandbox]:
    yield from _start(MAIN_CLIENTS, 7, ["--static-token", STATIC_TOKEN])


@pytest.fixture
def sb(main_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The main sandbox (clients 2218=25000, 3000=500, 4000=40, seed 7), reset before and after the test."""
    main_sandbox.control("POST", "/reset")
    yield main_sandbox
    main_sandbox.control("POST", "/reset")
