"""`amili-sync tail`: print events read with read_committed, one readable line (or JSON line) each."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from service.config import Settings
from service.kafka.connection import connection_kwargs


def event_topics(settings: Settings) -> list[str]:
    """Every tracked group's topic, the lifecycle topic and the results topic."""
    return [*settings.topics.event_topics(settings.sync.groups), settings.topics.results_topic]


def resolve_topics(settings: Settings, names: list[str]) -> list[str]:
    if not names:
        return event_topics(settings)
    known = set(settings.topics.all_topics(settings.sync.groups))
    return [
        settings.topics.name(n) if n not in known and settings.topics.name(n) in known else n for n in names
    ]


def readable(record: Any) -> str:
    headers = {k: v.decode("utf-8", "replace") for k, v in (record.headers or [])}
    try:
        data = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        data = record.value
    ce_type = headers.get("ce_type")
    if ce_type and isinstance(data, dict):
        kind = ce_type.removeprefix("amili.customer.").removesuffix(".v1")
        fields = ",".join(data.get("changedFields") or [])
        extra = f" delta={data['delta']} {data.get('currency') or ''}".rstrip() if "delta" in data else ""
        return (
            f"{kind:<28} client={data.get('clientNo')} customer={data.get('customerNo')} "
            f"{_short(data.get('before'))} -> {_short(data.get('after'))}"
            f"{' [' + fields + ']' if fields else ''}{extra} id={headers.get('ce_id', '')[:8]}"
        )
    if isinstance(data, dict) and "status" in data:
        return (
            f"{'run result':<28} client={data.get('clientNo')} status={data.get('status')} "
            f"counts={data.get('counts')} customers={data.get('customersRead')} "
            f"coverage={data.get('coverage')} seconds={data.get('durationSeconds')}"
            + (f" error={data['error']}" if data.get("error") else "")
        )
    return f"{record.topic}: {data!r}"


def _short(value: Any) -> str:
    if value is None:
        return "∅"
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def as_json(record: Any) -> str:
    headers = {k: v.decode("utf-8", "replace") for k, v in (record.headers or [])}
    value: Any
    try:
        value = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        value = record.value.decode("utf-8", "replace")
    return orjson.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key.decode("utf-8", "replace") if record.key else None,
            "headers": headers,
            "value": value,
        }
    ).decode()


async def tail(
    settings: Settings,
    topics: list[str],
    from_beginning: bool,
    json_lines: bool,
    max_events: int,
    idle_timeout: float,
) -> int:
    consumer = AIOKafkaConsumer(
        *resolve_topics(settings, topics),
        **connection_kwargs(settings.kafka),
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    seen = 0
    loop = asyncio.get_running_loop()
    last = loop.time()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    print(as_json(r) if json_lines else readable(r), flush=True)
                    seen += 1
                    last = loop.time()
                    if max_events and seen >= max_events:
                        return 0
            if idle_timeout and loop.time() - last >= idle_timeout:
                return 0
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0
    finally:
        await consumer.stop()
        sys.stdout.flush()
