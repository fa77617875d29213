"""End-to-end harness: the worker as a separate process, requests sent and events read over Kafka."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service.sandbox.testing import SandboxHandle
from service.sync.state import normalize
from tests.event_check import check_event

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env(
    bootstrap: str, prefix: str, sandbox: SandboxHandle, state_dir: Path, health_port: int, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMILI_SYNC_")}
    env.update(
        {
            "AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "AMILI_SYNC_KAFKA__GROUP_ID": f"{prefix}.worker",
            "AMILI_SYNC_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "AMILI_SYNC_TOPICS__PREFIX": prefix,
            "AMILI_SYNC_TOPICS__PARTITIONS": "3",
            "AMILI_SYNC_API__BASE_URL": sandbox.base_url,
            "AMILI_SYNC_API__TOKEN_URL": sandbox.token_url,
            "AMILI_SYNC_API__CLIENT_ID": sandbox.client_id,
            "AMILI_SYNC_API__CLIENT_SECRET": sandbox.client_secret,
            "AMILI_SYNC_API__RETRY_WAIT_INITIAL": "0.05",
            "AMILI_SYNC_API__RATE_LIMIT": "1000",
            "AMILI_SYNC_STATE_DIR": str(state_dir),
            "AMILI_SYNC_HEALTH_PORT": str(health_port),
            "AMILI_SYNC_HEALTH_HOST": "127.0.0.1",
            "AMILI_SYNC_LOG_FORMAT": "json",
        }
    )
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    module: str = "service"  # `python -m <module> run` (the fault suite injects faults with its own)

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.env['AMILI_SYNC_HEALTH_PORT']}"

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "run"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready:
            self.wait_ready(timeout)

    def readyz(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(f"{self.health_url}/readyz", timeout=2)
        except httpx.HTTPError:
            return None
        return dict(r.json()) if r.status_code == 200 else None

    def wait_ready(self, timeout: float = 60.0, partitions: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail_log()}")
            ready = self.readyz()
            if ready and (ready.get("partitions") or not partitions):
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.tail_log()}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process stays alive but does nothing (a zombie-to-be: GC pause, stuck node)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def tail_log(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


def request_payload(
    client_no: int, filters: dict[str, str] | None = None, requested_at: datetime | None = None
) -> tuple[str, bytes]:
    rid = str(uuid.uuid4())
    body: dict[str, Any] = {
        "requestId": rid,
        "clientNo": client_no,
        "requestedAt": (requested_at or datetime.now(UTC)).isoformat(),
    }
    if filters:
        body["filters"] = filters
    return rid, json.dumps(body).encode()


async def send_raw(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def send_request(
    bootstrap: str,
    prefix: str,
    client_no: int,
    filters: dict[str, str] | None = None,
    requested_at: datetime | None = None,
) -> str:
    rid, payload = request_payload(client_no, filters, requested_at)
    await send_raw(bootstrap, f"{prefix}.fetch-requests", [(str(client_no).encode(), payload)])
    return rid


@dataclass
class Collected:
    events: list[dict[str, Any]] = field(default_factory=list)  # checked CloudEvents data + id/type
    results: list[dict[str, Any]] = field(default_factory=list)
    dlq: list[Any] = field(default_factory=list)


class TopicReader:
    """A read_committed reader of every output topic of one prefix; validates each event."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.prefix = prefix
        self.topics = [
            f"{prefix}.{t}"
            for t in (
                "balance-changed",
                "address-changed",
                "registration-status-changed",
                "lifecycle",
                "sync-results",
                "fetch-requests.dlq",
            )
        ]
        self.consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        self.data = Collected()

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def poll(self, timeout_ms: int = 500) -> int:
        batch = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=50_000)
        n = 0
        for records in batch.values():
            for r in records:
                n += 1
                if r.topic.endswith(".sync-results"):
                    self.data.results.append(json.loads(r.value))
                elif r.topic.endswith(".dlq"):
                    self.data.dlq.append(r)
                else:
                    self.data.events.append(
                        {**check_event(r.key, r.value, list(r.headers)), "_topic": r.topic}
                    )
        return n

    async def wait_results(
        self, request_ids: Iterable[str], timeout: float = 120.0
    ) -> dict[str, dict[str, Any]]:
        wanted = set(request_ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.poll()
            found = {r["requestId"]: r for r in self.data.results if r["requestId"] in wanted}
            if set(found) == wanted:
                await self.drain()  # events committed before the results, still on their way
                return found
        missing = wanted - {r["requestId"] for r in self.data.results}
        raise AssertionError(f"no result within {timeout}s for {sorted(missing)}")

    async def drain(self, quiet_ms: int = 1000) -> None:
        while await self.poll(quiet_ms):
            pass

    def events_of(self, request_id: str) -> list[dict[str, Any]]:
        return [e for e in self.data.events if e["requestId"] == request_id]


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


KIND_TO_TYPE = {
    "balance": "amili.customer.balance_changed.v1",
    "address": "amili.customer.address_changed.v1",
    "registration_status": "amili.customer.registration_status_changed.v1",
    "created": "amili.customer.created.v1",
    "deleted": "amili.customer.removed.v1",
}


def change_identity(change: dict[str, Any]) -> tuple[str, str, str]:
    """(event type, customerNo, new value) of a change the sandbox reported."""
    after = change["after"] or {}
    value: object = None
    if change["kind"] == "balance":  # the client parses amounts as floats: 664 arrives as 664.0
        value = float(after["balanceTotal"]) if after.get("balanceTotal") is not None else None
    elif change["kind"] == "address":
        value = normalize(after.get("postalAddress"))
    elif change["kind"] == "registration_status":
        value = [
            normalize(after.get("registrationStatusCode")),
            normalize(after.get("registrationStatusDate")),
        ]
    return KIND_TO_TYPE[change["kind"]], change["customerNo"], json.dumps(value, sort_keys=True)


def event_identity(event: dict[str, Any]) -> tuple[str, str, str]:
    after = event["after"] or {}
    value: object = None
    if event["type"].endswith("balance_changed.v1"):
        value = float(after["balanceTotal"]) if after.get("balanceTotal") is not None else None
    elif event["type"].endswith("address_changed.v1"):
        value = after.get("postalAddress")
    elif event["type"].endswith("registration_status_changed.v1"):
        value = [after.get("registrationStatusCode"), after.get("registrationStatusDate")]
    return event["type"], event["customerNo"], json.dumps(value, sort_keys=True)
