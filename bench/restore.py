"""Restore of a snapshot changelog partition into an empty cache, against a plain consume.

Both read the same partition from offset 0 to its end with read_committed: first a plain aiokafka
consumer that only counts the records, then `service.snapshot.restore.restore_partitions` into a
brand-new `SnapshotStore` in an empty folder (what a new pod does). The ratio restore/consume is
what the cache costs on top of reading the changelog.

    .venv/bin/python -m bench.restore --bootstrap HOST:PORT --topic PREFIX.snapshot --partition P

`--fill N` first writes a snapshot topic of its own (one partition, compacted): N customers of one
client in random key order, then 1 % of them updated and 0.1 % removed (markers), in transactions
of 2,000 records as a worker writes them; the restore then reads that. CPU seconds of the process
are reported beside the wall times (the writer thread's included): on a loaded machine they tell
more than the wall times.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.infra import say
from service.snapshot.restore import PROCESS_FROM, restore_partitions
from service.snapshot.store import SnapshotStore
from service.sync.records import encode_removed, encode_state


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


async def timed_restore(
    bootstrap: str, topic: str, partition: int, folder: Path, process_from: int = PROCESS_FROM
) -> tuple[int, float]:
    shutil.rmtree(folder, ignore_errors=True)
    store = SnapshotStore(folder / "snapshot.sqlite")
    try:
        t0 = time.perf_counter()
        applied = await restore_partitions(
            store, topic, [partition], {"bootstrap_servers": bootstrap}, process_from=process_from
        )
        seconds = time.perf_counter() - t0
        rows = store.db.execute("SELECT count(*) FROM customers").fetchone()[0]
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    say(f"    restore: {applied[partition]} records applied, {rows} customers in the cache")
    return applied[partition], seconds


def _cpu_seconds() -> float:
    """CPU seconds of this process and its ended children (a restore's writer process included)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


async def compare_restore(
    bootstrap: str, topic: str, partition: int, folder: Path, process_from: int = PROCESS_FROM
) -> dict[str, Any]:
    cpu0 = _cpu_seconds()
    consumed, consume_s = await plain_consume(bootstrap, topic, partition)
    cpu1 = _cpu_seconds()
    restored, restore_s = await timed_restore(bootstrap, topic, partition, folder, process_from)
    cpu2 = _cpu_seconds()
    return {
        "consume_cpu_s": round(cpu1 - cpu0, 2),
        "restore_cpu_s": round(cpu2 - cpu1, 2),
        "records": restored,
        "consumed": consumed,
        "restore_s": round(restore_s, 2),
        "consume_s": round(consume_s, 2),
        "restore_per_s": round(restored / restore_s),
        "consume_per_s": round(consumed / consume_s),
        "ratio": round(restore_s / consume_s, 2),
        "writer": "process" if 0 < process_from <= restored else "thread",
    }


def _customer(i: int, rev: int) -> bytes:
    state = {
        "name": f"Customer {i:07d} Aktiebolag",
        "email": f"c{i}@example.se",
        "address": {"street": f"Storgatan {i % 300}", "zip": f"{10000 + i % 90000}", "city": "Stockholm"},
        "balance": round(random.uniform(0, 100_000), 2),
        "currency": "SEK",
        "registrationStatus": "active",
        "phone": f"+46 70 {i % 1000:03d} {i % 10000:04d}",
        "orgNo": f"55{i:08d}",
    }
    return encode_state(state, rev)


async def fill_partition(bootstrap: str, topic: str, n: int, client_no: int = 7) -> int:
    """A one-partition compacted snapshot topic like a worker's: records written."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()
    rng = random.Random(1)
    order = list(range(n))
    rng.shuffle(order)
    changed = rng.sample(order, n // 100)
    records = [(f"{client_no}/C{i:07d}".encode(), _customer(i, 1)) for i in order]
    records += [(f"{client_no}/C{i:07d}".encode(), _customer(i, 2)) for i in changed]
    records += [(f"{client_no}/C{i:07d}".encode(), encode_removed(3)) for i in changed[: n // 1000]]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"fill-{topic}", linger_ms=20)
    await producer.start()
    try:
        for at in range(0, len(records), 2000):
            async with producer.transaction():
                for key, value in records[at : at + 2000]:
                    await producer.send(topic, value, key=key, partition=0)
    finally:
        await producer.stop()
    return len(records)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partition", type=int, required=True)
    p.add_argument("--folder", type=Path, default=Path("/tmp/amili-restore-bench"))
    p.add_argument("--fill", type=int, help="first write N customers to the (new) topic, partition 0")
    p.add_argument("--process-from", type=int, default=PROCESS_FROM,
                   help="the restore's writer is a child process from this many records (0: a thread)")  # fmt: skip
    a = p.parse_args()
    if a.fill:
        say(f"    wrote {asyncio.run(fill_partition(a.bootstrap, a.topic, a.fill)):,} records to {a.topic}")
    say(str(asyncio.run(compare_restore(a.bootstrap, a.topic, a.partition, a.folder, a.process_from))))


if __name__ == "__main__":
    main()
