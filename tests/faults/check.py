"""The consistency check that ends every fault scenario (`check` is pure; `read_snapshot` reads the
snapshot changelog as a read_committed consumer).

Input: what a read_committed consumer saw on the output topics (events, run results, the snapshot
changelog) and what the sandbox says happened (its change lists, the customers at baseline time and
now). Output: a `Verdict` with

- lost: a true change (one the sandbox reported) without its event;
- duplicated: a true change with more than one event (or one event id seen twice);
- unexpected: an event no change explains (a wrong removal, a spurious change);
- baseline problems: a customer present at the first run without exactly one baseline event;
- missing / duplicated results: a request without exactly one run result;
- snapshot mismatches: the compacted snapshot (last value per key) differing from the API's data.

A change is identified by (event type, customerNo, new value of the group), so a customer that
changes twice in two rounds is two changes, and a redelivered run that re-publishes is a duplicate.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from service.kafka.topics import partition_counts
from service.sync.state import TrackingRules, normalize, tracked_state

KIND_TO_TYPE = {
    "balance": "amili.customer.balance_changed.v1",
    "address": "amili.customer.address_changed.v1",
    "registration_status": "amili.customer.registration_status_changed.v1",
    "created": "amili.customer.created.v1",
    "deleted": "amili.customer.removed.v1",
}
BASELINE_TYPE = "amili.customer.baseline.v1"
Identity = tuple[str, str, str]


def _group_value(kind: str, after: Mapping[str, Any] | None) -> object:
    after = after or {}
    if kind == "balance":  # the client parses amounts as floats: 664 arrives as 664.0
        value = normalize(after.get("balanceTotal"))
        return float(value) if isinstance(value, int | float) else value
    if kind == "address":
        return normalize(after.get("postalAddress"))
    if kind == "registration_status":
        return [
            normalize(after.get("registrationStatusCode")),
            normalize(after.get("registrationStatusDate")),
        ]
    return None


def change_identity(change: Mapping[str, Any]) -> Identity:
    """(event type, customerNo, new group value) of a change reported by the sandbox."""
    kind = change["kind"]
    value = _group_value(kind, change["after"])
    return KIND_TO_TYPE[kind], str(change["customerNo"]), json.dumps(value, sort_keys=True)


def event_identity(event: Mapping[str, Any]) -> Identity:
    """The same identity for a published event (its CloudEvents `data` plus `type`)."""
    etype = event["type"]
    kind = next((k for k, t in KIND_TO_TYPE.items() if t == etype), None)
    value = (
        _group_value(kind, event["after"]) if kind in ("balance", "address", "registration_status") else None
    )
    return etype, str(event["customerNo"]), json.dumps(value, sort_keys=True)


@dataclass
class Verdict:
    scenario: str
    runs: int = 0
    kills: int = 0
    events_checked: int = 0
    changes_expected: int = 0
    lost: Counter[Identity] = field(default_factory=Counter)
    duplicated: Counter[Identity] = field(default_factory=Counter)
    unexpected: Counter[Identity] = field(default_factory=Counter)
    duplicate_ids: list[str] = field(default_factory=list)
    baseline_problems: list[str] = field(default_factory=list)
    results_missing: list[str] = field(default_factory=list)
    results_duplicated: list[str] = field(default_factory=list)
    snapshot_mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_lost(self) -> int:
        return sum(self.lost.values())

    @property
    def n_duplicated(self) -> int:
        return sum(self.duplicated.values()) + len(self.duplicate_ids)

    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.unexpected
            or self.duplicate_ids
            or self.baseline_problems
            or self.results_missing
            or self.results_duplicated
            or self.snapshot_mismatches
        )

    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"lost {sum(self.lost.values())}: {list(self.lost)[:5]}")
        if self.duplicated:
            out.append(f"duplicated {sum(self.duplicated.values())}: {list(self.duplicated)[:5]}")
        if self.unexpected:
            out.append(f"unexpected {sum(self.unexpected.values())}: {list(self.unexpected)[:5]}")
        if self.duplicate_ids:
            out.append(f"event ids seen twice: {self.duplicate_ids[:5]}")
        out += [f"baseline: {p}" for p in self.baseline_problems[:5]]
        if self.results_missing:
            out.append(f"requests without a result: {self.results_missing[:5]}")
        if self.results_duplicated:
            out.append(f"requests with several results: {self.results_duplicated[:5]}")
        out += [f"snapshot: {m}" for m in self.snapshot_mismatches[:5]]
        return out


def check(
    verdict: Verdict,
    *,
    events: list[dict[str, Any]],
    results: list[dict[str, Any]],
    request_ids: Iterable[str],
    changes: list[dict[str, Any]],
    baseline_customers: Iterable[str],
    snapshot: Mapping[bytes, bytes | None],
    current_customers: list[dict[str, Any]],
    client_no: int,
    rules: TrackingRules | None = None,
) -> Verdict:
    """Fill `verdict` from what was published and what the sandbox says happened."""
    rules = rules or TrackingRules()
    verdict.events_checked = len(events)
    # every true change exactly once, nothing else
    expected = Counter(change_identity(c) for c in changes)
    got = Counter(event_identity(e) for e in events if e["type"] != BASELINE_TYPE)
    verdict.changes_expected = sum(expected.values())
    verdict.lost = expected - got
    verdict.duplicated = Counter(
        {k: n - expected[k] for k, n in got.items() if expected[k] and n > expected[k]}
    )
    verdict.unexpected = Counter({k: n for k, n in got.items() if not expected[k]})
    ids = Counter(e["id"] for e in events)
    verdict.duplicate_ids = [i for i, n in ids.items() if n > 1]
    # one baseline event per customer of the first run
    baseline = Counter(str(e["customerNo"]) for e in events if e["type"] == BASELINE_TYPE)
    wanted = set(baseline_customers)
    verdict.baseline_problems = [
        f"{no}: {baseline[no]} baseline events" for no in sorted(wanted) if baseline[no] != 1
    ]
    verdict.baseline_problems += [
        f"{no}: baseline event but not a customer then" for no in baseline if no not in wanted
    ]
    # exactly one run result per request
    per_request = Counter(r["requestId"] for r in results)
    ids_wanted = list(request_ids)
    verdict.runs = sum(1 for r in ids_wanted if per_request[r] >= 1)
    verdict.results_missing = [r for r in ids_wanted if per_request[r] == 0]
    verdict.results_duplicated = [r for r, n in per_request.items() if n > 1]
    # the compacted snapshot equals the API's data, customer by customer
    prefix = f"{client_no}/".encode()
    # a removal marker (`{"state": null, "rev": n}`) or a tombstone: the customer is absent
    values = {
        k[len(prefix) :].decode(): json.loads(v) for k, v in snapshot.items() if k.startswith(prefix) and v
    }
    stored = {no: value["state"] for no, value in values.items() if value.get("state") is not None}
    now = {str(c["customerNo"]): tracked_state(c, rules) for c in current_customers}
    for no in sorted(set(now) - set(stored)):
        verdict.snapshot_mismatches.append(f"{no} exists in the API but not in the snapshot")
    for no in sorted(set(stored) - set(now)):
        verdict.snapshot_mismatches.append(f"{no} is in the snapshot but not in the API (wrong removal?)")
    for no in sorted(set(now) & set(stored)):
        if stored[no] != now[no]:
            verdict.snapshot_mismatches.append(f"{no}: snapshot {stored[no]} != API {now[no]}")
    return verdict


async def partition_count(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return (await partition_counts(admin, [topic]))[topic]
    finally:
        await admin.close()


async def read_snapshot(bootstrap: str, prefix: str, timeout: float = 120.0) -> dict[bytes, bytes | None]:
    """The snapshot changelog (`{prefix}.snapshot`), last value per key (None: tombstone), read with
    read_committed from the beginning to the end offsets of every partition."""
    topic = f"{prefix}.snapshot"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(await partition_count(bootstrap, topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        state: dict[bytes, bytes | None] = {}
        deadline = time.monotonic() + timeout
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout}s")
            batch = await consumer.getmany(*tps, timeout_ms=1000, max_records=50_000)
            for records in batch.values():
                for r in records:
                    state[r.key] = r.value
        return state
    finally:
        await consumer.stop()
