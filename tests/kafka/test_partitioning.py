"""The publisher's partitioner: the partition Kafka's default partitioner picks for a key."""

from __future__ import annotations

import ctypes

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from service.kafka.partitioning import key_partition, murmur2

# Kafka's own test vectors (`UtilsTest.testMurmur2` of the Java client), as signed 32-bit ints
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), JAVA_VECTORS.items())
def test_murmur2_is_the_java_clients(key: bytes, expected: int) -> None:
    assert ctypes.c_int32(murmur2(key)).value == expected


@given(st.binary(max_size=300))
def test_murmur2_equals_aiokafkas_on_any_bytes(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


def test_every_tail_length_and_long_keys_agree_with_aiokafka() -> None:
    keys = [bytes(range(200, 200 - n, -1)) for n in range(0, 80)] + [b"\xff" * 1000]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) for k in keys]


@pytest.mark.parametrize("partitions", [1, 3, 6, 12])
def test_key_partition_is_the_default_partitioners_choice(partitions: int) -> None:
    keys = [f"2218/{1_000_000 + i}".encode() for i in range(2_000)] + [b"9000#meta", b"7/a"]
    everything = list(range(partitions))
    chosen = [key_partition(k, partitions) for k in keys]
    assert chosen == [DefaultPartitioner()(k, everything, everything) for k in keys]
    assert set(chosen) == set(everything)  # the keys spread over every partition
