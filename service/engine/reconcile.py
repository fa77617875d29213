"""After an unfiltered read: what became of the snapshot's customers that the read did not see.

Each one is asked for by GET-one, whatever the read's coverage was: a customer the API no longer
has (404 with the API's own error body, decided by the source) is removed; one it still has was
missed by the slicing (a coverage gap) and is diffed like any customer read. So the run's state
never depends on how completely the list endpoint could be sliced.

The mass-removal hold is decided on the number of candidates *before* any GET is sent: a client
that suddenly reads as empty costs no request per customer and removes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from service.amili.models import Customer
from service.sync.records import StoredState

__all__ = ["GAP_SAMPLE", "Reconciliation", "confirm_each", "reconcile_unseen"]

# At most this many gap customer numbers are listed in a run result (the count is always given).
GAP_SAMPLE = 100


@dataclass
class Reconciliation:
    held: int = 0  # candidates held back (more than the hold fraction of the snapshot)
    removed: list[tuple[str, StoredState]] = field(default_factory=list)
    found: list[Customer] = field(default_factory=list)  # missed by the read, still at the API

    @property
    def gap_sample(self) -> list[str]:
        return sorted(c.customerNo for c in self.found)[:GAP_SAMPLE]


async def confirm_each(
    numbers: Sequence[str],
    fetch: Callable[[str], Awaitable[Customer | None]],
    concurrency: int,
) -> tuple[list[Customer], set[str]]:
    """GET-one for each number with at most `concurrency` requests in flight; a fixed pool of
    workers takes numbers one by one, so a million candidates are never a million coroutines."""
    found: list[Customer] = []
    absent: set[str] = set()
    todo = iter(numbers)

    async def worker() -> None:
        for number in todo:
            customer = await fetch(number)
            if customer is None:
                absent.add(number)
            else:
                found.append(customer)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(max(concurrency, 1), len(numbers))):
            group.create_task(worker())
    return found, absent


async def reconcile_unseen(
    candidates: list[tuple[str, StoredState]],
    snapshot_size: int,
    hold_fraction: float,
    fetch: Callable[[str], Awaitable[Customer | None]],
    concurrency: int,
) -> Reconciliation:
    if not candidates:
        return Reconciliation()
    if len(candidates) > hold_fraction * snapshot_size:
        return Reconciliation(held=len(candidates))
    found, absent = await confirm_each([no for no, _ in candidates], fetch, concurrency)
    removed = [(no, state) for no, state in candidates if no in absent]
    return Reconciliation(removed=removed, found=found)
