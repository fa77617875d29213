"""The local SQLite cache of the snapshot changelog for the partitions this worker owns.

Rows and the changelog checkpoint (the next offset to read, per partition) are written in one
SQLite transaction, so after any crash the cache is exactly "the changelog up to the checkpoint"
and a restore from the checkpoint brings it current. A missing or corrupt file is rebuilt from the
changelog (every checkpoint starts at 0 again).

Changelog records (key → value):
  `{clientNo}/{customerNo}` → `{"state": {...}, "rev": n}` or a tombstone (customer removed)
  `{clientNo}#meta`         → `{"lastCompletedRunStartedAt": iso, "requestId": ...}` (run metadata)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from service.logs import get_logger
from service.sync.diff import StoredState

log = get_logger(__name__)

META_SEPARATOR = "#meta"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    client_no INTEGER NOT NULL,
    customer_no TEXT NOT NULL,
    partition INTEGER NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (client_no, customer_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_meta (
    client_no INTEGER PRIMARY KEY,
    partition INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    partition INTEGER PRIMARY KEY,
    next_offset INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class ClientMeta:
    last_completed_run_started_at: datetime | None
    request_id: str | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "lastCompletedRunStartedAt": self.last_completed_run_started_at.isoformat()
                if self.last_completed_run_started_at
                else None,
                "requestId": self.request_id,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> ClientMeta:
        data = orjson.loads(raw)
        started = data.get("lastCompletedRunStartedAt")
        return cls(datetime.fromisoformat(started) if started else None, data.get("requestId"))


def meta_key(client_no: int) -> bytes:
    return f"{client_no}{META_SEPARATOR}".encode()


def parse_key(key: bytes) -> tuple[int, str | None]:
    """(clientNo, customerNo) of a changelog key; customerNo None for the client's meta record."""
    text = key.decode()
    if text.endswith(META_SEPARATOR):
        return int(text[: -len(META_SEPARATOR)]), None
    client, _, customer = text.partition("/")
    return int(client), customer


def encode_state(state: dict[str, Any], rev: int) -> bytes:
    return orjson.dumps({"state": state, "rev": rev})


def decode_state(raw: bytes) -> StoredState:
    data = orjson.loads(raw)
    return StoredState(data["state"], int(data["rev"]))


class SnapshotStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            db = self._connect()
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {row}")
            return db
        except sqlite3.DatabaseError as exc:
            log.warning(
                "snapshot cache unreadable, rebuilding from the changelog",
                path=str(self.path),
                error=str(exc),
            )
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA cache_size=-32768")  # 32 MB page cache
        db.executescript(_SCHEMA)
        db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (customer_no TEXT PRIMARY KEY) WITHOUT ROWID")
        return db

    def close(self) -> None:
        self.db.close()

    # --- checkpoints -----------------------------------------------------------------------------

    def checkpoint(self, partition: int) -> int:
        row = self.db.execute(
            "SELECT next_offset FROM checkpoints WHERE partition = ?", (partition,)
        ).fetchone()
        return int(row[0]) if row else 0

    # --- reads ---------------------------------------------------------------------------------

    def get_states(self, client_no: int, customer_nos: Sequence[str]) -> dict[str, StoredState]:
        found: dict[str, StoredState] = {}
        for i in range(0, len(customer_nos), 500):
            chunk = customer_nos[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT customer_no, value FROM customers WHERE client_no = ? AND customer_no IN ({marks})",  # noqa: S608
                (client_no, *chunk),
            )
            for customer_no, value in rows:
                found[customer_no] = decode_state(value)
        return found

    def get_state(self, client_no: int, customer_no: str) -> StoredState | None:
        return self.get_states(client_no, [customer_no]).get(customer_no)

    def count(self, client_no: int) -> int:
        row = self.db.execute("SELECT count(*) FROM customers WHERE client_no = ?", (client_no,)).fetchone()
        return int(row[0])

    def get_meta(self, client_no: int) -> ClientMeta | None:
        row = self.db.execute("SELECT value FROM client_meta WHERE client_no = ?", (client_no,)).fetchone()
        return ClientMeta.from_bytes(row[0]) if row else None

    # --- the customers seen by the current run (for removals) ----------------------------------

    def reset_seen(self) -> None:
        self.db.execute("DELETE FROM seen")

    def mark_seen(self, customer_nos: Iterable[str]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((c,) for c in customer_nos))
        self.db.execute("COMMIT")

    def unseen(self, client_no: int) -> Iterator[tuple[str, StoredState]]:
        """Customers of the snapshot that the current run did not see (removal candidates)."""
        rows = self.db.execute(
            "SELECT customer_no, value FROM customers WHERE client_no = ? "
            "AND customer_no NOT IN (SELECT customer_no FROM seen) ORDER BY customer_no",
            (client_no,),
        ).fetchall()
        for customer_no, value in rows:
            yield customer_no, decode_state(value)

    # --- writes: only records that are committed in Kafka -----------------------------------------

    def apply(
        self, partition: int, records: Iterable[tuple[bytes, bytes | None]], next_offset: int | None
    ) -> int:
        """Apply committed changelog records (key, value or None for a tombstone) and move the
        partition's checkpoint to `next_offset`, all in one SQLite transaction."""
        customers_up: list[tuple[int, str, int, bytes]] = []
        customers_del: list[tuple[int, str]] = []
        meta_up: list[tuple[int, int, bytes]] = []
        meta_del: list[tuple[int]] = []
        n = 0
        for key, value in records:
            n += 1
            client_no, customer_no = parse_key(key)
            if customer_no is None:
                if value is None:
                    meta_del.append((client_no,))
                else:
                    meta_up.append((client_no, partition, value))
            elif value is None:
                customers_del.append((client_no, customer_no))
            else:
                customers_up.append((client_no, customer_no, partition, value))
        db = self.db
        db.execute("BEGIN")
        try:
            if customers_up:
                db.executemany("INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?)", customers_up)
            if customers_del:
                db.executemany("DELETE FROM customers WHERE client_no = ? AND customer_no = ?", customers_del)
            if meta_up:
                db.executemany("INSERT OR REPLACE INTO client_meta VALUES (?, ?, ?)", meta_up)
            if meta_del:
                db.executemany("DELETE FROM client_meta WHERE client_no = ?", meta_del)
            if next_offset is not None:
                db.execute(
                    "INSERT INTO checkpoints VALUES (?, ?) ON CONFLICT(partition) DO UPDATE SET next_offset = "
                    "max(next_offset, excluded.next_offset)",
                    (partition, next_offset),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return n
