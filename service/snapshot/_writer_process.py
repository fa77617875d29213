"""A child process that writes restored batches into the cache: a core of its own, without the GIL.

In a thread, the restore writer and the event loop take turns at the GIL: sqlite3 lets go of it for
each row's SQLite step and waits to get it back while the loop decodes the next fetch, so a restore
took about as long as the consume and the writes one after the other (docs/performance.md, 4.11).
A child process writes while the parent only fetches. It is a new interpreter (not a fork: the
worker has threads and an event loop), receives `(partition, records, next_offset)` over a pipe and answers
each with the number of records applied or the error. It exits when the pipe closes, also when the
worker dies without closing it (kill -9): nothing outlives the worker.

The child opens the cache with the restore writer's settings (no syncing, guarded by the
`RestoreWriter`'s boot-id marker, which the parent owns).
"""

from __future__ import annotations

import os
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from service.snapshot._apply import apply_records, connect_writer
from service.tuning import release_free_memory, tune_allocator

__all__ = ["WriterProcess", "WriterProcessError"]

# What a batch is on the wire: (partition, [(key, value or None), ...], next offset or None)
_Batch = tuple[int, list[tuple[bytes, bytes | None]], int | None]


class WriterProcessError(RuntimeError):
    """The child failed to write a batch (its error text) or died."""


class WriterProcess:
    """The parent's end: batches are `send`-ed from one thread and their answers `receive`-d in the
    same order from another, so the next batch is in the pipe while the child writes one."""

    def __init__(self, path: Path) -> None:
        requests_in, requests_out = os.pipe()
        replies_in, replies_out = os.pipe()
        # a fresh interpreter running this module (not multiprocessing's spawn, which would import
        # the worker's own main module again), handed the two pipes' child ends
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(path), str(requests_in), str(replies_out)],
            pass_fds=(requests_in, replies_out),
            stdin=subprocess.DEVNULL,
        )
        # the child's ends belong to the child alone: its end of file is then the parent's going away
        os.close(requests_in)
        os.close(replies_out)
        self._requests = Connection(requests_out, readable=False)
        self._replies = Connection(replies_in, writable=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def send(
        self, partition: int, records: list[tuple[bytes, bytes | None]], next_offset: int | None
    ) -> None:
        """Queue a batch (blocks while the pipe is full: call it from a thread of its own)."""
        self._requests.send((partition, records, next_offset))

    def receive(self) -> int:
        """The records applied of the oldest batch not yet answered (blocks until it is written)."""
        return self._answer()

    def close(self) -> None:
        """Ask the child to close the cache and wait until it has exited."""
        try:
            self._requests.send(None)
            self._answer()
        finally:
            self._requests.close()
            self._replies.close()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _answer(self) -> int:
        try:
            ok, answer = self._replies.recv()
        except (EOFError, OSError) as exc:
            raise WriterProcessError(
                f"the restore writer process ended (exit code {self._proc.poll()})"
            ) from exc
        if not ok:
            raise WriterProcessError(str(answer))
        return int(answer)


def serve(path: str, requests: Connection, replies: Connection) -> None:
    """The child: write each batch received, answer (True, records) or (False, error text)."""

    # a small page cache: the writes are not faster with a larger one (docs/performance.md, 4.10),
    # and this is memory beside the worker's
    db = connect_writer(path, cache_kb=4096)
    try:
        while True:
            try:
                batch: _Batch | None = requests.recv()
            except EOFError:
                return  # the worker is gone
            if batch is None:
                db.close()  # before the answer: the parent then syncs the files
                replies.send((True, 0))
                return
            try:
                replies.send((True, apply_records(db, *batch)))
            except Exception as exc:
                replies.send((False, f"{type(exc).__name__}: {exc}"))
            # the batch's records go before the next one is received, and the C heap's free pages
            # back to the system: this process's memory is its batches (docs/performance.md, 4.14)
            batch = None
            release_free_memory()
    finally:
        db.close()


def main(argv: list[str]) -> None:
    path, requests, replies = argv
    tune_allocator()  # as in the worker: large blocks (a received batch) in mappings of their own
    serve(path, Connection(int(requests), writable=False), Connection(int(replies), readable=False))


if __name__ == "__main__":
    main(sys.argv[1:])
