"""The sandbox ASGI application: routes, the one exception handler, and the outer fault layer.

`create_app(SandboxConfig(...))` returns the ASGI callable. The modules beside this one hold the
parts: `config` (settings and modes), `state` (what a process holds), `validation` (reading
requests), `api` (ARM endpoints, token, health), `controls` (/_sandbox), `responses` (Amili-shaped
errors) and `asgi` (faults, stats, Server-Timing). See README.md in this folder for the behaviour
and every choice made where Amili's docs are silent.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.sandbox.api import Api
from service.sandbox.asgi import SandboxASGI
from service.sandbox.config import SandboxConfig
from service.sandbox.controls import Controls
from service.sandbox.faults import FaultSpecError
from service.sandbox.responses import ERROR_NAMES, ApiError, error_response
from service.sandbox.state import SandboxState
from service.sandbox.store import ChangeError

__all__ = ["SandboxConfig", "create_app"]


def _as_api_error(exc: Exception) -> ApiError:
    """Every error a handler lets out, as the Amili-shaped error it answers with."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        return ApiError(exc.status_code, exc.detail or ERROR_NAMES.get(exc.status_code, "error"))
    return ApiError(400, str(exc))  # ChangeError, FaultSpecError: a bad control request


async def _error_response(request: Request, exc: Exception) -> Response:
    return error_response(_as_api_error(exc))


def _routes(base: str, token_path: str, api: Api, ctl: Controls) -> list[Route]:
    customers = f"{base}/clients/{{clientno}}/customers"
    return [
        Route(customers, api.list_customers, methods=["GET"]),
        Route(customers, api.post_customer, methods=["POST"]),
        Route(customers, api.put_customer, methods=["PUT"]),
        Route(f"{customers}/{{customerno}}", api.get_customer, methods=["GET"]),
        Route(f"{customers}/{{customerno}}", api.delete_customer, methods=["DELETE"]),
        Route(token_path, api.token, methods=["POST"]),
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


def create_app(config: SandboxConfig) -> SandboxASGI:
    state = SandboxState(config)
    router = Starlette(
        routes=_routes(state.base_path, state.token_path, Api(state), Controls(state)),
        exception_handlers={
            exc_type: _error_response for exc_type in (ApiError, HTTPException, ChangeError, FaultSpecError)
        },
    )
    router.state.sandbox = state
    return SandboxASGI(state, router)
