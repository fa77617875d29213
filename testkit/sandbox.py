"""The sandbox's test controls: seeded changes, and the customers as it stores them."""

from __future__ import annotations

from typing import Any

import httpx

from service.config import ApiSettings
from service.sandbox.testing import SandboxHandle


async def sandbox_changes(sandbox: SandboxHandle, **spec: Any) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.post(f"{sandbox.control_url}/changes", json=spec)
        r.raise_for_status()
        return list(r.json()["changes"])


async def sandbox_customers(sandbox: SandboxHandle, client_no: int) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=120) as http:
        r = await http.get(f"{sandbox.control_url}/clients/{client_no}/customers")
        r.raise_for_status()
        return list(r.json())


async def sandbox_customer_numbers(sandbox: SandboxHandle, client_no: int) -> list[str]:
    """The customerNo of every customer the sandbox holds for `client_no` (a run's baseline)."""
    return [str(c["customerNo"]) for c in await sandbox_customers(sandbox, client_no)]


async def sandbox_update(sandbox: SandboxHandle, client_no: int, customer: dict[str, Any]) -> dict[str, Any]:
    """Update one customer through the sandbox's ARM API (`PUT /clients/{no}/customers`), the way a
    change made in Amili arrives; answers the stored customer."""
    async with httpx.AsyncClient(timeout=60) as http:
        token = await http.post(
            sandbox.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
            },
        )
        token.raise_for_status()
        r = await http.put(
            f"{sandbox.base_url}/clients/{client_no}/customers",
            json=customer,
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        r.raise_for_status()
        return dict(r.json())


async def set_faults(sandbox: SandboxHandle, faults: list[dict[str, Any]], seed: int = 1) -> None:
    """Replace the sandbox's fault rules (latency, 429, 5xx, dropped connections ...)."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{sandbox.control_url}/faults", json={"seed": seed, "faults": faults})
        r.raise_for_status()


async def clear_faults(sandbox: SandboxHandle) -> None:
    """No more faults."""
    async with httpx.AsyncClient(timeout=10) as http:
        await http.delete(f"{sandbox.control_url}/faults")


def sandbox_api_settings(sandbox: SandboxHandle, **settings: Any) -> ApiSettings:
    """ApiSettings that reach `sandbox` (its URLs and credentials), then the `settings` given (which win)."""
    values: dict[str, Any] = {
        "base_url": sandbox.base_url,
        "token_url": sandbox.token_url,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
    }
    return ApiSettings(**{**values, **settings})
