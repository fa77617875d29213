"""The exactly-once oracle: what a read_committed consumer saw, judged against what the sandbox
says happened. Shared by the end-to-end tests, the fault suite and the benchmark.

`check` (pure) fills a `Verdict` with

- lost: a true change (one the sandbox reported) without its event;
- duplicated: a true change with more than one event (or one event id seen twice);
- unexpected: an event no change explains (a wrong removal, a spurious change);
- baseline problems: a customer present at the first run without exactly one baseline event;
- missing / duplicated results: a request without exactly one run result;
- snapshot mismatches: the compacted snapshot (last value per key) differing from the API's data.

A change is identified by (event type, customerNo, new value of the group), so a customer that
changes twice in two rounds is two changes, and a redelivered run that re-publishes is a duplicate.
Types and group fields come from the event-kind registry (`service/sync/kinds.py`), so a new kind
is judged without touching this module.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.sync import kinds
from service.sync.state import TrackingRules, normalize, tracked_state

# the sandbox reports a deleted customer as kind "deleted"; the worker publishes `removed`
SANDBOX_KIND_ALIASES = {"deleted": kinds.REMOVED}
KIND_TO_TYPE = {
    **{k.name: k.ce_type for k in kinds.BUILTIN.values()},
    **{alias: kinds.kind(name).ce_type for alias, name in SANDBOX_KIND_ALIASES.items()},
}
BASELINE_TYPE = kinds.BASELINE_KIND.ce_type
Identity = tuple[str, str, str]


def configured_kinds(groups: Mapping[str, Sequence[str]] | None) -> list[kinds.EventKind]:
    """Every kind a worker tracking `groups` publishes (None: the default groups)."""
    return kinds.all_kinds(kinds.default_groups() if groups is None else groups)


def change_kind(sandbox_kind: str, groups: Mapping[str, Sequence[str]] | None = None) -> kinds.EventKind:
    name = SANDBOX_KIND_ALIASES.get(sandbox_kind, sandbox_kind)
    return next((k for k in configured_kinds(groups) if k.name == name), None) or kinds.kind(name)


def group_value(kind: kinds.EventKind, after: Mapping[str, Any] | None) -> object:
    """The new value of a group kind's fields (one field: its value, several: a list); None for a
    lifecycle kind. Amounts compare as floats (the client parses 664 as 664.0)."""
    if not kind.is_group:
        return None
    after = after or {}
    values = [_comparable(normalize(after.get(name))) for name in kind.fields]
    return values[0] if len(values) == 1 else values


def _comparable(value: object) -> object:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def change_identity(change: Mapping[str, Any], groups: Mapping[str, Sequence[str]] | None = None) -> Identity:
    """(event type, customerNo, new group value) of a change reported by the sandbox."""
    kind = change_kind(change["kind"], groups)
    value = group_value(kind, change["after"])
    return kind.ce_type, str(change["customerNo"]), json.dumps(value, sort_keys=True)


def event_identity(event: Mapping[str, Any], groups: Mapping[str, Sequence[str]] | None = None) -> Identity:
    """The same identity for a published event (its CloudEvents `data` plus `type`)."""
    etype = event["type"]
    kind = next((k for k in configured_kinds(groups) if k.ce_type == etype), None)
    value = group_value(kind, event["after"]) if kind is not None else None
    return etype, str(event["customerNo"]), json.dumps(value, sort_keys=True)


def expected_counts(changes: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """The run result's `counts` (events per kind) that these sandbox changes call for."""
    return Counter(change_kind(c["kind"]).name for c in changes)


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
    expected = Counter(change_identity(c, rules.groups) for c in changes)
    got = Counter(event_identity(e, rules.groups) for e in events if e["type"] != BASELINE_TYPE)
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
