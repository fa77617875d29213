"""The engine's first sync in-process: CPU µs per customer of `SyncEngine.run`, without the network.

    .venv/bin/python -m bench.engine_bench [--pages 20] [--rounds 3]

The sandbox's customers are rendered and decoded before the clock starts (`bench.decode_bench`);
the run then diffs them against a real, empty `SnapshotStore`, builds every event and snapshot
record, and commits through `PartitionPublisher._commit` with a producer that partitions, fills
and builds the aiokafka batches as the real one does but sends nothing. What is left out: HTTP,
decoding, the broker's round trips and aiokafka's sender. Run it on two checkouts one after the
other to compare code (the machine is shared: alternate them, and compare medians of one session).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder

from bench.decode_bench import CLIENT_NO, render_pages
from service.amili.models import Customer, NamePrefixes, Page, ReadReport
from service.amili.parsing import parse_list
from service.config import ApiSettings, Settings
from service.engine.ports import Committed, OutRecord, RequestPosition
from service.engine.run import SyncEngine
from service.kafka.publisher import PartitionPublisher
from service.snapshot.store import SnapshotStore
from service.sync.requests import FetchRequest
from service.tuning import tune_gc

PARTITIONS = 6


class Stream:
    def __init__(self, pages: list[list[Customer]]) -> None:
        self.pages = pages
        self._report = ReadReport(client_no=CLIENT_NO, filters={}, slices=1)
        self._report.coverage = "proven"
        self._report.complete = True

    @property
    def report(self) -> ReadReport:
        return self._report

    async def _iterate(self) -> AsyncIterator[Page]:
        for i, customers in enumerate(self.pages):
            self._report.pages_read += 1
            self._report.customers += len(customers)
            yield Page(slice_filters={}, page_no=i + 1, total_pages=len(self.pages), customers=customers)

    def __aiter__(self) -> AsyncIterator[Page]:
        return self._iterate()

    async def aclose(self) -> None:
        return None

    def name_prefixes(self) -> NamePrefixes:
        return NamePrefixes({})


class Source:
    def __init__(self, pages: list[list[Customer]]) -> None:
        self.pages = pages

    def read(
        self,
        client_no: int,
        filters: Mapping[str, str] | None = None,
        *,
        known_names: Iterable[str | None] = (),
        name_prefixes: NamePrefixes | None = None,
    ) -> Stream:
        return Stream(self.pages)

    async def get_customer(self, client_no: int, customer_no: str) -> Customer | None:
        return None


class _Transaction:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None


class _Sent:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


class Producer:
    """What `PartitionPublisher._commit` uses of an `AIOKafkaProducer`; batches are built, not sent."""

    def __init__(self) -> None:
        self.offsets: dict[tuple[str, int], int] = {}

    def transaction(self) -> _Transaction:
        return _Transaction()

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(512 * 1024, 0, is_transactional=1)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[_Sent]:
        batch._build()  # what the sender does with it: the records' CRC and the batch header
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + batch.record_count()
        sent: asyncio.Future[_Sent] = asyncio.get_running_loop().create_future()
        sent.set_result(_Sent(topic, partition, offset))
        return sent


class Publisher:
    def __init__(self) -> None:
        self.producer: Any = Producer()

    async def commit(self, records: list[OutRecord], consumed: RequestPosition | None = None) -> Committed:
        last: dict[tuple[str, int], int] = {}
        await PartitionPublisher._commit(self.producer, records, consumed, last)
        return Committed(last)


async def first_sync(pages: list[list[Customer]], settings: Settings) -> float:
    """CPU seconds of one first sync of `pages` into an empty cache."""
    with tempfile.TemporaryDirectory() as folder:
        cache = SnapshotStore(Path(folder) / "cache.db")
        engine = SyncEngine(settings, cache, Source(pages))
        request = FetchRequest(requestId=uuid.uuid4(), clientNo=CLIENT_NO, requestedAt=datetime.now(UTC))
        start = time.process_time()
        result = await engine.run(request, Publisher(), 0, None)
        cpu = time.process_time() - start
        cache.close()
    assert result.counts == {"baseline": sum(map(len, pages))}, result.counts
    return cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pages", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    tune_gc()
    pages = [parse_list(body).customers for body in render_pages(args.pages, 1000)]
    settings = Settings(api=ApiSettings(base_url="http://127.0.0.1:1/arm/v1", page_size=1000))
    n = sum(map(len, pages))
    runs = [asyncio.run(first_sync(pages, settings)) / n * 1e6 for _ in range(args.rounds)]
    print(
        f"first sync of {n:,} customers in-process: {statistics.median(runs):.1f} µs CPU per customer (runs: "
        + ", ".join(f"{r:.1f}" for r in runs)
        + ")"
    )


if __name__ == "__main__":
    main()
