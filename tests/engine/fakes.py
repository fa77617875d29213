"""In-memory fakes of the engine's ports (`service.engine.ports`): a customer source, a snapshot
cache and a transactional publisher, each with just enough behaviour to drive every path of a run
in milliseconds. The broker suites (tests/e2e, tests/faults) run the same engine on the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.amili.models import Customer, NamePrefixes, Page, ReadReport
from service.amili.parsing import parse_customer
from service.engine.ports import Committed, OutRecord, RequestPosition
from service.sync.diff import StoredState
from service.sync.records import ClientMeta, decode_state, is_removed, parse_key


def customer(no: str | int, balance: float = 100.0, city: str = "Oslo", **extra: Any) -> Customer:
    return parse_customer(
        orjson.dumps(
            {
                "customerNo": str(no),
                "accountNo": int(no) if str(no).isdigit() else 1,
                "balanceTotal": balance,
                "currency": "NOK",
                "postalAddress": {"addressLine1": f"Gate {no}", "postalCode": "0150", "cityName": city},
                "registrationStatusCode": "A",
                **extra,
            }
        )
    )


class FakeStream:
    def __init__(
        self,
        pages: list[list[Customer]],
        report: ReadReport,
        gate: asyncio.Event | None,
        learned: NamePrefixes | None = None,
    ) -> None:
        self._pages = pages
        self._report = report
        self._gate = gate
        self._learned = learned or NamePrefixes({})
        self._ended = False
        self.closed = False

    @property
    def report(self) -> ReadReport:
        return self._report

    async def _iterate(self) -> AsyncIterator[Page]:
        for i, customers in enumerate(self._pages):
            if self._gate is not None and i > 0:
                await self._gate.wait()  # a test holds the read here (cancellation mid-run)
            self._report.pages_read += 1
            self._report.customers += len(customers)
            yield Page(slice_filters={}, page_no=i + 1, total_pages=len(self._pages), customers=customers)
        self._ended = True

    def __aiter__(self) -> AsyncIterator[Page]:
        return self._iterate()

    async def aclose(self) -> None:
        self.closed = True

    def name_prefixes(self) -> NamePrefixes:
        """Like the reader: what it learned, once it ended."""
        return self._learned if self._ended else NamePrefixes({})


@dataclass
class FakeSource:
    """The API: `pages` is what the list endpoint returns; `existing` what GET-one finds (by
    default every customer on the pages)."""

    pages: list[list[Customer]] = field(default_factory=list)
    existing: dict[str, Customer] | None = None
    coverage: str = "proven"
    gate: asyncio.Event | None = None
    gets: list[str] = field(default_factory=list)
    streams: list[FakeStream] = field(default_factory=list)
    known_names: list[list[str]] = field(default_factory=list)  # what each read was taught
    taught_prefixes: list[NamePrefixes | None] = field(default_factory=list)  # and its name prefixes
    learned: NamePrefixes | None = None  # what each read's stream leaves for the next

    # The CustomerSource port's signature, repeated as a fake must.
    def read(
        self,
        client_no: int,
        filters: Mapping[str, str] | None = None,
        *,
        known_names: Iterable[str | None] = (),
        name_prefixes: NamePrefixes | None = None,
    ) -> FakeStream:
        self.known_names.append(sorted(n for n in known_names if n))
        self.taught_prefixes.append(name_prefixes)
        report = ReadReport(client_no=client_no, filters=dict(filters or {}), slices=1)
        report.coverage = self.coverage  # type: ignore[assignment]
        report.complete = self.coverage != "incomplete"
        stream = FakeStream(self.pages, report, self.gate, self.learned)
        self.streams.append(stream)
        return stream

    async def get_customer(self, client_no: int, customer_no: str) -> Customer | None:
        self.gets.append(customer_no)
        existing = self.existing
        if existing is None:
            existing = {c.customerNo: c for page in self.pages for c in page}
        return existing.get(customer_no)


class FakeCache:
    """A dict per client of stored values, run metadata, seen-marks and checkpoints."""

    def __init__(self) -> None:
        self.values: dict[tuple[int, str], bytes] = {}
        self.meta: dict[int, bytes] = {}
        self.checkpoints: dict[int, int] = {}
        self._seen: dict[int, set[str]] = {}
        self._present: dict[int, set[str]] = {}
        self.prefixes: dict[int, bytes] = {}

    def get_meta(self, client_no: int) -> ClientMeta | None:
        raw = self.meta.get(client_no)
        return ClientMeta.from_bytes(raw) if raw else None

    def get_raw_states(
        self, client_no: int, customer_nos: Sequence[str], *, mark_seen: bool = False
    ) -> dict[str, bytes]:
        found = {no: self.values[(client_no, no)] for no in customer_nos if (client_no, no) in self.values}
        if mark_seen:
            self._seen.setdefault(client_no, set()).update(found)
        return found

    def reset_seen(self, client_no: int) -> None:
        # like the real store: only customers cached when the run started can be unseen; those the
        # run adds itself are its own new customers
        self._seen[client_no] = set()
        self._present[client_no] = {
            no for (c, no), raw in self.values.items() if c == client_no and not is_removed(raw)
        }

    def drop_seen(self, client_no: int) -> None:
        self._seen.pop(client_no, None)
        self._present.pop(client_no, None)

    def unseen(self, client_no: int) -> Iterator[tuple[str, StoredState]]:
        seen, present = self._seen.get(client_no, set()), self._present.get(client_no, set())
        for (c, no), raw in sorted(self.values.items()):
            if c == client_no and no in present and no not in seen and not is_removed(raw):
                yield no, decode_state(raw)

    def count(self, client_no: int) -> int:
        return sum(1 for (c, _), raw in self.values.items() if c == client_no and not is_removed(raw))

    def names(self, client_no: int) -> Iterator[str]:
        """Folded and in code point order, as the port promises."""
        folded = []
        for (c, _), raw in self.values.items():
            if c == client_no and not is_removed(raw):
                name = decode_state(raw).state.get("name")
                if name:
                    folded.append(name.casefold())
        yield from sorted(folded)

    def name_prefixes(self, client_no: int) -> bytes | None:
        return self.prefixes.get(client_no)

    def save_name_prefixes(self, client_no: int, partition: int, value: bytes) -> None:
        self.prefixes[client_no] = value

    # Walks the records like SnapshotStore.apply (kept): a fake mirrors the port it stands in for.
    def apply(
        self, partition: int, records: Iterable[tuple[bytes, bytes | None]], next_offset: int | None
    ) -> int:
        n = 0
        for key, value in records:
            n += 1
            client_no, customer_no = parse_key(key)
            if customer_no is None:
                if value is None:
                    self.meta.pop(client_no, None)
                else:
                    self.meta[client_no] = value
            elif value is None:
                self.values.pop((client_no, customer_no), None)
            else:
                self.values[(client_no, customer_no)] = value
        if next_offset is not None:
            self.checkpoints[partition] = max(self.checkpoints.get(partition, 0), next_offset)
        return n

    def state(self, client_no: int, customer_no: str) -> StoredState | None:
        raw = self.values.get((client_no, customer_no))
        return decode_state(raw) if raw and not is_removed(raw) else None


class CommitFailed(Exception):
    pass


@dataclass
class FakePublisher:
    """Transactions as lists of records; `fail_at` makes those commits (0-based) raise instead."""

    fail_at: set[int] = field(default_factory=set)
    committed: list[tuple[list[OutRecord], RequestPosition | None]] = field(default_factory=list)
    attempts: int = 0
    _offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    async def commit(self, records: list[OutRecord], consumed: RequestPosition | None = None) -> Committed:
        attempt, self.attempts = self.attempts, self.attempts + 1
        await asyncio.sleep(0)
        if attempt in self.fail_at:
            raise CommitFailed(f"commit {attempt} failed")
        last: dict[tuple[str, int], int] = {}
        for r in records:
            k = (r.topic, r.partition if r.partition is not None else 0)
            last[k] = self._offsets[k] = self._offsets.get(k, -1) + 1
        self.committed.append((records, consumed))
        return Committed(last)

    def records(self, topic_suffix: str) -> list[OutRecord]:
        return [r for records, _ in self.committed for r in records if r.topic.endswith(topic_suffix)]

    def event_types(self) -> list[str]:
        return [
            dict(r.headers)["ce_type"].decode()
            for records, _ in self.committed
            for r in records
            if any(k == "ce_type" for k, _ in r.headers)
        ]
