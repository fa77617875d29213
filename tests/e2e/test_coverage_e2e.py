"""Every customer reached, and run state independent of coverage: the worker process against the
real sandbox over HTTP and the real broker.

The sandbox's cap is scaled down ten times (`--maximum-count-cap 1000`, worker
`AMILI_SYNC_API__MAXIMUM_COUNT=1000`), so a 20,000-customer client of the `dense` name mix has
families beyond the cap of every kind (non-ASCII letters, space, apostrophe, full stop, hyphen,
ampersand, particles) and the runs stay short. `test_full_size_dense_client` is the same at the
real cap with 200,000 customers (marked `slow`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.sandbox.testing import SandboxHandle, running_sandbox
from testkit.kafka import TopicReader, send_request
from testkit.oracle import KIND_TO_TYPE
from testkit.sandbox import sandbox_changes, sandbox_customers
from testkit.worker import WorkerProcess, free_port, worker_env
from tests.conftest import KafkaBroker

DENSE, STUCK, ORDERED = 5100, 5200, 5300
N_DENSE, N_STUCK, N_ORDERED = 20_000, 8_000, 20_000
CHANGES = {
    "seed": 3,
    "balance": 0.01,
    "address": 0.01,
    "registrationStatus": 0.005,
    "created": 40,
    "deleted": 30,
}


@pytest.fixture(scope="module")
def small_cap() -> Iterator[SandboxHandle]:
    mix = f"{DENSE}=dense,{STUCK}=stuck,{ORDERED}=dense"
    args = ["--maximum-count-cap", "1000", "--name-mix", mix]
    with running_sandbox({DENSE: N_DENSE, STUCK: N_STUCK, ORDERED: N_ORDERED}, seed=7, extra_args=args) as sb:
        yield sb


def get_one_404s(sb: SandboxHandle) -> int:
    """GET-one requests the sandbox answered 404 so far."""
    r = httpx.get(f"{sb.control_url}/stats", timeout=30)
    assert r.status_code == 200, r.text
    return int(r.json()["byRoute"].get("one", {}).get("404", 0))


def switch(sb: SandboxHandle, **switches: str) -> None:
    r = httpx.post(f"{sb.control_url}/config", json=switches, timeout=30)
    assert r.status_code == 200, r.text


@pytest.fixture
def start_worker(
    kafka_broker: KafkaBroker, small_cap: SandboxHandle, topic_prefix: str, tmp_path: Path
) -> Iterator[Any]:
    procs: list[WorkerProcess] = []

    def start(**extra: str) -> WorkerProcess:
        env = worker_env(
            kafka_broker.bootstrap_servers,
            topic_prefix,
            small_cap,
            tmp_path / "state",
            free_port(),
            AMILI_SYNC_API__MAXIMUM_COUNT="1000",
            **extra,
        )
        proc = WorkerProcess(env, tmp_path / "worker.log")
        proc.start()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()
    switch(small_cap, totalCount="true", listOrder="key", customerNoFilter="exact")


async def run(
    reader: TopicReader, bootstrap: str, prefix: str, client: int
) -> tuple[dict[str, Any], list[Any]]:
    rid = await send_request(bootstrap, prefix, client)
    result = (await reader.wait_results([rid], timeout=600))[rid]
    assert result["status"] == "succeeded", result
    return result, reader.events_of(rid)


def by_kind(changes: list[dict[str, Any]], known: set[str] | None = None) -> Counter[tuple[str, str]]:
    return Counter(
        (KIND_TO_TYPE[c["kind"]], c["customerNo"])
        for c in changes
        if known is None or c["kind"] == "created" or c["customerNo"] in known
    )


def published(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((e["type"], e["customerNo"]) for e in events)


async def test_dense_client_proven_baseline_then_exactly_the_changes(
    kafka_broker: KafkaBroker, small_cap: SandboxHandle, start_worker: Any
) -> None:
    worker = start_worker()
    bootstrap, prefix = kafka_broker.bootstrap_servers, worker.env["AMILI_SYNC_TOPICS__PREFIX"]
    async with TopicReader(bootstrap, prefix) as reader:
        first, baseline = await run(reader, bootstrap, prefix, DENSE)
        assert first["coverage"] == "proven" and first["unreachable"] == 0 and first["sliceGapCount"] == 0
        everyone = {c["customerNo"] for c in await sandbox_customers(small_cap, DENSE)}
        assert Counter(e["customerNo"] for e in baseline) == Counter(everyone)  # each exactly once
        assert {e["type"] for e in baseline} == {"amili.customer.baseline.v1"}
        assert first["apiRequests"] > 0 and first["requestsPer1000"] is not None

        changes = await sandbox_changes(small_cap, clientNo=DENSE, **CHANGES)
        second, events = await run(reader, bootstrap, prefix, DENSE)
        assert second["coverage"] == "proven"
        assert published(events) == by_kind(changes)  # created, removed, every field change: once


async def test_capped_totals_then_name_ordered_pages_known_customers_by_get_one(
    kafka_broker: KafkaBroker, small_cap: SandboxHandle, start_worker: Any
) -> None:
    switch(small_cap, totalCount="capped")
    # the hold would stop the GETs: a whole family goes unseen once the pages are name-ordered
    # first pages of 1,000 (the real page size) under the cap of 1,000: the families here are ten
    # times smaller than at the real cap, so a first page of 100 would be a sample of ten times
    # fewer of a rare name (tests/amili/test_slicing_sandbox.py reads name-ordered pages of 100)
    # learning from the API's pages only: the snapshot's names would teach the planner the families
    # that name-ordered pages hide (tests/engine: a steady run passes them), and the detection of
    # the gaps those pages leave is what is under test here
    worker = start_worker(
        AMILI_SYNC_SYNC__REMOVAL_HOLD_FRACTION="0.6",
        AMILI_SYNC_SYNC__LEARN_NAMES_FROM_SNAPSHOT="false",
    )
    bootstrap, prefix = kafka_broker.bootstrap_servers, worker.env["AMILI_SYNC_TOPICS__PREFIX"]
    async with TopicReader(bootstrap, prefix) as reader:
        first, baseline = await run(reader, bootstrap, prefix, ORDERED)
        assert first["coverage"] == "unproven" and first["unreachable"] is None
        names = {c["customerNo"]: c["name"] for c in await sandbox_customers(small_cap, ORDERED)}
        known = {e["customerNo"] for e in baseline}
        assert len(baseline) == len(known) and known <= set(names)
        # capped totals: every customer, also where a family's first page misses a rarer name (the
        # learned alphabet finds it)
        assert known == set(names)
        assert any(names[no].casefold().startswith("über") for no in known)

        switch(small_cap, listOrder="name")  # first pages are no sample any more
        changes = await sandbox_changes(small_cap, clientNo=ORDERED, **CHANGES)
        second, events = await run(reader, bootstrap, prefix, ORDERED)
        assert second["coverage"] == "unproven" and second["sliceGapCount"] >= 1 and second["sliceGaps"]
        assert second["coverageGapCount"] > 0  # known customers the scan missed, found by GET-one
        want = by_kind(changes, known)
        got = published(events)
        created = {k for k in got if k[0] == KIND_TO_TYPE["created"]}
        assert created <= set(want)  # a new customer the scan cannot reach is the only thing missed
        assert got - Counter(created) == want - Counter(
            {k: 1 for k in want if k[0] == KIND_TO_TYPE["created"]}
        )
        removed = {no for t, no in got if t == KIND_TO_TYPE["deleted"]}
        assert removed == {c["customerNo"] for c in changes if c["kind"] == "deleted"} & known  # none wrong


async def test_slices_that_cannot_complete_still_write_run_state(
    kafka_broker: KafkaBroker, small_cap: SandboxHandle, start_worker: Any
) -> None:
    worker = start_worker(AMILI_SYNC_API__SLICE_CUSTOMERNO="auto")  # the sandbox's customerno is exact
    bootstrap, prefix = kafka_broker.bootstrap_servers, worker.env["AMILI_SYNC_TOPICS__PREFIX"]
    async with TopicReader(bootstrap, prefix) as reader:
        first, baseline = await run(reader, bootstrap, prefix, STUCK)
        rows = await sandbox_customers(small_cap, STUCK)
        stuck = {
            c["customerNo"] for c in rows if c["name"].casefold() in ("fjord as", "") or c["name"][:1] == " "
        }
        assert len(stuck) > 1000  # names equal to a prefix, more than the cap
        assert first["coverage"] == "incomplete" and first["unreachable"] == len(stuck)
        assert any(g["kind"] == "shortfall" and g["exact"] for g in first["sliceGaps"])
        known = {e["customerNo"] for e in baseline}
        assert known == {c["customerNo"] for c in rows} - stuck

        changes = await sandbox_changes(small_cap, clientNo=STUCK, **CHANGES)
        not_found_before = get_one_404s(small_cap)
        second, events = await run(reader, bootstrap, prefix, STUCK)
        got = published(events)
        # run metadata was written: new customers are "created", not a baseline
        assert "amili.customer.baseline.v1" not in {t for t, _ in got}
        assert {t for t, _ in got} >= {KIND_TO_TYPE["created"], KIND_TO_TYPE["deleted"]}
        removed = {no for t, no in got if t == KIND_TO_TYPE["deleted"]}
        assert removed == {c["customerNo"] for c in changes if c["kind"] == "deleted"} & known
        # removals only through GET-404: one 404 answer per removal, none inferred from the scan alone
        assert removed and get_one_404s(small_cap) - not_found_before == len(removed)
        # and the gap is reported: the exact count of names no prefix reaches
        assert second["coverage"] == "incomplete" and second["sliceGapCount"] >= 1
        assert second["unreachable"] is not None and second["unreachable"] > 1000  # beyond the cap
        assert any(g["kind"] == "shortfall" and g["exact"] for g in second["sliceGaps"])


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_full_size_dense_client(kafka_broker: KafkaBroker, topic_prefix: str, tmp_path: Path) -> None:
    """200,000 customers with dense families of every kind at the real 10,000 cap: proven, each
    customer baseline-published exactly once, then exactly the changes."""
    with running_sandbox({DENSE: 200_000}, seed=7, extra_args=["--name-mix", "dense"]) as sb:
        env = worker_env(kafka_broker.bootstrap_servers, topic_prefix, sb, tmp_path / "state", free_port())
        worker = WorkerProcess(env, tmp_path / "worker.log")
        worker.start()
        try:
            async with TopicReader(kafka_broker.bootstrap_servers, topic_prefix) as reader:
                first, baseline = await run(reader, kafka_broker.bootstrap_servers, topic_prefix, DENSE)
                assert first["coverage"] == "proven" and first["requestsPer1000"] <= 10
                assert Counter(e["customerNo"] for e in baseline) == Counter(
                    c["customerNo"] for c in await sandbox_customers(sb, DENSE)
                )
                changes = await sandbox_changes(sb, clientNo=DENSE, **CHANGES)
                second, events = await run(reader, kafka_broker.bootstrap_servers, topic_prefix, DENSE)
                assert second["coverage"] == "proven" and published(events) == by_kind(changes)
        finally:
            worker.stop()
