"""`amili-sync request`: send fetch requests, one message per client (and optionally wait for their
run results).

One CronJob container can trigger many clients: `--client` repeated and/or `--clients-file` (one
clientNo per line). The exit code is 0 only when every request was sent (and, with `--wait`, every
run succeeded or was superseded): 1 when a send or a run failed, 3 when a result did not arrive in
time.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from service.config import Settings
from service.kafka.connection import connection_kwargs
from service.sync.requests import new_request_payload

OK_STATUSES = ("succeeded", "superseded")
EXIT_FAILED = 1
EXIT_NO_RESULT = 3


class ClientListError(Exception):
    """A `--clients-file` line is not a client number (the message names the file and line)."""


def read_clients_file(path: Path) -> list[int]:
    """Client numbers of a file, one per line; blank lines and `#` comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ClientListError(f"cannot read clients file {path}: {exc.strerror or exc}") from None
    clients = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.isdigit() or int(text) <= 0:
            raise ClientListError(f"{path}:{number}: not a client number: {text!r}")
        clients.append(int(text))
    return clients


def unique(clients: Iterable[int]) -> list[int]:
    """In the given order, each client once (two requests for one client would run twice)."""
    return list(dict.fromkeys(clients))


async def send_requests(
    settings: Settings, clients: list[int], filters: dict[str, str], reason: str | None, wait: float
) -> int:
    """Send one request per client; with `wait > 0` wait for every result. Returns the exit code."""
    conn = connection_kwargs(settings.kafka)
    consumer = await _results_consumer(settings, conn) if wait > 0 else None
    try:
        sent, failed = await _send_all(settings, conn, clients, filters, reason)
        if consumer is None or not sent:
            return EXIT_FAILED if failed else 0
        code = await _wait_results(consumer, sent, wait)
        return EXIT_FAILED if failed else code
    finally:
        if consumer is not None:
            await consumer.stop()


async def _results_consumer(settings: Settings, conn: dict[str, Any]) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        settings.topics.results_topic,
        **conn,
        isolation_level="read_committed",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    await consumer.seek_to_end()
    # make sure the end position is resolved before a request can be answered
    for tp in consumer.assignment():
        await consumer.position(tp)
    return consumer


async def _send_all(
    settings: Settings,
    conn: dict[str, Any],
    clients: list[int],
    filters: dict[str, str],
    reason: str | None,
) -> tuple[dict[str, int], int]:
    """({requestId: clientNo} of the requests sent, number of sends that failed)."""
    sent: dict[str, int] = {}
    failed = 0
    producer = AIOKafkaProducer(**conn, enable_idempotence=True)
    await producer.start()
    try:
        for client_no in clients:
            request_id = uuid.uuid4()
            payload = new_request_payload(request_id, client_no, datetime.now(UTC), filters, reason)
            try:
                meta = await producer.send_and_wait(
                    settings.topics.requests_topic, payload, key=str(client_no).encode()
                )
            except KafkaError as exc:
                failed += 1
                print(
                    f"request for client {client_no} not sent: {type(exc).__name__}: {exc}", file=sys.stderr
                )
                continue
            sent[str(request_id)] = client_no
            print(
                f"request {request_id} for client {client_no} sent to "
                f"{meta.topic}[{meta.partition}]@{meta.offset}"
            )
    finally:
        await producer.stop()
    return sent, failed


async def _wait_results(consumer: AIOKafkaConsumer, sent: dict[str, int], wait: float) -> int:
    """Print each awaited result as it arrives; the exit code of the whole set."""
    pending = dict(sent)
    code = 0
    deadline = asyncio.get_running_loop().time() + wait
    while pending and asyncio.get_running_loop().time() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            for r in records:
                result = orjson.loads(r.value)
                if pending.pop(str(result.get("requestId")), None) is None:
                    continue
                print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
                if result.get("status") not in OK_STATUSES:
                    code = EXIT_FAILED
    for request_id, client_no in pending.items():
        print(f"no result for request {request_id} (client {client_no}) within {wait:.0f}s", file=sys.stderr)
    return code if code or not pending else EXIT_NO_RESULT
