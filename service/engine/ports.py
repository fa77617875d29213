"""The ports of the sync engine: what a run needs from the outside, as Protocols.

The engine talks to three adapters and knows them only by these shapes:

- `CustomerSource`: the customers of a client (`service.amili.AmiliClient`);
- `SnapshotCache`: the last snapshot of each customer, current up to a changelog checkpoint
  (`service.snapshot.SnapshotStore`);
- `Publisher`: one Kafka transaction at a time on a partition's transactional producer
  (`service.kafka.publisher.PartitionPublisher`).

Tests drive the engine through in-memory fakes of the same shapes (`tests/engine/fakes.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from service.amili.models import Customer, NamePrefixes, Page, ReadReport
from service.sync.records import ClientMeta, StoredState

__all__ = [
    "Committed",
    "CustomerSource",
    "CustomerStream",
    "OutRecord",
    "Publisher",
    "RequestPosition",
    "SnapshotCache",
]


@dataclass
class OutRecord:
    """One Kafka record of a transaction."""

    topic: str
    key: bytes  # None only in a DLQ copy of a keyless request
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None


@dataclass
class Committed:
    """Offsets (by topic, partition) of the records of a committed transaction."""

    last_offsets: dict[tuple[str, int], int]


@dataclass(frozen=True)
class RequestPosition:
    """Where a request came from: its offset is committed in the run's last transaction."""

    topic: str
    partition: int
    offset: int
    group_id: str


class CustomerStream(Protocol):
    """One read of a client's customers, page by page; `report` grows as pages arrive."""

    @property
    def report(self) -> ReadReport: ...

    def __aiter__(self) -> AsyncIterator[Page]: ...

    async def aclose(self) -> None: ...

    def name_prefixes(self) -> NamePrefixes:
        """What the read teaches the next read of the client (empty until it ended without error)."""
        ...


# The port repeats AmiliClient.read's signature on purpose: the engine depends on this, not the client.
class CustomerSource(Protocol):
    def read(
        self,
        client_no: int,
        filters: Mapping[str, str] | None = None,
        *,
        known_names: Iterable[str | None] = (),
        name_prefixes: NamePrefixes | None = None,
    ) -> CustomerStream:
        """`known_names`: names the caller already knows (the snapshot's), for the slicing to learn
        which characters follow a dense name prefix; read once: a collection in any order, any other
        iterable folded and in code point order (as `SnapshotCache.names` streams them).
        `name_prefixes`: what an earlier read of the client left (`CustomerStream.name_prefixes`),
        taught at once instead of `known_names`, which is then not read."""
        ...

    async def get_customer(self, client_no: int, customer_no: str) -> Customer | None:
        """The customer, or None when the API says it does not exist."""
        ...


class SnapshotCache(Protocol):
    def get_meta(self, client_no: int) -> ClientMeta | None: ...

    def get_raw_states(
        self, client_no: int, customer_nos: Sequence[str], *, mark_seen: bool = False
    ) -> dict[str, bytes]:
        """Stored values (`service.sync.records.encode_state` bytes) of the cached ones; with
        `mark_seen` they count as seen by the client's current run."""
        ...

    def reset_seen(self, client_no: int) -> None: ...

    def drop_seen(self, client_no: int) -> None: ...

    def unseen(self, client_no: int) -> Iterator[tuple[str, StoredState]]:
        """Customers of the snapshot that the current run did not see."""
        ...

    def count(self, client_no: int) -> int: ...

    def names(self, client_no: int) -> Iterator[str]:
        """The names in the client's stored states, folded (`str.casefold`), in code point order,
        streamed (the slicing keeps only what it can use of them)."""
        ...

    def name_prefixes(self, client_no: int) -> bytes | None:
        """What the client's last complete read left for the next (`NamePrefixes.to_bytes`), if any."""
        ...

    def save_name_prefixes(self, client_no: int, partition: int, value: bytes) -> None: ...

    def apply(
        self, partition: int, records: Iterable[tuple[bytes, bytes | None]], next_offset: int | None
    ) -> int:
        """Write committed changelog records and move the partition's checkpoint, atomically."""
        ...


class Publisher(Protocol):
    async def commit(self, records: list[OutRecord], consumed: RequestPosition | None = None) -> Committed:
        """Send `records` (and the consumed request's next offset) in one transaction."""
        ...
