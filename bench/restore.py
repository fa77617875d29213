"""Restore of a snapshot changelog partition into an empty cache, against a plain consume.

Both read the same partition from offset 0 to its end with read_committed: first a plain aiokafka
consumer that only counts the records, then `service.snapshot.restore.restore_partitions` into a
brand-new `SnapshotStore` in an empty folder (what a new pod does). The ratio restore/consume is
what the cache costs on top of reading the changelog.

    .venv/bin/python -m bench.restore --bootstrap HOST:PORT --topic PREFIX.snapshot --partition P
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.infra import say
from service.snapshot.restore import restore_partitions
from service.snapshot.store import SnapshotStore


async def plain_consume(bootstrap: str, topic: str, partition: int) -> tuple[int, float]:
    """Records of the partition read with read_committed and counted; (records, seconds)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        t0 = time.perf_counter()
        await consumer.seek_to_beginning(tp)
        n = 0
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=20_000)
            n += sum(len(records) for records in batch.values())
        return n, time.perf_counter() - t0
    finally:
        await consumer.stop()


async def timed_restore(bootstrap: str, topic: str, partition: int, folder: Path) -> tuple[int, float]:
    shutil.rmtree(folder, ignore_errors=True)
    store = SnapshotStore(folder / "snapshot.sqlite")
    try:
        t0 = time.perf_counter()
        applied = await restore_partitions(store, topic, [partition], {"bootstrap_servers": bootstrap})
        seconds = time.perf_counter() - t0
        rows = store.db.execute("SELECT count(*) FROM customers").fetchone()[0]
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    say(f"    restore: {applied[partition]} records applied, {rows} customers in the cache")
    return applied[partition], seconds


async def compare_restore(bootstrap: str, topic: str, partition: int, folder: Path) -> dict[str, Any]:
    consumed, consume_s = await plain_consume(bootstrap, topic, partition)
    restored, restore_s = await timed_restore(bootstrap, topic, partition, folder)
    return {
        "records": restored,
        "consumed": consumed,
        "restore_s": round(restore_s, 2),
        "consume_s": round(consume_s, 2),
        "restore_per_s": round(restored / restore_s),
        "consume_per_s": round(consumed / consume_s),
        "ratio": round(restore_s / consume_s, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partition", type=int, required=True)
    p.add_argument("--folder", type=Path, default=Path("/tmp/amili-restore-bench"))
    a = p.parse_args()
    say(str(asyncio.run(compare_restore(a.bootstrap, a.topic, a.partition, a.folder))))


if __name__ == "__main__":
    main()
