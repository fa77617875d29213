"""`amili-sync request` against the real broker: several `--client` values and a `--clients-file`
give one message per client; the exit code is non-zero when any request fails."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service.config import TopicSettings
from service.kafka.topics import ensure_topics
from service.sync.kinds import default_groups
from tests.conftest import ROOT, KafkaBroker


@pytest.fixture
async def topics(kafka_broker: KafkaBroker, topic_prefix: str) -> TopicSettings:
    topics = TopicSettings(prefix=topic_prefix, partitions=2)
    await ensure_topics(
        topics, {"bootstrap_servers": kafka_broker.bootstrap_servers}, groups=default_groups()
    )
    return topics


async def amili_sync_request(bootstrap: str, prefix: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMILI_SYNC_")}
    env.update(
        {
            "AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "AMILI_SYNC_TOPICS__PREFIX": prefix,
            "AMILI_SYNC_LOG_FORMAT": "json",
        }
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "request",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def read_requests(bootstrap: str, topic: str, idle_ms: int = 1500) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[dict[str, object]] = []
    try:
        while batch := await consumer.getmany(timeout_ms=idle_ms):
            for records in batch.values():
                for r in records:
                    body = json.loads(r.value)
                    assert r.key == str(body["clientNo"]).encode()
                    found.append(body)
    finally:
        await consumer.stop()
    return found


@contextlib.asynccontextmanager
async def responder(bootstrap: str, topics: TopicSettings, status_of: dict[int, str]) -> AsyncIterator[None]:
    """Answers each request on the results topic with the status given for its client (a stand-in
    for the worker, so the command's exit code can be checked for a failing run)."""
    consumer = AIOKafkaConsumer(
        topics.requests_topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()

    async def answer() -> None:
        async for r in consumer:
            body = json.loads(r.value)
            status = status_of.get(body["clientNo"])
            if status is not None:
                result = {"requestId": body["requestId"], "clientNo": body["clientNo"], "status": status}
                await producer.send_and_wait(topics.results_topic, json.dumps(result).encode(), key=r.key)

    task = asyncio.create_task(answer())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()
        await producer.stop()


async def test_one_message_per_client_from_flags_and_file(
    kafka_broker: KafkaBroker, topics: TopicSettings, tmp_path: Path
) -> None:
    clients_file = tmp_path / "clients.txt"
    clients_file.write_text("# nightly clients\n7003\n\n7004  # big one\n7001\n")
    code, out, err = await amili_sync_request(
        kafka_broker.bootstrap_servers,
        topics.prefix,
        "--client",
        "7001",
        "--client",
        "7002",
        "--clients-file",
        str(clients_file),
        "--reason",
        "nightly",
    )
    assert code == 0, err
    sent = await read_requests(kafka_broker.bootstrap_servers, topics.requests_topic)
    # 7001 is both a flag and in the file: one request, not two
    assert sorted(int(str(b["clientNo"])) for b in sent) == [7001, 7002, 7003, 7004]
    assert len({b["requestId"] for b in sent}) == 4
    assert {b["reason"] for b in sent} == {"nightly"}
    assert out.count(" sent to ") == 4


async def test_exit_code_is_non_zero_when_one_run_fails(
    kafka_broker: KafkaBroker, topics: TopicSettings
) -> None:
    async with responder(kafka_broker.bootstrap_servers, topics, {7101: "succeeded", 7102: "failed"}):
        code, out, err = await amili_sync_request(
            kafka_broker.bootstrap_servers,
            topics.prefix,
            "--client",
            "7101",
            "--client",
            "7102",
            "--wait",
            "60",
        )
    assert code == 1, err
    assert '"status": "succeeded"' in out
    assert '"status": "failed"' in out


# Alike the test above in shape (kept): each test spells out the command line it runs.
async def test_exit_code_when_every_run_succeeds_and_when_a_result_is_missing(
    kafka_broker: KafkaBroker, topics: TopicSettings
) -> None:
    async with responder(kafka_broker.bootstrap_servers, topics, {7201: "succeeded", 7202: "superseded"}):
        code, _, err = await amili_sync_request(
            kafka_broker.bootstrap_servers,
            topics.prefix,
            "--client",
            "7201",
            "--client",
            "7202",
            "--wait",
            "60",
        )
        assert code == 0, err
        code, _, err = await amili_sync_request(
            kafka_broker.bootstrap_servers,
            topics.prefix,
            "--client",
            "7201",
            "--client",
            "7299",
            "--wait",
            "3",
        )
    assert code == 3
    assert "(client 7299) within 3s" in err


async def test_a_bad_clients_file_sends_nothing(
    kafka_broker: KafkaBroker, topics: TopicSettings, tmp_path: Path
) -> None:
    clients_file = tmp_path / "clients.txt"
    clients_file.write_text("7301\nseven\n")
    code, _, err = await amili_sync_request(
        kafka_broker.bootstrap_servers, topics.prefix, "--client", "7300", "--clients-file", str(clients_file)
    )
    assert code == 2
    assert f"{clients_file}:2: not a client number: 'seven'" in err
    assert await read_requests(kafka_broker.bootstrap_servers, topics.requests_topic, idle_ms=1000) == []
