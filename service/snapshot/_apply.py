"""Changelog records applied to the cache's tables: the write of `SnapshotStore.apply` and of a
restore's batches (in the worker, its restore thread, or the restore's writer process).

Kept apart from `store.py` so that the writer process imports this, `sqlite3` and the record
encoding (`service.sync.records`) and nothing heavier: a child that imported the whole service
took ~1 s of CPU and ~50 MB more to start (docs/performance.md, 4.11).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sized

from service.sync.records import META_SEPARATOR, is_removed, parse_key

__all__ = ["apply_records", "connect_writer"]


def apply_records(
    db: sqlite3.Connection,
    partition: int,
    records: Iterable[tuple[bytes, bytes | None]],
    next_offset: int | None,
) -> int:
    """`SnapshotStore.apply` on the connection `db`: returns the number of records."""
    batch = records if isinstance(records, Sized) else list(records)
    latest = dict(batch)  # the last record of a key wins, as compaction keeps it
    rows = _Rows(partition)
    db.execute("BEGIN")
    try:
        # in key order: the batch's inserts walk the key index from left to right, once. The upserts
        # are made a chunk at a time; the rare other rows are collected on the way and written
        # after them (their keys are distinct from the upserts').
        keys = sorted(latest)
        for at in range(0, len(keys), _ROWS_AT_ONCE):
            db.executemany(
                "INSERT INTO customers VALUES (?, ?, ?, ?, ?) ON CONFLICT (client_no, customer_no) "
                "DO UPDATE SET partition = excluded.partition, value = excluded.value, "
                "removed = excluded.removed",
                list(rows.upserts(keys[at : at + _ROWS_AT_ONCE], latest)),
            )
        if rows.customers_del:
            db.executemany(
                "DELETE FROM customers WHERE client_no = ? AND customer_no = ?", rows.customers_del
            )
        if rows.meta_up:
            db.executemany("INSERT OR REPLACE INTO client_meta VALUES (?, ?, ?)", rows.meta_up)
        if rows.meta_del:
            db.executemany("DELETE FROM client_meta WHERE client_no = ?", rows.meta_del)
        if next_offset is not None:
            db.execute(
                "INSERT INTO checkpoints VALUES (?, ?, ?) ON CONFLICT(partition) DO UPDATE SET "
                "next_offset = max(next_offset, excluded.next_offset), advanced_at = excluded.advanced_at",
                (partition, next_offset, time.time()),
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(batch)


_META_SUFFIX = META_SEPARATOR.encode()

# Upserts are bound in chunks of this many: a batch's rows all at once held a copy of each value
# (~4 MB for 10,000 records) in the writer process; one row at a time, as SQLite binds them, took
# ~5 % more of the writer's CPU, chunks of 1,000 none (docs/performance.md, 4.16).
_ROWS_AT_ONCE = 1000


class _Rows:
    """The SQL parameters of a batch's records, sorted by statement: the customers' upserts as a
    stream (`upserts`), the rest collected in lists while it runs.

    This runs once per record of a restore (a million for a big client), so it avoids per-record
    Python work that `parse_key` and `is_removed` would repeat: a key's client number is parsed once
    per distinct `{clientNo}/` prefix (a batch is mostly one client's), its customer number is the
    rest of the key. The value is bound as a `bytearray` and the removal flag as an `int`: Python's
    sqlite3 binds those exact types directly, where `bytes` and `bool` go through its adaptation
    protocol (a lookup per parameter). Keys that are not `{int}/{text}` (run metadata, anything
    else) take `parse_key`, with its errors. Measured on the restore bench's 1,011,000 records: the
    writer alone 13.2 -> 9.4 CPU s, the whole restore 18.7 -> 15.3 CPU s (docs/performance.md, 4.10).
    """

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.customers_del: list[tuple[int, str]] = []
        self.meta_up: list[tuple[int, int, bytes]] = []
        self.meta_del: list[tuple[int]] = []
        self._clients: dict[bytes, int] = {}

    def upserts(
        self, keys: Iterable[bytes], values: dict[bytes, bytes | None]
    ) -> Iterator[tuple[int, str, int, bytearray, int]]:
        """The upserts of `keys` in their order; their deletions and metadata go to the lists."""
        partition = self.partition
        for key in keys:
            head, slash, tail = key.partition(b"/")
            client_no = self._clients.get(head) if slash else None
            value = values[key]
            if client_no is None or key.endswith(_META_SUFFIX):
                parsed, customer_no = parse_key(key)
                if customer_no is None:
                    self._add_meta(parsed, value)
                    continue
                client_no = self._clients[head] = parsed
            if value is None:
                self.customers_del.append((client_no, tail.decode()))
            else:
                removed = 1 if is_removed(value) else 0
                yield client_no, tail.decode(), partition, bytearray(value), removed

    def _add_meta(self, client_no: int, value: bytes | None) -> None:
        if value is None:
            self.meta_del.append((client_no,))
        else:
            self.meta_up.append((client_no, self.partition, value))


def connect_writer(path: str, *, cache_kb: int) -> sqlite3.Connection:
    """A restore writer's connection to the cache: no syncing (the `RestoreWriter`'s boot-id marker
    guards it), temporary data in memory, a page cache of `cache_kb`; usable from the thread that
    writes (busy timeout: SQLite serialises its transactions with the worker's own connection)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60.0)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute(f"PRAGMA cache_size=-{int(cache_kb)}")
    return db
