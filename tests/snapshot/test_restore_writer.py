"""The restore's writer: batches written in its own thread and connection without syncing, a marker
file while it writes, and what a cache opened with a marker left behind becomes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from service.snapshot import store as store_module
from service.snapshot._writer_process import WriterProcess, WriterProcessError
from service.snapshot.store import SnapshotStore, restoring_marker
from service.sync.records import encode_state


def _markers(path: Path) -> list[Path]:
    marker = restoring_marker(path)
    return sorted(marker.parent.glob(f"{marker.name}-*"))


def test_the_writer_applies_batches_with_their_checkpoint_and_removes_its_marker(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SnapshotStore(path)
    writer = store.restore_writer()
    assert len(_markers(path)) == 1, "no marker while the restore writes without syncing"
    writer.submit(0, [(b"7/a", encode_state({"x": 1}, 1)), (b"7/b", encode_state({"x": 2}, 1))], 2).result()
    writer.submit(0, [(b"7/a", encode_state({"x": 3}, 2))], 3).result()
    writer.close().result()
    assert _markers(path) == []
    assert store.checkpoint(0) == 3
    assert store.get_state(7, "a") is not None and store.get_state(7, "a").state == {"x": 3}  # type: ignore[union-attr]
    assert store.count(7) == 2


def test_the_writer_is_shared_until_its_last_user_closes_it(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SnapshotStore(path)
    first, second = store.restore_writer(), store.restore_writer()
    assert first is second
    first.close().result()
    assert len(_markers(path)) == 1, "the marker went while another restore still writes"
    second.submit(1, [(b"8/a", encode_state({}, 1))], 1).result()
    second.close().result()
    assert _markers(path) == []
    assert store.restore_writer() is not first, "a closed writer was handed out again"


def test_a_cache_left_mid_restore_by_another_boot_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.sqlite"
    store = SnapshotStore(path)
    writer = store.restore_writer()
    writer.submit(0, [(b"7/a", encode_state({}, 1))], 1).result()
    store.close()  # the machine stops here: the writer never syncs nor removes its marker
    monkeypatch.setattr(store_module, "boot_id", lambda: "a later boot")
    reopened = SnapshotStore(path)
    assert reopened.checkpoint(0) == 0, "a cache whose last writes may be lost kept its checkpoint"
    assert reopened.count(7) == 0
    assert _markers(path) == []
    writer.db.close()


def test_a_cache_left_mid_restore_by_a_crash_of_the_worker_alone_resumes(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SnapshotStore(path)
    writer = store.restore_writer()
    writer.submit(0, [(b"7/a", encode_state({}, 1))], 1).result()
    store.close()  # the worker stops here, the machine goes on: the OS holds every write
    writer.db.close()
    reopened = SnapshotStore(path)
    assert reopened.checkpoint(0) == 1
    assert reopened.count(7) == 1
    assert _markers(path) == []


def test_the_last_record_of_a_key_in_a_batch_wins(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "s.sqlite")
    store.apply(0, [(b"7/a", encode_state({"x": 1}, 1))], 1)
    # a tombstone followed by the key's re-creation in one batch: the customer is there
    store.apply(
        0,
        [(b"7/a", None), (b"7/a", encode_state({"x": 2}, 2)), (b"7/b", encode_state({}, 1)), (b"7/b", None)],
        5,
    )
    assert store.get_state(7, "a") is not None and store.get_state(7, "a").state == {"x": 2}  # type: ignore[union-attr]
    assert store.get_state(7, "b") is None


def test_a_batch_the_writer_process_cannot_write_fails_with_its_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite"
    store = SnapshotStore(path)
    writer = store.restore_writer(process=True)
    writer.submit(0, [(b"7/a", encode_state({}, 1))], 1).result()
    with pytest.raises(WriterProcessError, match="ValueError: invalid literal"):
        writer.submit(0, [(b"7/b", encode_state({}, 1)), (b"x/c", encode_state({}, 1))], 3).result()
    writer.submit(0, [(b"7/d", encode_state({}, 1))], 4).result()  # the child serves on
    writer.close().result()
    assert _markers(path) == []
    assert store.checkpoint(0) == 4
    assert store.get_states(7, ["a", "b", "d"]).keys() == {"a", "d"}


def test_the_writer_process_ends_when_the_worker_goes_away(tmp_path: Path) -> None:
    SnapshotStore(tmp_path / "s.sqlite").close()
    child = WriterProcess(tmp_path / "s.sqlite")
    child.send(0, [(b"7/a", encode_state({}, 1))], 1)
    assert child.receive() == 1
    child._requests.close()  # what the kernel does to the worker's end when it is killed
    assert child._proc.wait(30) == 0, "the child outlived its parent's end of the pipe"


def test_a_dead_writer_process_fails_the_batch_instead_of_hanging(tmp_path: Path) -> None:
    child = WriterProcess(tmp_path / "s.sqlite")
    child._proc.kill()
    child._proc.wait()
    with contextlib.suppress(BrokenPipeError):  # the pipe may still take the batch
        child.send(0, [(b"7/a", encode_state({}, 1))], 1)
    with pytest.raises(WriterProcessError, match="ended"):
        child.receive()
