"""Snapshot changelog records: keys and values as the snapshot topic and the local cache hold them.

  `{clientNo}/{customerNo}` → `{"state": {...}, "rev": n}` (a customer)
                              `{"state": null, "rev": n}` (a removal marker: the customer is gone)
  `{clientNo}#meta`         → `{"lastCompletedRunStartedAt": iso, "requestId": ...}` (run metadata)

A removal writes a marker, not a tombstone, so the customer's revision survives it: a customer that
is re-created later continues its sequence, and its events never reuse an earlier `ce_id`. Markers
stay in the compacted topic (the last value of their key); a tombstone from an older version is
still read as "absent, revision 0".

Pure encoding, shared by the engine (which builds records) and the cache (which stores them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson


@dataclass(frozen=True)
class StoredState:
    """A customer as the snapshot holds it: its tracked state and revision. (Here, not in `diff`:
    the restore's writer process imports this module and nothing heavier.)"""

    state: dict[str, Any]
    rev: int


META_SEPARATOR = "#meta"


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


_STATE_HEAD = b'{"state":'
_REV_HEAD = b',"rev":'


def encode_state(state: dict[str, Any], rev: int) -> bytes:
    """`orjson.dumps({"state": state, "rev": rev})`, as a bytes object of its own length: the one
    `orjson.dumps` returns keeps the whole buffer it was written in (4 KB for a ~300-byte state),
    and a first sync holds a few thousand of these until their transaction commits (~15 MB of the
    C heap, where exact ones take ~1.2 MB: docs/performance.md, 4.13)."""
    return b"".join((_STATE_HEAD, orjson.dumps(state), b',"rev":%d}' % rev))


def stores_state(raw: bytes, state_json: bytes) -> bool:
    """Whether the stored value `raw` holds exactly the state whose JSON is `state_json`
    (`orjson.dumps(state)`), without decoding it: `encode_state` writes `{"state":<that JSON>,"rev":n}`.
    Equal bytes mean equal states; unequal bytes may still be equal states (another key order), which
    the caller finds out by decoding."""
    at = len(_STATE_HEAD)
    return (
        raw.startswith(_STATE_HEAD)
        and raw.startswith(state_json, at)
        and raw.startswith(_REV_HEAD, at + len(state_json))
    )


def decode_state(raw: bytes) -> StoredState:
    """The stored customer of a value that is not a removal marker (`is_removed`)."""
    data = orjson.loads(raw)
    return StoredState(data["state"], int(data["rev"]))


_REMOVED_HEAD = b'{"state":null'


def encode_removed(rev: int) -> bytes:
    """The removal marker: the customer is gone, its revision `rev` is kept."""
    return orjson.dumps({"state": None, "rev": rev})


def is_removed(raw: bytes) -> bool:
    """Whether a stored value is a removal marker (as `encode_removed` writes it)."""
    return raw.startswith(_REMOVED_HEAD)


def decode_entry(raw: bytes | None) -> tuple[StoredState | None, int]:
    """(the stored customer or None when absent or removed, the revision its next change starts from)."""
    if raw is None:
        return None, 0
    data = orjson.loads(raw)
    rev = int(data["rev"])
    state = data.get("state")
    return (StoredState(state, rev) if state is not None else None), rev
