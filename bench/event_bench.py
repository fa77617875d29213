"""Micro-benchmark of what a first sync does per customer after decoding: µs per customer.

    .venv/bin/python -m bench.event_bench [--pages 5] [--page-size 1000] [--rounds 9]

The customers are the sandbox's, rendered and decoded in-process (`bench.decode_bench`). For each
the engine's first-sync path (`service.engine.run`, `_commit_customers` with an empty cache): its
tracked state, the baseline change, the CloudEvent, the snapshot record, the two Kafka records, each
given its partition (the event's by its key, among 6) and appended to an aiokafka batch of its
topic-partition as the publisher does (batches of 512 KiB, closed when full; nothing is sent).

Each line is the median over `--rounds` of the step for every customer, in CPU seconds of this
process under the worker's garbage-collector settings:

- `(former)`: as the code was before the first-sync work (`testkit/reference_events.py`: the
  event data as a dict, every header per event, a frozen dataclass per change and per event;
  aiokafka's byte-wise `murmur2`);
- `(now)`: the code as it is, called as `service/engine/run.py` calls it.

The machine is shared: compare the lines of one run with each other, not across runs.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

from bench.decode_bench import CLIENT_NO, median_us, render_pages
from service.amili.models import DECLARED_FIELDS, Customer
from service.amili.parsing import parse_list
from service.engine.extract import customer_state
from service.engine.ports import OutRecord
from service.kafka.partitioning import key_partition
from service.sync.diff import Change, diff_customer
from service.sync.events import EventContext, build_event, snapshot_key
from service.sync.kinds import BASELINE
from service.sync.records import encode_state
from service.sync.state import TrackingRules
from service.tuning import tune_gc
from testkit import reference_events

PARTITIONS = 6  # of the event topic; the snapshot record goes to the run's partition
BATCH_BYTES = 512 * 1024  # the publisher's max_batch_size
RULES = TrackingRules()
NAMES = RULES.state_fields()


@dataclass(frozen=True)
class FormerChange:
    """`service.sync.diff.Change` as it was: a frozen dataclass."""

    kind: str
    customer_no: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed_fields: list[str]
    rev: int
    context: dict[str, Any]


def context() -> EventContext:
    return EventContext(
        CLIENT_NO,
        uuid.uuid4(),
        datetime.now(UTC),
        "urn:amili:arm",
        "https://schemas.example/events",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


class Batches:
    """One aiokafka batch per topic-partition, a new one when full (as the publisher fills them)."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, int], BatchBuilder] = {}

    def append(self, topic: str, partition: int, r: OutRecord) -> None:
        batch = self.open.get((topic, partition))
        if batch is None or batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers) is None:
            batch = self.open[(topic, partition)] = BatchBuilder(BATCH_BYTES, 0, is_transactional=1)
            batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers)


def first_sync_former(customers: Sequence[Customer], ctx: EventContext) -> None:
    batches = Batches()
    for c in customers:
        state = customer_state(c, NAMES, DECLARED_FIELDS)
        change = FormerChange(BASELINE, c.customerNo, None, state, [], 0, state)
        event = reference_events.build_event(change, ctx)  # type: ignore[arg-type]
        record = (snapshot_key(CLIENT_NO, c.customerNo), reference_events.encode_state(state, 1))
        out = OutRecord("events", event.key, event.value, event.headers)
        batches.append("events", (aiokafka_murmur2(out.key) & 0x7FFFFFFF) % PARTITIONS, out)
        batches.append("snapshot", 0, OutRecord("snapshot", record[0], record[1], partition=0))


def first_sync_now(customers: Sequence[Customer], ctx: EventContext) -> None:
    batches = Batches()
    for c in customers:
        state = customer_state(c, NAMES, DECLARED_FIELDS)
        [change] = diff_customer(c.customerNo, None, state, RULES, baseline=True)
        event = build_event(change, ctx)
        value = encode_state(state, 1)
        out = OutRecord("events", event.key, event.value, event.headers)
        batches.append("events", key_partition(out.key, PARTITIONS), out)
        key = snapshot_key(CLIENT_NO, c.customerNo)
        batches.append("snapshot", 0, OutRecord("snapshot", key, value, partition=0))


def measure(customers: Sequence[Customer], rounds: int) -> dict[str, float]:
    ctx = context()
    states = [customer_state(c, NAMES, DECLARED_FIELDS) for c in customers]
    changes = [
        diff_customer(c.customerNo, None, s, RULES, baseline=True)[0]
        for c, s in zip(customers, states, strict=True)
    ]
    events = [build_event(ch, ctx) for ch in changes]
    keys = [e.key for e in events]
    check_equal(changes, ctx)

    def former_changes() -> list[FormerChange]:
        return [
            FormerChange(BASELINE, c.customerNo, None, s, [], 0, s)
            for c, s in zip(customers, states, strict=True)
        ]

    ways: dict[str, Callable[[], object]] = {
        "state": lambda: [customer_state(c, NAMES, DECLARED_FIELDS) for c in customers],
        "diff (former: frozen dataclass)": former_changes,
        "diff (now)": lambda: [
            diff_customer(c.customerNo, None, s, RULES, baseline=True)
            for c, s in zip(customers, states, strict=True)
        ],
        "event (former)": lambda: [reference_events.build_event(ch, ctx) for ch in changes],
        "event (now)": lambda: [build_event(ch, ctx) for ch in changes],
        "snapshot record (former, now)": lambda: [encode_state(s, 1) for s in states],
        "partition of the event (former: aiokafka murmur2)": lambda: [
            (aiokafka_murmur2(k) & 0x7FFFFFFF) % PARTITIONS for k in keys
        ],
        "partition of the event (now)": lambda: [key_partition(k, PARTITIONS) for k in keys],
        "whole customer (former)": lambda: first_sync_former(customers, ctx),
        "whole customer (now)": lambda: first_sync_now(customers, ctx),
    }
    return {name: median_us(run, len(customers), rounds) for name, run in ways.items()}


def check_equal(changes: Sequence[Change], ctx: EventContext) -> None:
    """The measured ways produce the same bytes (the tests check this on every kind)."""
    for ch in changes[:200]:
        former = reference_events.build_event(ch, ctx)
        now = build_event(ch, ctx)
        assert (now.id, now.key, now.value, now.headers) == (
            former.id,
            former.key,
            former.value,
            former.headers,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pages", type=int, default=5)
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args()
    tune_gc()  # the worker's garbage-collector settings
    customers = [c for body in render_pages(args.pages, args.page_size) for c in parse_list(body).customers]
    print(f"{len(customers):,} customers, first sync (baseline), median of {args.rounds} rounds")
    for name, us in measure(customers, args.rounds).items():
        print(f"  {name:<52} {us:7.2f} µs/customer")


if __name__ == "__main__":
    main()
