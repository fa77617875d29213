"""`/healthz`, `/readyz` and `/metrics` on one port (Starlette on uvicorn, in the worker's loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ReadinessCheck = Callable[[], Awaitable[tuple[bool, dict[str, object]]]]


def health_app(readiness: ReadinessCheck) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ready, detail = await readiness()
        return JSONResponse({"ready": ready, **detail}, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
    )


class HealthServer:
    def __init__(self, host: str, port: int, readiness: ReadinessCheck) -> None:
        config = uvicorn.Config(
            health_app(readiness), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # serve without uvicorn's own signal capture: the worker owns SIGTERM/SIGINT
        self.task = asyncio.create_task(self.server._serve())
        while not self.server.started:
            if self.task.done():
                await self.task  # raises the bind error
                return
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task:
            await self.task
