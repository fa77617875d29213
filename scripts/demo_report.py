"""Print the demo's change events (no baseline) and run results as tables (read_committed)."""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from service.config import load_settings


async def main() -> int:
    settings = load_settings()
    topics = [*settings.topics.event_topics(settings.sync.groups), settings.topics.results_topic]
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    events, results = [], []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000, max_records=10_000)
            if not batch:
                break
            for records in batch.values():
                for r in records:
                    headers = dict(r.headers)
                    data = orjson.loads(r.value)
                    if r.topic == settings.topics.results_topic:
                        results.append(data)
                    elif headers.get("ce_type") != b"amili.customer.baseline.v1":
                        events.append((headers["ce_type"].decode(), data))
    finally:
        await consumer.stop()
    console = Console(width=160)
    table = Table(title=f"change events ({len(events)})")
    for col in ("type", "customer", "before", "after", "changed", "delta"):
        table.add_column(col, overflow="fold")
    for etype, d in sorted(events, key=lambda e: (e[0], e[1]["customerNo"])):
        table.add_row(
            etype.removeprefix("amili.customer.").removesuffix(".v1"),
            d["customerNo"],
            _short(d["before"]),
            _short(d["after"]),
            ", ".join(d["changedFields"]),
            str(d.get("delta", "")),
        )
    console.print(table)
    res = Table(title="run results")
    for col in ("request", "status", "counts", "customers", "pages", "slices", "coverage", "seconds"):
        res.add_column(col)
    for r in results:
        res.add_row(
            r["requestId"][:8],
            r["status"],
            str(r["counts"]),
            str(r["customersRead"]),
            str(r["pages"]),
            str(r["slices"]),
            str(r["coverage"]),
            str(r["durationSeconds"]),
        )
    console.print(res)
    return 0 if events and len(results) >= 2 else 1


def _short(value: object) -> str:
    if value is None:
        return "∅"
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
