"""Snapshot records committed in Kafka but not yet written to the local cache."""

from __future__ import annotations

from array import array
from collections.abc import Iterator

__all__ = ["Unapplied"]


class Unapplied:
    """Committed snapshot records not yet in the cache, packed in one buffer: tens of thousands of
    small bytes objects kept alive across pages pin half-empty allocator pools and arenas that the
    pages' short-lived objects leave behind (measured: +65 MB RSS at 100,000 customers)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ends = array("Q")  # key end, value end, key end, value end, ...

    def __len__(self) -> int:
        return len(self.ends) // 2

    def add(self, key: bytes, value: bytes) -> None:
        self.data += key
        self.ends.append(len(self.data))
        self.data += value
        self.ends.append(len(self.data))

    def records(self) -> Iterator[tuple[bytes, bytes]]:
        data, ends, start = memoryview(self.data), self.ends, 0
        try:
            for i in range(0, len(ends), 2):
                key_end, value_end = ends[i], ends[i + 1]
                yield bytes(data[start:key_end]), bytes(data[key_end:value_end])
                start = value_end
        finally:
            data.release()
