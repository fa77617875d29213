"""The worker's transactional publish rate against Kafka's own producer (ProducerPerformance).

Both sides publish the same number of records of the same size in transactions of the same size,
one after the other, to the same broker:

- the worker side is `service.kafka.publisher.PartitionPublisher` (the worker's class, its producer
  settings) committing the worker's own records, read back from a run's topics: per transaction the
  baseline events of one page of customers and the snapshot records of exactly those customers
  (what `SyncEngine._commit_pages` commits per page), so keys, values and CloudEvents headers are
  the real ones;
- Kafka's side is `org.apache.kafka.tools.ProducerPerformance` from the broker's own jars, with
  `--transactional-id`, `--record-size` = the mean serialized size of the worker's records (key +
  value + header keys and values) and `--transaction-duration-ms` calibrated so that a transaction
  holds as many records as the worker's (a short calibration run measures its rate first).

    .venv/bin/python -m bench.publish --bootstrap HOST:PORT --prefix PREFIX [--records 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.infra import KAFKA_LIBS, say, shown_path
from service.config import TopicSettings
from service.kafka.publisher import OutRecord, PartitionPublisher
from service.kafka.topics import ensure_topics
from service.sync.kinds import default_groups
from testkit.kafka import partition_count


@dataclass
class Txn:
    records: list[OutRecord]


def record_size(r: OutRecord) -> int:
    return len(r.key or b"") + len(r.value or b"") + sum(len(k) + len(v) for k, v in r.headers)


async def worker_transactions(
    bootstrap: str, prefix: str, snapshot_partition: int, page_size: int, max_records: int
) -> list[Txn]:
    """The worker's page transactions of a baseline run, rebuilt from its topics (read_committed)."""
    topics = TopicSettings(prefix=prefix)
    lifecycle, snapshot = topics.lifecycle_topic, topics.snapshot_topic
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 2**20,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(lifecycle, p) for p in range(await partition_count(bootstrap, lifecycle))]
        snap_tp = TopicPartition(snapshot, snapshot_partition)
        consumer.assign([*tps, snap_tp])
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets([*tps, snap_tp])
        half = max_records // 2
        # the snapshot records of the first customers, in commit order
        snaps: list[OutRecord] = []
        consumer.pause(*tps)
        while len(snaps) < half and await consumer.position(snap_tp) < ends[snap_tp]:
            batch = await consumer.getmany(snap_tp, timeout_ms=1000, max_records=50_000)
            for r in batch.get(snap_tp, []):
                if len(snaps) < half and r.value is not None and not r.key.endswith(b"#meta"):
                    snaps.append(OutRecord(snapshot, r.key, r.value, partition=snapshot_partition))
        # then the baseline event of each of those customers
        needed = {s.key for s in snaps}
        events: dict[bytes, OutRecord] = {}
        consumer.pause(snap_tp)
        consumer.resume(*tps)
        while needed - events.keys():
            if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                break
            batch = await consumer.getmany(*tps, timeout_ms=1000, max_records=50_000)
            for records in batch.values():
                for r in records:
                    if r.key in needed:
                        events[r.key] = OutRecord(lifecycle, r.key, r.value, list(r.headers))
    finally:
        await consumer.stop()
    txns: list[Txn] = []
    for i in range(0, len(snaps), page_size):
        chunk = snaps[i : i + page_size]
        evs = [events[s.key] for s in chunk if s.key in events]
        txns.append(Txn(evs + chunk))
    return txns


async def publisher_rate(bootstrap: str, txns: list[Txn]) -> dict[str, Any]:
    """Commit `txns` with the worker's PartitionPublisher into a fresh topic set of the worker's layout."""
    prefix = f"benchpub{uuid.uuid4().hex[:8]}"
    topics = TopicSettings(prefix=prefix)
    connection = {"bootstrap_servers": bootstrap}
    await ensure_topics(topics, connection, groups=default_groups())
    remap = {"lifecycle": topics.lifecycle_topic, "snapshot": topics.snapshot_topic}
    prepared = [
        [
            OutRecord(remap[r.topic.rsplit(".", 1)[1]], r.key, r.value, r.headers, r.partition)
            for r in t.records
        ]
        for t in txns
    ]
    publisher = PartitionPublisher(connection, f"{prefix}-bench-0", 60_000)
    await publisher.start()
    try:
        await publisher.commit(prepared[0][:10])  # connections and producer id, outside the timing
        t0 = time.perf_counter()
        for records in prepared:
            await publisher.commit(records)
        seconds = time.perf_counter() - t0
    finally:
        await publisher.stop()
    n = sum(len(t) for t in prepared)
    size = sum(record_size(r) for t in prepared for r in t)
    return {
        "records": n,
        "transactions": len(prepared),
        "seconds": round(seconds, 3),
        "records_per_s": round(n / seconds),
        "mb_per_s": round(size / seconds / 2**20, 2),
    }


_RESULT = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


async def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


def producer_performance(
    bootstrap: str, topic: str, records: int, size: int, duration_ms: int, transactional_id: str
) -> dict[str, Any]:
    cmd = [
        "java", "-Xmx512m", "-cp", f"{KAFKA_LIBS}/*", "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(records), "--record-size", str(size), "--throughput", "-1",
        "--transactional-id", transactional_id, "--transaction-duration-ms", str(duration_ms),
        "--producer-props", f"bootstrap.servers={bootstrap}",
    ]  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    wall = time.perf_counter() - t0
    matches = _RESULT.findall(out.stdout)
    if out.returncode != 0 or not matches:
        raise RuntimeError(
            f"ProducerPerformance failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
        )
    sent, rate, mb = matches[-1]
    return {
        "records": int(sent),
        "records_per_s": round(float(rate)),
        "mb_per_s": float(mb),
        "duration_ms": duration_ms,
        "wall_s": round(wall, 2),
        "command": " ".join(cmd).replace(str(KAFKA_LIBS), shown_path(KAFKA_LIBS)),
    }


async def compare(
    bootstrap: str, prefix: str, snapshot_partition: int, page_size: int, records: int
) -> dict[str, Any]:
    txns = await worker_transactions(bootstrap, prefix, snapshot_partition, page_size, records)
    if not txns:
        raise RuntimeError(f"no snapshot records under prefix {prefix}")
    all_records = [r for t in txns for r in t.records]
    mean_size = round(sum(record_size(r) for r in all_records) / len(all_records))
    per_txn = round(len(all_records) / len(txns))
    worker = await publisher_rate(bootstrap, txns)
    topic = f"benchperf{uuid.uuid4().hex[:8]}"
    await _create_topic(bootstrap, topic, TopicSettings().partitions)
    # calibrate the transaction duration so that a transaction holds `per_txn` records
    probe = await asyncio.to_thread(
        producer_performance,
        bootstrap,
        topic,
        max(len(all_records) // 4, 20_000),
        mean_size,
        1000,
        f"{topic}-probe",
    )
    duration = max(1, round(per_txn / probe["records_per_s"] * 1000))
    kafka = await asyncio.to_thread(
        producer_performance, bootstrap, topic, len(all_records), mean_size, duration, f"{topic}-tx"
    )
    kafka["records_per_txn"] = round(kafka["records_per_s"] * duration / 1000)
    return {
        "record_size": mean_size,
        "records_per_txn": per_txn,
        "worker": worker,
        "kafka": kafka,
        "ratio": round(worker["records_per_s"] / kafka["records_per_s"], 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--prefix", required=True, help="topic prefix of a finished baseline run")
    p.add_argument("--partition", type=int, required=True, help="the client's snapshot partition")
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--records", type=int, default=200_000)
    a = p.parse_args()
    result = asyncio.run(compare(a.bootstrap, a.prefix, a.partition, a.page_size, a.records))
    say(str(result))


if __name__ == "__main__":
    main()
