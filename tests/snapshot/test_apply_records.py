"""Applying changelog records to the cache: the batch's rows are built without `parse_key` and
`is_removed` per record (a key's client number is parsed once per prefix), and must give exactly
the cache a record-by-record reading of the changelog gives: last record of a key wins (within and
across batches), tombstones delete, removal markers stay as removed rows, run metadata goes to its
own table, several clients per batch."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from service.snapshot.store import SnapshotStore
from service.sync.records import encode_removed, encode_state, is_removed, meta_key, parse_key

Record = tuple[bytes, bytes | None]


def _expected(partition: int, batches: Sequence[Sequence[Record]]) -> tuple[set[tuple[object, ...]], ...]:
    """The cache's rows after the batches, read one record at a time with `parse_key`."""
    customers: dict[tuple[int, str], tuple[object, ...]] = {}
    meta: dict[int, tuple[object, ...]] = {}
    for batch in batches:
        for key, value in batch:
            client_no, customer_no = parse_key(key)
            if customer_no is None:
                if value is None:
                    meta.pop(client_no, None)
                else:
                    meta[client_no] = (client_no, partition, value)
            elif value is None:
                customers.pop((client_no, customer_no), None)
            else:
                row = (client_no, customer_no, partition, value, int(is_removed(value)))
                customers[(client_no, customer_no)] = row
    return set(customers.values()), set(meta.values())


def _actual(db: sqlite3.Connection) -> tuple[set[tuple[object, ...]], ...]:
    customers = set(db.execute("SELECT client_no, customer_no, partition, value, removed FROM customers"))
    meta = set(db.execute("SELECT client_no, partition, value FROM client_meta"))
    return customers, meta


def _state(i: int, rev: int = 1) -> bytes:
    return encode_state({"name": f"Kund {i} Åkeri", "balance": i / 7}, rev)


BATCHES: list[list[Record]] = [
    [
        (b"7/b", _state(1)),
        (b"7/a", _state(2)),
        (b"12/a", _state(3)),  # another client in the same batch
        (b"7/b", _state(1, 2)),  # a duplicate within the batch: the last one wins
        (meta_key(7), b'{"lastCompletedRunStartedAt": null, "requestId": "r1"}'),
        (b"7/\xc3\xa5-\xe2\x82\xac", _state(4)),  # a customer number beyond ASCII
        (b"7/c", encode_removed(5)),  # a removal marker: a removed row
        (b"7/d", None),  # a tombstone of a key never seen
    ],
    [
        (b"7/a", None),  # a tombstone of an earlier batch's key
        (b"12/a", encode_removed(4)),  # marker over an earlier batch's customer
        (b"7/c", _state(6, 6)),  # re-created after its marker
        (b"7/e", None),
        (b"7/e", _state(7)),  # a tombstone then the key's re-creation in one batch
        (b"7/f", _state(8)),
        (b"7/f", None),  # created then deleted in one batch
        (meta_key(7), b'{"lastCompletedRunStartedAt": "2026-01-01T00:00:00+00:00", "requestId": "r2"}'),
        (meta_key(12), b'{"lastCompletedRunStartedAt": null, "requestId": "r3"}'),
    ],
    [
        (meta_key(12), None),  # a meta tombstone
        (b"7/b", _state(1, 3)),  # an update of an earlier batch's customer
        (b"0012/g", _state(9)),  # the same client spelled with another prefix
    ],
]


def test_the_cache_holds_what_the_changelog_read_record_by_record_holds(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "s.sqlite")
    for i, batch in enumerate(BATCHES):
        assert store.apply(3, batch, 10 * (i + 1)) == len(batch)
    assert _actual(store.db) == _expected(3, BATCHES)
    assert store.checkpoint(3) == 30
    assert [no for no, _ in sorted(store.get_states(7, ["a", "b", "c", "e", "f"]).items())] == ["b", "c", "e"]
    assert store.get_states(12, ["a", "g"]).keys() == {"g"}
    assert store.get_meta(12) is None and store.get_meta(7).request_id == "r2"  # type: ignore[union-attr]


def test_the_restore_writer_and_the_store_build_the_same_cache(tmp_path: Path) -> None:
    direct = SnapshotStore(tmp_path / "direct.sqlite")
    restored = SnapshotStore(tmp_path / "restored.sqlite")
    writer = restored.restore_writer()
    for i, batch in enumerate(BATCHES):
        direct.apply(0, iter(batch), i + 1)  # a run hands over an iterator
        writer.submit(0, batch, i + 1).result()
    writer.close().result()
    assert _actual(restored.db) == _actual(direct.db) == _expected(0, BATCHES)


def test_values_are_stored_as_blobs_and_removal_flags_as_integers(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "s.sqlite")
    store.apply(0, [(b"7/a", _state(1)), (b"7/b", encode_removed(2))], 2)
    kinds = set(store.db.execute("SELECT typeof(value), typeof(removed), typeof(customer_no) FROM customers"))
    assert kinds == {("blob", "integer", "text")}
    raw = store.get_raw_states(7, ["a"])["a"]
    assert type(raw) is bytes and raw == _state(1)


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (b"x/a", "invalid literal"),
        (b"7/a#meta", "invalid literal"),
        (b"7/\xff", "utf-8"),
        (b"nokey", "invalid literal"),
    ],
)
def test_a_malformed_key_fails_the_batch_and_writes_nothing(tmp_path: Path, key: bytes, error: str) -> None:
    store = SnapshotStore(tmp_path / "s.sqlite")
    store.apply(0, [(b"7/a", _state(1))], 1)
    with pytest.raises(ValueError, match=error):  # UnicodeDecodeError is a ValueError
        store.apply(0, [(b"7/z", _state(2)), (key, _state(3))], 5)
    assert store.checkpoint(0) == 1
    assert {no for _, no, *_ in _actual(store.db)[0]} == {"a"}


def test_the_restore_writer_process_builds_the_same_cache_as_the_store(tmp_path: Path) -> None:
    direct = SnapshotStore(tmp_path / "direct.sqlite")
    restored = SnapshotStore(tmp_path / "restored.sqlite")
    writer = restored.restore_writer(process=True)
    assert writer.child is not None and writer.db is None, "a thread writer was made"
    futures = []
    for i, batch in enumerate(BATCHES):
        direct.apply(0, iter(batch), i + 1)
        futures.append(writer.submit(0, batch, i + 1))  # queued: the next batch waits in the pipe
    assert [f.result() for f in futures] == [len(batch) for batch in BATCHES]
    writer.close().result()
    assert _actual(restored.db) == _actual(direct.db) == _expected(0, BATCHES)
    assert restored.checkpoint(0) == len(BATCHES)


def _big_batch(n: int) -> list[Record]:
    """`n` customers of two clients in shuffled order, with tombstones, markers and metadata spread
    through it: a batch of several of the writer's chunks of upserts."""
    batch: list[Record] = []
    for i in range(n):
        client = 7 if i % 3 else 12
        batch.append((f"{client}/k{(i * 7919) % n:06d}".encode(), _state(i)))
        if i % 97 == 0:
            batch.append((f"{client}/k{(i * 7919) % n:06d}".encode(), encode_removed(i)))
        if i % 101 == 0:
            batch.append((f"7/gone{i}".encode(), None))
        if i % 1_201 == 0:
            batch.append(
                (meta_key(client), f'{{"lastCompletedRunStartedAt": null, "requestId": "r{i}"}}'.encode())
            )
    return batch


def test_a_batch_of_several_chunks_gives_the_cache_record_by_record_reading_gives(tmp_path: Path) -> None:
    first, second = _big_batch(3_500), [(f"7/k{i:06d}".encode(), None) for i in range(0, 3_500, 5)]
    store = SnapshotStore(tmp_path / "s.sqlite")
    store.apply(1, first, 10)
    store.apply(1, second, 20)
    customers, meta = _actual(store.db)
    assert (customers, meta) == _expected(1, [first, second])
    assert len(customers) > 2_000 and any(row[4] == 1 for row in customers) and meta


def test_a_malformed_key_in_a_late_chunk_writes_nothing_of_the_batch(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "s.sqlite")
    store.apply(0, [(b"7/a", _state(1))], 1)
    batch = [*_big_batch(3_000), (b"7/zz\xff", _state(2))]  # sorts after every other key: the last chunk
    with pytest.raises(ValueError, match="utf-8"):
        store.apply(0, batch, 5)
    assert store.checkpoint(0) == 1
    assert {no for _, no, *_ in _actual(store.db)[0]} == {"a"}
