"""The local SQLite cache of the snapshot changelog for the partitions this worker owns.

Rows and the changelog checkpoint (the next offset to read, per partition) are written in one
SQLite transaction, so after any crash the cache is exactly "the changelog up to the checkpoint"
and a restore from the checkpoint brings it current. A missing or corrupt file is rebuilt from the
changelog (every checkpoint starts at 0 again).

A removed customer is a row holding its removal marker (`removed = 1`): it keeps the revision for a
re-created customer and is neither counted nor a removal candidate. Each checkpoint also records
when it was last advanced, which tells whether tombstones written since may have been compacted
away (`service/snapshot/verify.py`).

The records themselves (keys, values, run metadata) are encoded in `service/sync/records.py`.
"""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from service.logs import get_logger
from service.snapshot._apply import apply_records, connect_writer
from service.snapshot._writer_process import WriterProcess
from service.sync.records import (
    META_SEPARATOR,
    ClientMeta,
    StoredState,
    decode_state,
    encode_state,
    is_removed,
    meta_key,
    parse_key,
    stores_state,
)

__all__ = [
    "META_SEPARATOR",
    "ClientMeta",
    "RestoreWriter",
    "SnapshotStore",
    "decode_state",
    "encode_state",
    "meta_key",
    "parse_key",
    "stores_state",
]

log = get_logger(__name__)

# Version of the file layout (PRAGMA user_version). A cache file of another version is deleted and
# rebuilt from the changelog, like a corrupt one.
SCHEMA_VERSION = 3
# The page size of a new cache file. Random inserts into the key index of a million customers
# (a first sync, a restore) cost ~35 % less SQLite CPU with 16 KB pages than with SQLite's default
# 4 KB: a quarter as many index pages to split, read back and write to the log; a restore's writer
# process 8.7-9.4 -> 7.7 CPU s (docs/performance.md, 4.19).
PAGE_SIZE = 16384
# Customers live in a rowid table with a unique index on the key, not in a WITHOUT ROWID table keyed
# by it: keys arrive in random order (pages of name slices; the changelog in commit order), and
# random inserts of ~300-byte rows into a clustered key split and rewrite far more pages than random
# inserts into a small index (docs/performance.md: 1,000,000 random inserts take ~4 s instead of ~15 s).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    client_no INTEGER NOT NULL,
    customer_no TEXT NOT NULL,
    partition INTEGER NOT NULL,
    value BLOB NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS customers_key ON customers (client_no, customer_no);
CREATE TABLE IF NOT EXISTS client_meta (
    client_no INTEGER PRIMARY KEY,
    partition INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS name_prefixes (
    client_no INTEGER PRIMARY KEY,
    partition INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    partition INTEGER PRIMARY KEY,
    next_offset INTEGER NOT NULL,
    advanced_at REAL NOT NULL
);
"""


# Lookups by customerNo (`get_raw_states`) ask for up to LOOKUP_CHUNK keys per statement, and always
# for a power of two of them (the rest NULL, which matches nothing): the sqlite3 module caches each
# distinct statement text (128 of them), and a prepared IN list of a few hundred keys takes ~80 KB of
# SQLite's memory. With a statement per chunk length, the cache filled with ~128 of them over a
# long run (a run's transactions end in chunks of every length): SQLite's memory grew from 17.9 MB
# at 100,000 customers to 22.5 MB at 1,000,000; with 10 widths it stays put (docs/performance.md).
LOOKUP_CHUNK = 512
_LOOKUP_SQL = {
    width: "SELECT rowid, customer_no, value FROM customers WHERE client_no = ? AND customer_no IN "  # noqa: S608
    f"({','.join('?' * width)})"
    for width in (1 << bits for bits in range(LOOKUP_CHUNK.bit_length()))
}


_PRESENT_SQL = {
    width: "SELECT rowid, customer_no FROM customers WHERE client_no = ? AND removed = 0 AND rowid IN "  # noqa: S608
    f"({','.join('?' * width)})"
    for width in _LOOKUP_SQL
}


def lookup_width(n: int) -> int:
    """The statement width for `n` keys (1 <= n <= LOOKUP_CHUNK): the smallest power of two >= n."""
    return 1 << (n - 1).bit_length()


# The cache holds customer data (names, addresses, balances): only the worker's user may read it.
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(folder: Path) -> None:
    """Create `folder` (and parents) and make it 0700, unless it belongs to someone else (a mounted
    volume's root: its owner decides)."""
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    if folder.stat().st_uid == os.getuid():
        folder.chmod(FOLDER_MODE)


def private_file(path: Path) -> None:
    """Create `path` if missing, and make it and its SQLite companions 0600."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    for suffix in ("", "-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            companion.chmod(FILE_MODE)


def _casefold(value: object) -> str | None:
    """SQL `casefold(x)`: Python's full Unicode case folding of a text, NULL otherwise."""
    return value.casefold() if isinstance(value, str) else None


class SnapshotStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        private_folder(path.parent)
        self.db = self._open()
        self._seen: dict[int, bytearray] = {}
        self._seen_above: dict[int, int] = {}
        self._writer: RestoreWriter | None = None

    def _open(self) -> sqlite3.Connection:
        marker = restoring_marker(self.path)
        for left in sorted(marker.parent.glob(f"{marker.name}-*")):
            if left.read_text() != boot_id():
                # a restore was writing without syncing when the machine stopped: the file may have
                # lost or torn writes that no check finds, so it is rebuilt from the changelog
                log.warning("snapshot cache was being restored when the machine stopped, rebuilding it")
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            left.unlink()  # same boot: every write the worker made is in the OS's hands
        try:
            db = self._connect()
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {row}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if version != SCHEMA_VERSION and tables:
                db.close()
                raise sqlite3.DatabaseError(
                    f"file layout version {version}, this version uses {SCHEMA_VERSION}"
                )
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return db
        except sqlite3.DatabaseError as exc:
            log.warning(
                "snapshot cache unreadable, rebuilding from the changelog",
                path=str(self.path),
                error=str(exc),
            )
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            db = self._connect()
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return db

    def _connect(self) -> sqlite3.Connection:
        private_file(self.path)  # SQLite gives the -wal and -shm files the mode of the database file
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # a new file's page size (an existing file keeps its own): 16 KB pages
        db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA temp_store=MEMORY")
        # 16 MB page cache: the index of a million customers does not fit in 32 MB either, and the
        # difference is ~16 MB of the worker's RSS (docs/performance.md); misses are reads from the
        # OS page cache
        db.execute("PRAGMA cache_size=-16384")
        return db

    def close(self) -> None:
        self.db.close()

    # --- checkpoints -----------------------------------------------------------------------------

    def checkpoint(self, partition: int) -> int:
        row = self.db.execute(
            "SELECT next_offset FROM checkpoints WHERE partition = ?", (partition,)
        ).fetchone()
        return int(row[0]) if row else 0

    def checkpoint_time(self, partition: int) -> float | None:
        """When the partition's checkpoint last moved (epoch seconds), None without a checkpoint."""
        row = self.db.execute(
            "SELECT advanced_at FROM checkpoints WHERE partition = ?", (partition,)
        ).fetchone()
        return float(row[0]) if row else None

    def touch_checkpoint(self, partition: int) -> None:
        """The cache was found current with the changelog's end: its checkpoint counts as fresh."""
        self.db.execute(
            "UPDATE checkpoints SET advanced_at = ? WHERE partition = ?", (time.time(), partition)
        )

    def wipe_partition(self, partition: int) -> None:
        """Forget everything of a partition (rows, run metadata, name prefixes, checkpoint): restored
        from offset 0."""
        db = self.db
        db.execute("BEGIN")
        try:
            db.execute("DELETE FROM customers WHERE partition = ?", (partition,))
            db.execute("DELETE FROM client_meta WHERE partition = ?", (partition,))
            db.execute("DELETE FROM name_prefixes WHERE partition = ?", (partition,))
            db.execute("DELETE FROM checkpoints WHERE partition = ?", (partition,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- reads ---------------------------------------------------------------------------------

    def get_raw_states(
        self, client_no: int, customer_nos: Sequence[str], *, mark_seen: bool = False
    ) -> dict[str, bytes]:
        """The stored values (`encode_state` bytes) of those customers that are in the cache; with
        `mark_seen`, they count as seen by the client's current run (see `unseen`)."""
        found: dict[str, bytes] = {}
        seen = self._seen.setdefault(client_no, bytearray()) if mark_seen else None
        for i in range(0, len(customer_nos), LOOKUP_CHUNK):
            chunk = customer_nos[i : i + LOOKUP_CHUNK]
            width = lookup_width(len(chunk))
            rows = self.db.execute(
                _LOOKUP_SQL[width], (client_no, *chunk, *itertools.repeat(None, width - len(chunk)))
            )
            for rowid, customer_no, value in rows:
                found[customer_no] = value
                if seen is not None:
                    byte = rowid >> 3
                    if byte >= len(seen):
                        seen.extend(bytes(byte - len(seen) + 4096))
                    seen[byte] |= 1 << (rowid & 7)
        return found

    def get_states(self, client_no: int, customer_nos: Sequence[str]) -> dict[str, StoredState]:
        """The cached customers among those (removed ones are absent)."""
        raw = self.get_raw_states(client_no, customer_nos)
        return {no: decode_state(value) for no, value in raw.items() if not is_removed(value)}

    def get_state(self, client_no: int, customer_no: str) -> StoredState | None:
        return self.get_states(client_no, [customer_no]).get(customer_no)

    def count(self, client_no: int) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM customers WHERE client_no = ? AND removed = 0", (client_no,)
        ).fetchone()
        return int(row[0])

    def names(self, client_no: int) -> Iterator[str]:
        """The names in the client's stored states, folded (`str.casefold`) and in code point order
        (the order `KnownNames` reads in one pass, keeping only what slicing can use). SQLite sorts
        them on a read-only connection of its own whose sort spills to temporary files (the main
        connection keeps its temporary data in memory): a million names are not held in memory."""
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        try:
            db.execute("PRAGMA temp_store=FILE")
            db.execute("PRAGMA cache_size=-2048")
            db.create_function("casefold", 1, _casefold, deterministic=True)
            # the name is extracted and folded once per row, empty and missing ones are dropped
            # here: a condition on the name in WHERE parsed every row's JSON a second time (~0.8 µs
            # of ~7 µs a customer at 100,000 bench customers, docs/performance.md, "Steady runs")
            rows = db.execute(
                "SELECT casefold(json_extract(CAST(value AS TEXT), '$.state.name')) FROM customers "
                "WHERE client_no = ? AND removed = 0 ORDER BY 1",
                (client_no,),
            )
            yield from (folded for (folded,) in rows if folded)
        finally:
            db.close()

    def name_prefixes(self, client_no: int) -> bytes | None:
        """What the client's last complete read left for the next (`NamePrefixes` bytes). Local to
        this file, not in the changelog: a worker that restored the client from the changelog
        learns from the snapshot's names once instead."""
        row = self.db.execute("SELECT value FROM name_prefixes WHERE client_no = ?", (client_no,)).fetchone()
        return bytes(row[0]) if row else None

    def save_name_prefixes(self, client_no: int, partition: int, value: bytes) -> None:
        self.db.execute(
            "INSERT INTO name_prefixes (client_no, partition, value) VALUES (?, ?, ?) "
            "ON CONFLICT (client_no) DO UPDATE SET partition = excluded.partition, value = excluded.value",
            (client_no, partition, value),
        )

    def get_meta(self, client_no: int) -> ClientMeta | None:
        row = self.db.execute("SELECT value FROM client_meta WHERE client_no = ?", (client_no,)).fetchone()
        return ClientMeta.from_bytes(row[0]) if row else None

    # --- the customers seen by the current run (for removals) ----------------------------------
    # A bitmap per client of the rowids of the cached customers its current run looked up
    # (`get_raw_states(..., mark_seen=True)`): ~125 KB per million rows, where a table of customer
    # numbers took ~20 MB of memory at a million and a B-tree insert per customer. Rowids are
    # stable while a run lasts: rows are updated in place (upsert), never deleted and re-inserted;
    # rows added after the run started (rowid above the largest one then) are its own new customers.
    # (Should another partition's restore delete the table's last row meanwhile, a new customer could
    # get a rowid below that mark and look unseen: it is then confirmed present by GET, not removed.)

    def reset_seen(self, client_no: int) -> None:
        self._seen[client_no] = bytearray()
        row = self.db.execute("SELECT max(rowid) FROM customers").fetchone()
        self._seen_above[client_no] = int(row[0] or 0)

    def drop_seen(self, client_no: int) -> None:
        self._seen.pop(client_no, None)
        self._seen_above.pop(client_no, None)

    def unseen(self, client_no: int) -> Iterator[tuple[str, StoredState]]:
        """Customers of the snapshot that the current run did not see (removal candidates), by customerNo."""
        seen = self._seen.get(client_no, bytearray())
        size, above = len(seen), self._seen_above.get(client_no, 0)
        candidates = _unmarked(seen, above, limit=above // UNSEEN_LOOKUP_SHARE)
        if candidates is not None:
            missing = self._present_rows(client_no, candidates)
        else:
            # rows added since the run began (its own customers: all of a first sync's) are left
            # out by SQLite, not returned to Python one by one (~2 % of a first sync's CPU)
            missing = [
                (rowid, customer_no)
                for rowid, customer_no in self.db.execute(
                    "SELECT rowid, customer_no FROM customers WHERE client_no = ? AND removed = 0 "
                    "AND rowid <= ? ORDER BY customer_no",
                    (client_no, above),
                )
                if (rowid >> 3) >= size or not seen[rowid >> 3] & (1 << (rowid & 7))
            ]
        for rowid, customer_no in missing:
            row = self.db.execute("SELECT value FROM customers WHERE rowid = ?", (rowid,)).fetchone()
            if row is not None:
                yield customer_no, decode_state(row[0])

    def _present_rows(self, client_no: int, rowids: list[int]) -> list[tuple[int, str]]:
        """(rowid, customerNo) of those rows that hold a present customer of the client, by customerNo
        (in statements of `lookup_width` rowids, as `get_raw_states`: a few cached statement texts)."""
        rows: list[tuple[int, str]] = []
        for i in range(0, len(rowids), LOOKUP_CHUNK):
            chunk = rowids[i : i + LOOKUP_CHUNK]
            width = lookup_width(len(chunk))
            rows += self.db.execute(
                _PRESENT_SQL[width], (client_no, *chunk, *itertools.repeat(None, width - len(chunk)))
            )
        rows.sort(key=lambda row: row[1])
        return rows

    # --- writes: only records that are committed in Kafka -----------------------------------------

    def apply(
        self, partition: int, records: Iterable[tuple[bytes, bytes | None]], next_offset: int | None
    ) -> int:
        """Apply committed changelog records (key, value or None for a tombstone; a removal marker
        is kept as a removed row) and move the
        partition's checkpoint to `next_offset`, all in one SQLite transaction."""
        return apply_records(self.db, partition, records, next_offset)

    # --- bulk writes of a restore, off the event loop ------------------------------------------

    def restore_writer(self, *, process: bool = False) -> RestoreWriter:
        """The writer of restores (shared by all partitions restoring at once): its own connection,
        used from one thread, or with `process` from a child process (a big restore: the second
        core without the GIL; the first user decides). Release it with `RestoreWriter.close`."""
        if self._writer is None or self._writer.closed:
            self._writer = RestoreWriter(self.path, process=process)
        self._writer.users += 1
        return self._writer


# `unseen` looks up the unmarked rowids themselves while they are at most this share of the table's
# rowids (a steady run of a client that has the cache to itself: its removed customers, a few
# deleted rows); otherwise it scans the client's rows. The scan of every row into Python took
# ~3.5 µs a customer of a 100,000-customer steady run on the event loop (~3.5 s at 1,000,000).
UNSEEN_LOOKUP_SHARE = 8


def _unmarked(seen: bytearray, above: int, *, limit: int) -> list[int] | None:
    """The rowids 1..`above` without a mark in `seen`, or None when there are more than `limit`."""
    full = min(len(seen), (above >> 3) + 1)
    if above - full * 8 + 1 > limit:  # the rowids past the bitmap are all unmarked
        return None
    out: list[int] = []
    for match in _NOT_FULL.finditer(seen, 0, full):  # bytes with an unmarked bit, found in C
        byte = match.start()
        bits = seen[byte]
        out += [(byte << 3) | bit for bit in range(8) if not bits & (1 << bit)]
        if len(out) > limit:
            return None
    out += range(full * 8, above + 1)
    return [rowid for rowid in out if 1 <= rowid <= above]


_NOT_FULL = re.compile(rb"[^\xff]")


class RestoreWriter:
    """Writes restored batches on a connection of its own, in a thread of its own (the event loop
    keeps fetching the changelog meanwhile: the second core). Batches of all partitions restoring at
    once are written one after the other, in the order they are submitted.

    The connection does not sync (`synchronous=OFF`): a restore writes hundreds of megabytes the
    changelog holds anyway. While it is open, a marker file `<cache>.restoring-*` exists, holding
    the machine's boot id; the writer syncs the database and its write-ahead log to disk before
    removing it on `close`. A cache opened with the marker of another boot (the machine went down
    mid-restore: its last writes may be lost or torn) is deleted and rebuilt from the changelog, so
    no such cache ever verifies as complete. After a crash of the worker alone (same boot) nothing
    committed is lost, the OS holds SQLite's writes: the cache resumes from its checkpoints.
    """

    _markers = itertools.count()

    def __init__(self, path: Path, *, process: bool = False) -> None:
        self.path = path
        self.users = 0
        self.closed = False
        self.marker = Path(f"{restoring_marker(path)}-{os.getpid()}-{next(self._markers)}")
        private_file(self.marker)
        self.marker.write_text(boot_id())
        _sync_file(self.marker)
        _sync_file(path.parent)
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="snapshot-restore")
        # its own connection (SQLite serialises its transactions with the event loop's: busy
        # timeout), in the thread or in a child process (`_writer_process`: no GIL shared)
        self.child = WriterProcess(path) if process else None
        # a child's batches are sent from a thread of their own: the next one waits in the pipe
        self.sender = ThreadPoolExecutor(1, thread_name_prefix="snapshot-restore-send") if process else None
        self.db = None if process else connect_writer(str(path), cache_kb=16384)

    def submit(
        self, partition: int, records: Iterable[tuple[bytes, bytes | None]], next_offset: int | None
    ) -> Future[int]:
        """`SnapshotStore.apply` in the writer's thread (or its child process)."""
        if self.child is not None and self.sender is not None:
            self.sender.submit(self.child.send, partition, list(records), next_offset)
            return self.thread.submit(self.child.receive)
        assert self.db is not None
        return self.thread.submit(apply_records, self.db, partition, records, next_offset)

    def close(self) -> Future[None]:
        """Release the writer; after the last user's batches, its writes are made durable and the
        marker removed (in the thread: done when the returned future is)."""
        self.users -= 1
        done: Future[None] = Future()
        if self.users > 0 or self.closed:
            done.set_result(None)
            return done
        self.closed = True
        finished = self.thread.submit(self._finish)
        self.thread.shutdown(wait=False)
        if self.sender is not None:
            self.sender.shutdown(wait=False)
        return finished

    def _finish(self) -> None:
        if self.child is not None:
            self.child.close()
        if self.db is not None:
            self.db.close()
        for suffix in ("-wal", ""):
            if Path(f"{self.path}{suffix}").exists():
                _sync_file(Path(f"{self.path}{suffix}"))
        self.marker.unlink(missing_ok=True)
        _sync_file(self.path.parent)


def restoring_marker(path: Path) -> Path:
    """The name (a prefix) of the files that exist while a restore writes the cache `path`
    without syncing."""
    return Path(f"{path}.restoring")


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def boot_id() -> str:
    """This boot of the machine (Linux), or a value no later boot matches where it is unknown."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"unknown-{os.getpid()}-{time.time()}"
