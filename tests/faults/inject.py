"""`python -m tests.faults.inject run`: the worker with faults injected where no outside action can
reach deterministically (the fault suite's own entry point; the service never imports it).

- `AMILI_FAULTS_FAIL_AFTER_COMMIT=N`: the first N runs raise right after their last transaction
  committed (the request's offset with it), as a crash of the cache write or a bug there would;
- `AMILI_FAULTS_RESTORE_GATE=path`: the first restore waits until `path` exists, so a test can stop
  the broker before the restore talks to it;
- `AMILI_FAULTS_FAIL_CLIENT=clientNo`: every run of that client raises before it reads anything
  (a failure that is not the API's answer, every time).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import service.entrypoints.app as worker_app
from service.engine.run import SyncEngine
from service.entrypoints.cli import main

_fail_after_commit = int(os.environ.get("AMILI_FAULTS_FAIL_AFTER_COMMIT", "0"))
_restore_gate = os.environ.get("AMILI_FAULTS_RESTORE_GATE")
_fail_client = int(os.environ.get("AMILI_FAULTS_FAIL_CLIENT", "0"))


class InjectedFailure(RuntimeError):
    pass


def _inject_after_commit() -> None:
    finish = SyncEngine._finish

    async def finish_then_fail(self: SyncEngine, *args: Any, **kwargs: Any) -> None:
        global _fail_after_commit
        await finish(self, *args, **kwargs)
        if _fail_after_commit > 0:
            _fail_after_commit -= 1
            raise InjectedFailure("injected failure after the run's last commit")

    SyncEngine._finish = finish_then_fail  # type: ignore[method-assign]


def _gate_first_restore(gate: Path) -> None:
    names = vars(worker_app)  # the worker module's own binding of the restore function
    restore = names["restore_partitions"]
    waited = False

    async def gated(*args: Any, **kwargs: Any) -> dict[int, int]:
        nonlocal waited
        if not waited:
            while not gate.exists():
                await asyncio.sleep(0.1)
            waited = True
        applied: dict[int, int] = await restore(*args, **kwargs)
        return applied

    names["restore_partitions"] = gated


def _fail_runs_of(client_no: int) -> None:
    run = SyncEngine.run

    async def failing_run(self: SyncEngine, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.clientNo == client_no:
            raise InjectedFailure(f"injected failure of every run of client {client_no}")
        return await run(self, request, *args, **kwargs)

    SyncEngine.run = failing_run  # type: ignore[method-assign]


if _fail_client:
    _fail_runs_of(_fail_client)
if _fail_after_commit:
    _inject_after_commit()
if _restore_gate:
    _gate_first_restore(Path(_restore_gate))
sys.exit(main())
