"""`SeenKeys`: the reader's duplicate check, a set of 64-bit hashes in sorted tables."""

from __future__ import annotations

import random
import sys

from service.amili.seen import SeenKeys


def test_new_keys_are_added_and_repeats_found() -> None:
    seen = SeenKeys()
    assert seen.add_new("100001")
    assert seen.add_new("100002")
    assert not seen.add_new("100001")
    assert len(seen) == 2


def test_first_repeat_names_the_key_across_pages_and_within_one() -> None:
    seen = SeenKeys()
    assert seen.first_repeat(["a", "b", "c"]) is None
    assert seen.first_repeat(["d", "b", "e"]) == "b"  # seen on an earlier page
    assert seen.first_repeat(["f", "g", "f"]) == "f"  # twice on the same page
    assert seen.first_repeat(["h"]) is None
    assert len(seen) == 7  # a, b, c, d, f, g, h: "e" came after a repeat and was not added


def test_many_keys_grow_every_shard_and_stay_exact() -> None:
    rng = random.Random(5)
    keys = [str(rng.randrange(10**12)) for _ in range(200_000)]
    unique = list(dict.fromkeys(keys))
    seen = SeenKeys()
    fresh = [seen.add_new(k) for k in keys]
    assert sum(fresh) == len(unique) == len(seen)
    assert all(not seen.add_new(k) for k in unique[::97])  # every one of them is found again
    assert seen.first_repeat(str(10**12 + i) for i in range(1_000)) is None  # none found that is not


def test_the_empty_string_hash_zero_is_a_key_like_any_other() -> None:
    seen = SeenKeys()
    assert hash("") == 0  # (the open-addressing tables this replaced used 0 for an empty slot)
    assert seen.add_new("")
    assert not seen.add_new("")


def test_a_million_keys_take_a_fifth_of_a_python_set() -> None:
    seen = SeenKeys()
    seen.first_repeat(range(1, 1_000_001))
    as_set = {hash(i) for i in range(1, 1_000_001)}
    python_set = sys.getsizeof(as_set) + sum(sys.getsizeof(h) for h in as_set)
    assert len(seen) == 1_000_000
    assert seen.nbytes <= 9 * 2**20  # 8 bytes a key (sorted), 64 a shard header
    assert seen.nbytes * 5 < python_set
