"""The SQLite snapshot cache (removal markers, wiping a partition, checkpoint times) and the rule
that decides whether a cache may be caught up from its checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from service.snapshot import store as store_module
from service.snapshot.store import PAGE_SIZE, SnapshotStore
from service.snapshot.verify import PartitionLog, stale_reason
from service.sync.records import decode_entry, encode_removed, encode_state, is_removed

DAY_MS = 86_400_000


def test_a_removal_marker_keeps_the_revision_and_counts_as_absent(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "s.sqlite")
    store.apply(0, [(b"7/a", encode_state({"x": 1}, 1)), (b"7/b", encode_state({"x": 2}, 3))], 2)
    store.apply(0, [(b"7/b", encode_removed(4))], 3)
    assert store.count(7) == 1
    assert store.get_state(7, "b") is None and store.get_state(7, "a") is not None
    raw = store.get_raw_states(7, ["b"])["b"]
    assert is_removed(raw) and decode_entry(raw) == (None, 4)
    # a removed customer is never a removal candidate again
    store.reset_seen(7)
    store.get_raw_states(7, [], mark_seen=True)
    assert [no for no, _ in store.unseen(7)] == ["a"]
    # re-created: a present row again
    store.apply(0, [(b"7/b", encode_state({"x": 2}, 5))], 4)
    assert store.count(7) == 2 and store.get_state(7, "b").rev == 5  # type: ignore[union-attr]


@pytest.mark.parametrize("others", [0, 200], ids=["unmarked-rows-looked-up", "client-rows-scanned"])
def test_unseen_is_every_present_customer_cached_before_the_run_that_it_did_not_look_up(
    tmp_path: Path, others: int
) -> None:
    # with the cache to itself a client's few unmarked rowids are looked up one by one; among many
    # rows of other clients its own rows are scanned: the same answer either way
    store = SnapshotStore(tmp_path / "s.sqlite")
    store.apply(0, [(f"8/{i:03}".encode(), encode_state({"x": i}, 1)) for i in range(others)], 1)
    store.apply(0, [(f"7/{i:03}".encode(), encode_state({"x": i}, 1)) for i in range(100)], 2)
    store.apply(0, [(b"7/050", encode_removed(2))], 3)  # removed: never a candidate
    store.reset_seen(7)
    store.apply(0, [(b"7/new", encode_state({"x": 0}, 1))], 4)  # added during the run: its own
    store.apply(0, [(b"7/own", encode_state({"x": 0}, 1))], 5)  # the same, never looked up (a first sync's)
    read = [f"{i:03}" for i in range(100) if i not in (3, 41, 97)]
    store.get_raw_states(7, [*read[:60], "new"], mark_seen=True)
    store.get_raw_states(7, read[60:], mark_seen=True)
    store.get_raw_states(8, [f"{i:03}" for i in range(others)])  # not marked: another client's run
    assert [(no, s.state) for no, s in store.unseen(7)] == [
        ("003", {"x": 3}),
        ("041", {"x": 41}),
        ("097", {"x": 97}),
    ]


def test_wiping_a_partition_forgets_its_rows_metadata_and_checkpoint_only(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "s.sqlite")
    store.apply(0, [(b"1/a", encode_state({}, 1)), (b"1#meta", b'{"lastCompletedRunStartedAt": null}')], 5)
    store.apply(1, [(b"2/a", encode_state({}, 1))], 9)
    store.save_name_prefixes(1, 0, b"one")
    store.save_name_prefixes(2, 1, b"two")
    before = time.time()
    assert store.checkpoint_time(0) is not None and store.checkpoint_time(0) <= before  # type: ignore[operator]
    store.wipe_partition(0)
    assert store.count(1) == 0 and store.get_meta(1) is None
    assert store.checkpoint(0) == 0 and store.checkpoint_time(0) is None
    assert store.count(2) == 1 and store.checkpoint(1) == 9
    assert store.name_prefixes(1) is None and store.name_prefixes(2) == b"two"


def test_name_prefixes_are_kept_per_client_and_added_to_a_file_of_before(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SnapshotStore(path)
    store.apply(0, [(b"1/a", encode_state({}, 1))], 1)
    store.db.execute("DROP TABLE name_prefixes")  # a cache file written before the table existed
    store.close()
    store = SnapshotStore(path)
    assert store.count(1) == 1 and store.name_prefixes(1) is None  # kept, not rebuilt
    store.save_name_prefixes(1, 0, b"first")
    store.save_name_prefixes(1, 0, b"second")
    store.close()
    assert SnapshotStore(path).name_prefixes(1) == b"second"


def test_a_new_cache_file_has_large_pages_and_one_of_small_pages_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = SnapshotStore(tmp_path / "new.sqlite")
    assert new.db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 16384
    new.close()
    # a cache written with SQLite's default 4 KB pages (before): opened as it is, not rebuilt
    path = tmp_path / "old.sqlite"
    with monkeypatch.context() as before:
        before.setattr(store_module, "PAGE_SIZE", 4096)
        old = SnapshotStore(path)
        old.apply(0, [(b"1/b", encode_state({"x": 2}, 1))], 1)
        old.close()
    store = SnapshotStore(path)
    store.apply(0, [(b"1/a", encode_state({"x": 1}, 1))], 2)
    store.close()
    store = SnapshotStore(path)
    assert store.db.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert store.count(1) == 2 and store.checkpoint(0) == 2


def test_a_checkpoint_remembers_when_it_last_moved(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "s.sqlite")
    assert store.checkpoint_time(3) is None
    store.apply(3, [(b"1/a", encode_state({}, 1))], 1)
    first = store.checkpoint_time(3)
    assert first is not None and abs(first - time.time()) < 60
    store.db.execute("UPDATE checkpoints SET advanced_at = 0 WHERE partition = 3")
    store.touch_checkpoint(3)
    assert store.checkpoint_time(3) >= first  # type: ignore[operator]


NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("checkpoint", "age_s", "log", "new", "wipe"),
    [
        (10, 5, PartitionLog(0, 10), True, None),  # current
        (10, 10 * 86_400, PartitionLog(0, 10), True, None),  # old but nothing written since
        (11, 5, PartitionLog(0, 10), False, "past the end"),  # topic recreated
        (4, 5, PartitionLog(6, 10), False, "behind the log start"),
        (0, None, PartitionLog(6, 10), True, None),  # empty cache: restore from the log start
        (8, 2 * 86_400, PartitionLog(0, 10), True, "delete.retention.ms"),  # another owner since
        (8, 2 * 86_400, PartitionLog(0, 10), False, None),  # owned throughout (a retry's restore)
        (8, 60, PartitionLog(0, 10), True, None),  # recent enough: tombstones still there
    ],
)
def test_when_a_cache_must_be_wiped(
    checkpoint: int, age_s: float | None, log: PartitionLog, new: bool, wipe: str | None
) -> None:
    at = NOW - age_s if age_s is not None else None
    reason = stale_reason(checkpoint, at, log, retention_ms=DAY_MS, now=NOW, new_ownership=new)
    if wipe is None:
        assert reason is None
    else:
        assert reason is not None and wipe in reason


def test_the_names_of_a_clients_present_customers_are_read_by_sqlite_folded_and_sorted(
    tmp_path: Path,
) -> None:
    store = SnapshotStore(tmp_path / "s.sqlite")
    store.apply(
        0,
        [
            (b"7/a", encode_state({"name": "Kari Nordmann", "x": 1}, 1)),
            (b"7/b", encode_state({"name": "Über Transport"}, 1)),
            (b"7/c", encode_state({"x": 3}, 1)),  # no name
            (b"7/g", encode_state({"name": ""}, 1)),  # an empty name
            (b"7/h", encode_state({"name": 42}, 1)),  # not a text
            (b"7/e", encode_state({"name": "STRAßE AS"}, 1)),  # full case folding: ß is ss
            (b"7/f", encode_state({"name": "kari nordmann"}, 1)),  # a second customer, same name
            (b"8/a", encode_state({"name": "another client"}, 1)),
        ],
        4,
    )
    store.apply(0, [(b"7/d", encode_state({"name": "D'Angelo"}, 1))], 5)
    store.apply(0, [(b"7/d", encode_removed(2))], 6)
    assert list(store.names(7)) == ["kari nordmann", "kari nordmann", "strasse as", "über transport"]


@pytest.mark.parametrize("asked", [1, 3, 255, 511, 512, 513, 1_500])
def test_lookups_of_any_count_find_exactly_the_cached_customers_and_mark_them_seen(
    tmp_path: Path, asked: int
) -> None:
    store = SnapshotStore(tmp_path / "s.sqlite")
    store.apply(0, [(f"7/c{i:05d}".encode(), encode_state({"x": i}, 1)) for i in range(0, 4_000, 2)], 1)
    store.apply(0, [(b"8/c00000", encode_state({"x": -1}, 1))], 2)  # another client's same number
    store.reset_seen(7)
    wanted = [f"c{i:05d}" for i in range(asked)]  # every other one is cached
    found = store.get_raw_states(7, wanted, mark_seen=True)
    assert sorted(found) == [no for i, no in enumerate(wanted) if i % 2 == 0]
    assert all(found[no] == encode_state({"x": int(no[1:])}, 1) for no in found)
    unseen = {no for no, _ in store.unseen(7)}
    assert unseen == {f"c{i:05d}" for i in range(0, 4_000, 2)} - set(found)


def test_lookups_use_a_few_statement_texts_whatever_the_counts(tmp_path: Path) -> None:
    """The sqlite3 module keeps every distinct statement prepared (in SQLite's memory): lookups of
    every count from 1 to 1,500 use 10 statement widths, not one per count."""
    store = SnapshotStore(tmp_path / "s.sqlite")
    texts: set[str] = set()
    store.db.set_trace_callback(texts.add)
    for n in range(1, 1_501):
        store.get_raw_states(7, [f"c{i}" for i in range(n)])
    lookups = [text for text in texts if text.startswith("SELECT rowid, customer_no")]
    # the callback sees the statements with their values bound: count the IN list's items
    widths = {text.rpartition(" IN (")[2].count(",") + 1 for text in lookups}
    assert widths == {1 << bits for bits in range(10)}
