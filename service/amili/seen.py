"""The customerNos one read has seen, kept as 64-bit hashes in compact tables (`SeenKeys`).

A Python `set` of a million `int` hashes costs ~64 MB (a 32 MB hash table plus 32 MB of int
objects) and grows with the client. Here the hashes live unboxed in `array('q')` open-addressing
tables (linear probing, 8 bytes a slot, at most 3/4 full, grown by half when full): ~11-16 MB for a
million. The tables are 256 shards chosen by the hash's low byte, each grown on its own, so growing
never needs the old and the new copy of the whole structure at once.

A slot holding 0 is empty, so a hash of 0 (the empty string's) is stored as 1: two keys are
reported as the same when their 64-bit hashes are equal (or are 0 and 1), as likely as any 64-bit
collision (about 3e-8 for a million keys).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

__all__ = ["SeenKeys"]

_SHARD_BITS = 8
_SHARDS = 1 << _SHARD_BITS
_SHARD_MASK = _SHARDS - 1
_INITIAL_SLOTS = 64  # per shard: 128 KB for all of them
_MAX_LOAD_NUM, _MAX_LOAD_DEN = 3, 4


class SeenKeys:
    """A set of hashable keys that remembers only their 64-bit hashes: `add_new` says whether a key
    was already there."""

    __slots__ = ("_count", "_limits", "_tables")

    def __init__(self) -> None:
        self._tables = [array("q", bytes(8 * _INITIAL_SLOTS)) for _ in range(_SHARDS)]
        self._limits = [_INITIAL_SLOTS * _MAX_LOAD_NUM // _MAX_LOAD_DEN] * _SHARDS
        self._count = [0] * _SHARDS

    def __len__(self) -> int:
        return sum(self._count)

    @property
    def nbytes(self) -> int:
        """Bytes held by the tables (their slots)."""
        return sum(len(t) * t.itemsize for t in self._tables)

    def add_new(self, key: object) -> bool:
        """Add `key`; False when it (or a key of the same 64-bit hash) was added before."""
        return self.first_repeat((key,)) is None

    def first_repeat(self, keys: Iterable[object]) -> object | None:
        """Add every key of `keys`; the first one that was already there (not added again), or None.
        Keys after a repeat are not added."""
        tables, counts, limits = self._tables, self._count, self._limits
        for key in keys:
            h = hash(key) or 1
            shard = h & _SHARD_MASK
            table = tables[shard]
            size = len(table)
            i = (h >> _SHARD_BITS) % size
            while slot := table[i]:
                if slot == h:
                    return key
                i += 1
                if i == size:
                    i = 0
            table[i] = h
            counts[shard] += 1
            if counts[shard] > limits[shard]:
                self._grow(shard)
        return None

    def _grow(self, shard: int) -> None:
        old = self._tables[shard]
        size = len(old) * 3 // 2
        table = array("q", bytes(8 * size))
        for h in old:
            if h:
                i = (h >> _SHARD_BITS) % size
                while table[i]:
                    i += 1
                    if i == size:
                        i = 0
                table[i] = h
        self._tables[shard] = table
        self._limits[shard] = size * _MAX_LOAD_NUM // _MAX_LOAD_DEN
