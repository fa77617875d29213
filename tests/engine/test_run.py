"""The sync engine on in-memory fakes of its ports: every path of a run, in milliseconds."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from service.amili.models import Customer, NamePrefixes
from service.config import ApiSettings, Settings
from service.engine import RequestPosition, SyncEngine
from service.engine.ports import Committed, OutRecord
from service.engine.run import DIFF_STEP
from service.sync.requests import FetchRequest, Filters
from service.sync.results import RunResult, RunStatus
from tests.engine.fakes import CommitFailed, FakeCache, FakePublisher, FakeSource, customer

CLIENT = 2218
PARTITION = 3
CREATED = "amili.customer.created.v1"
REMOVED = "amili.customer.removed.v1"
BASELINE = "amili.customer.baseline.v1"
BALANCE = "amili.customer.balance_changed.v1"
ADDRESS = "amili.customer.address_changed.v1"


def settings(**sync: object) -> Settings:
    return Settings(
        api=ApiSettings(base_url="http://127.0.0.1:1/arm/v1", page_size=2),
        sync={"pages_per_transaction": 1, **sync},  # type: ignore[arg-type]
    )


def request(at: datetime | None = None, filters: dict[str, str] | None = None) -> FetchRequest:
    return FetchRequest(
        requestId=uuid.uuid4(),
        clientNo=CLIENT,
        requestedAt=at or datetime.now(UTC),
        filters=Filters.model_validate(filters) if filters else None,
    )


class Harness:
    def __init__(self, **sync: object) -> None:
        self.cache = FakeCache()
        self.source = FakeSource()
        self.settings = settings(**sync)

    def engine(self) -> SyncEngine:
        return SyncEngine(self.settings, self.cache, self.source)

    async def run(
        self, req: FetchRequest | None = None, publisher: FakePublisher | None = None
    ) -> tuple[RunResult, FakePublisher]:
        publisher = publisher or FakePublisher()
        position = RequestPosition("requests", PARTITION, 41, "group")
        result = await self.engine().run(req or request(), publisher, PARTITION, position)
        return result, publisher


def pages(*customers: object) -> list[list[object]]:
    items = list(customers)
    return [items[i : i + 2] for i in range(0, len(items), 2)]


async def baseline(h: Harness, n: int = 6) -> None:
    h.source.pages = pages(*(customer(i) for i in range(1, n + 1)))  # type: ignore[arg-type]
    await h.run()


async def test_first_run_publishes_one_baseline_per_customer_and_the_run_metadata() -> None:
    h = Harness()
    h.source.pages = pages(*(customer(i) for i in range(1, 6)))  # type: ignore[arg-type]
    result, pub = await h.run()
    assert result.status is RunStatus.SUCCEEDED
    assert pub.event_types() == [BASELINE] * 5
    assert result.counts == {"baseline": 5}
    assert h.cache.count(CLIENT) == 5 and h.cache.get_meta(CLIENT) is not None
    # page transactions carry no offset; the last one carries the request's, and the result
    assert [c for _, c in pub.committed[:-1]] == [None] * (len(pub.committed) - 1)
    last_records, consumed = pub.committed[-1]
    assert consumed == RequestPosition("requests", PARTITION, 41, "group")
    assert [r.topic for r in last_records][-1].endswith("sync-results")
    # every event travels with its customer's snapshot record in the same transaction
    for records, _ in pub.committed[:-1]:
        events = {r.key for r in records if r.topic.endswith("lifecycle")}
        snaps = {r.key for r in records if r.topic.endswith("snapshot")}
        assert events == snaps


async def test_steady_run_publishes_only_true_changes_and_created_ones() -> None:
    h = Harness()
    await baseline(h, 4)
    h.source.pages = pages(
        customer(1), customer(2, balance=250.5), customer(3, city="Bergen"), customer(4), customer(9)
    )  # type: ignore[arg-type]
    result, pub = await h.run()
    assert sorted(pub.event_types()) == sorted([BALANCE, ADDRESS, CREATED])
    assert result.counts == {"balance": 1, "address": 1, "created": 1}
    balance = next(r for r in pub.records("balance-changed"))
    data = orjson.loads(balance.value or b"")
    assert data["before"] == {"balanceTotal": 100.0} and data["after"] == {"balanceTotal": 250.5}
    assert h.cache.state(CLIENT, "2").rev == 2  # type: ignore[union-attr]  # baseline 1, then one change
    # an unchanged run writes nothing but its result
    again, pub2 = await h.run()
    assert again.counts == {} and len(pub2.committed) == 1


def snapshot_keys(records: list[OutRecord]) -> list[bytes]:
    return [r.key for r in records if r.topic.endswith("snapshot")]


async def test_a_steady_run_commits_its_changes_a_pages_worth_per_transaction_not_a_page_each() -> None:
    h = Harness()  # a transaction per 2 changed customers (page_size 2, pages_per_transaction 1)
    h.source.pages = pages(*(customer(i) for i in range(1, 11)))  # type: ignore[arg-type]
    _, first = await h.run()
    # a first sync changes every customer: one transaction per page's worth, then the last one
    assert [snapshot_keys(records) for records, _ in first.committed[:-1]] == [
        [f"{CLIENT}/{i}".encode(), f"{CLIENT}/{i + 1}".encode()] for i in range(1, 11, 2)
    ]
    # three changed customers on three of five pages: one transaction when two of them have come,
    # one with the third at the end of the read, then the last one (result, metadata)
    changed = {2: 200.0, 5: 500.0, 9: 900.0}
    h.source.pages = pages(*(customer(i, balance=changed.get(i, 100.0)) for i in range(1, 11)))  # type: ignore[arg-type]
    result, steady = await h.run()
    assert [snapshot_keys(records) for records, _ in steady.committed] == [
        [f"{CLIENT}/2".encode(), f"{CLIENT}/5".encode()],
        [f"{CLIENT}/9".encode()],
        [f"{CLIENT}#meta".encode()],
    ]
    assert result.counts == {"balance": 3}
    assert {no: h.cache.state(CLIENT, str(no)).state["balanceTotal"] for no in changed} == changed  # type: ignore[union-attr]


async def test_changes_of_later_pages_in_one_transaction_carry_the_time_their_page_was_diffed() -> None:
    h = Harness()
    await baseline(h, 4)
    h.source.pages = pages(customer(1), customer(2, balance=5.0), customer(3), customer(4, balance=9.0))  # type: ignore[arg-type]
    h.source.gate = asyncio.Event()  # the second page waits for it
    publisher = FakePublisher()
    task = asyncio.create_task(h.engine().run(request(), publisher, PARTITION, None))
    while not h.source.streams or h.source.streams[-1].report.pages_read < 1:
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    h.source.gate.set()
    await task
    first = publisher.committed[0][0]  # both changes in one transaction (two changed customers)
    times = [dict(r.headers)["ce_time"].decode() for r in first if any(k == "ce_time" for k, _ in r.headers)]
    assert len(times) == 2 and times[0] < times[1]


async def test_a_failed_steady_transaction_leaves_its_customers_unchanged_in_the_cache_for_the_retry() -> (
    None
):
    h = Harness()
    await baseline(h, 6)
    h.source.pages = pages(*(customer(i, balance=100.0 + i) for i in range(1, 7)))  # type: ignore[arg-type]
    publisher = FakePublisher(fail_at={1})  # the second transaction: customers 3 and 4
    with pytest.raises(CommitFailed):
        await h.run(publisher=publisher)
    # only the committed transaction reached the cache; nothing after the failed one was committed
    assert [snapshot_keys(records) for records, _ in publisher.committed] == [
        [f"{CLIENT}/1".encode(), f"{CLIENT}/2".encode()]
    ]
    balances = {i: h.cache.state(CLIENT, str(i)).state["balanceTotal"] for i in range(1, 7)}  # type: ignore[union-attr]
    assert balances == {1: 101.0, 2: 102.0, 3: 100.0, 4: 100.0, 5: 100.0, 6: 100.0}
    # the redelivered request publishes each change not yet committed, once
    result, pub = await h.run()
    assert result.counts == {"balance": 4} and pub.event_types() == [BALANCE] * 4


async def test_filtered_run_updates_what_it_saw_and_infers_no_removal_and_no_metadata() -> None:
    h = Harness()
    await baseline(h, 4)
    meta_before = h.cache.meta[CLIENT]
    h.source.pages = pages(customer(2, balance=5.0))  # type: ignore[arg-type]
    result, pub = await h.run(request(filters={"name": "A"}))
    assert pub.event_types() == [BALANCE]
    assert h.source.gets == [] and h.cache.count(CLIENT) == 4
    assert h.cache.meta[CLIENT] == meta_before
    assert result.filters == {"name": "A"}


async def test_a_request_older_than_the_last_completed_run_is_superseded_without_reading() -> None:
    h = Harness()
    await baseline(h, 2)
    reads = len(h.source.streams)
    result, pub = await h.run(request(at=datetime.now(UTC) - timedelta(hours=1)))
    assert result.status is RunStatus.SUPERSEDED
    assert len(h.source.streams) == reads and pub.event_types() == []
    assert pub.committed[-1][1] is not None  # the offset still moves


async def test_a_client_that_suddenly_reads_as_empty_is_held_before_any_get() -> None:
    h = Harness()
    await baseline(h, 10)
    h.source.pages = []
    h.source.existing = {}
    result, pub = await h.run()
    assert result.status is RunStatus.REMOVALS_HELD and result.removalsHeld == 10
    assert h.source.gets == []  # held on the candidate count, no GET sent
    assert REMOVED not in pub.event_types() and h.cache.count(CLIENT) == 10


async def test_a_customer_gone_at_the_api_is_removed_after_get_one_confirms_it() -> None:
    h = Harness()
    await baseline(h, 6)
    survivors = [customer(i) for i in range(1, 6)]
    h.source.pages = pages(*survivors)  # type: ignore[arg-type]
    h.source.existing = {c.customerNo: c for c in survivors}
    result, pub = await h.run()
    assert h.source.gets == ["6"]
    assert pub.event_types() == [REMOVED] and result.counts == {"removed": 1}
    # a removal marker that keeps the revision (baseline 1, removal 2), not a tombstone
    markers = [
        r for r in pub.records("snapshot") if r.value is not None and r.value.startswith(b'{"state":null')
    ]
    assert [(r.key, orjson.loads(r.value or b"")) for r in markers] == [
        (b"2218/6", {"state": None, "rev": 2})
    ]
    assert h.cache.count(CLIENT) == 5 and h.cache.state(CLIENT, "6") is None


class HeldCommits(FakePublisher):
    """Every commit waits until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def commit(self, records: list[OutRecord], consumed: RequestPosition | None = None) -> Committed:
        await self.release.wait()
        return await super().commit(records, consumed)


async def a_balance_change_and_a_removal(h: Harness) -> None:
    """A baseline of 6 customers; the next read has customer 1's balance changed and no customer 6."""
    await baseline(h, 6)
    survivors = [customer(1, balance=7.5), *(customer(i) for i in range(2, 6))]
    h.source.pages = pages(*survivors)  # type: ignore[arg-type]
    h.source.existing = {c.customerNo: c for c in survivors}


async def test_the_removal_gets_are_sent_while_the_reads_last_transaction_commits() -> None:
    h = Harness()
    await a_balance_change_and_a_removal(h)
    publisher = HeldCommits()  # the read's only transaction (the balance change) waits
    asked = h.source.get_customer
    committed_at_get: list[int] = []

    async def get_customer(client_no: int, customer_no: str) -> Customer | None:
        committed_at_get.append(len(publisher.committed))
        publisher.release.set()
        return await asked(client_no, customer_no)

    h.source.get_customer = get_customer  # type: ignore[method-assign]
    # (bounded: were the GETs to wait for the commit, neither would ever happen)
    result, pub = await asyncio.wait_for(h.run(publisher=publisher), timeout=10)
    assert committed_at_get == [0]  # GET-one went out before the read's transaction had committed
    assert result.status is RunStatus.SUCCEEDED and result.counts == {"balance": 1, "removed": 1}
    # the read's transaction came first, the removal in the last one, and the cache has both
    assert pub.event_types() == [BALANCE, REMOVED]
    assert h.cache.state(CLIENT, "1").state["balanceTotal"] == 7.5  # type: ignore[union-attr]
    assert h.cache.state(CLIENT, "6") is None and h.cache.count(CLIENT) == 5


async def test_the_removal_hold_counts_the_snapshot_after_the_reads_last_transaction() -> None:
    # 3 of 6 customers unseen, 4 created by the read's last transaction: 3 > 0.4 x 6 before it is
    # applied, 3 <= 0.4 x 10 after. The hold is decided on the count after, so nothing is held.
    h = Harness(removal_hold_fraction=0.4, pages_per_transaction=10)
    await baseline(h, 6)
    read = [customer(i) for i in (1, 2, 3, 21, 22, 23, 24)]
    h.source.pages = pages(*read)  # type: ignore[arg-type]
    h.source.existing = {c.customerNo: c for c in read}
    result, _ = await h.run()
    assert result.status is RunStatus.SUCCEEDED and result.removalsHeld == 0
    assert result.counts == {"created": 4, "removed": 3} and sorted(h.source.gets) == ["4", "5", "6"]
    assert h.cache.count(CLIENT) == 7
    # a read that leaves 4 unseen is held: 4 > 0.4 x 7
    h.source.pages = pages(*read[:3])  # type: ignore[arg-type]
    held, _ = await h.run()
    assert held.status is RunStatus.REMOVALS_HELD and held.removalsHeld == 4


async def test_a_failed_last_transaction_fails_the_run_after_the_removal_gets() -> None:
    h = Harness()
    await a_balance_change_and_a_removal(h)
    publisher = FakePublisher(fail_at={0})  # the read's transaction
    with pytest.raises(CommitFailed):
        await h.run(publisher=publisher)
    assert h.source.gets == ["6"] and publisher.committed == []
    assert h.cache.state(CLIENT, "1").state["balanceTotal"] == 100.0  # type: ignore[union-attr]
    assert h.cache.count(CLIENT) == 6 and h.cache.state(CLIENT, "6") is not None
    # the redelivered request publishes both changes, once
    result, pub = await h.run()
    assert pub.event_types() == [BALANCE, REMOVED] and result.status is RunStatus.SUCCEEDED


def event_ids(pub: FakePublisher) -> list[tuple[str, str]]:
    return [
        (dict(r.headers)["ce_type"].decode(), dict(r.headers)["ce_id"].decode())
        for records, _ in pub.committed
        for r in records
        if any(k == "ce_id" for k, _ in r.headers)
    ]


async def test_remove_recreate_remove_with_the_same_data_never_repeats_an_event_id() -> None:
    h = Harness()
    await baseline(h, 6)
    everyone = [customer(i) for i in range(1, 7)]
    without_6 = everyone[:5]
    seen: list[tuple[str, str]] = []
    for present in (everyone, without_6, everyone, without_6, everyone):
        h.source.pages = pages(*present)  # type: ignore[arg-type]
        h.source.existing = {c.customerNo: c for c in present}
        _, pub = await h.run()
        seen += event_ids(pub)
    kinds = [kind for kind, _ in seen]
    assert kinds == [REMOVED, CREATED, REMOVED, CREATED]
    assert len({eid for _, eid in seen}) == 4, seen
    # the re-created customer continues its revisions: baseline 1, removed 2, created 3, ...
    assert h.cache.state(CLIENT, "6").rev == 5  # type: ignore[union-attr]
    assert h.cache.count(CLIENT) == 6


async def test_a_redelivered_removal_repeats_its_ids_exactly() -> None:
    """Ids stay deterministic: the same removal run twice from the same cache gives the same id."""
    first, second = Harness(), Harness()
    for h in (first, second):
        await baseline(h, 6)
        h.source.pages = pages(*(customer(i) for i in range(1, 6)))  # type: ignore[arg-type]
        h.source.existing = {customer(i).customerNo: customer(i) for i in range(1, 6)}
    _, pub1 = await first.run()
    _, pub2 = await second.run()
    assert event_ids(pub1) == event_ids(pub2) and len(event_ids(pub1)) == 1


async def test_a_customer_the_read_missed_is_a_coverage_gap_diffed_through_get_one() -> None:
    h = Harness()
    await baseline(h, 6)
    missed = customer(6, balance=999.0)
    h.source.pages = pages(*(customer(i) for i in range(1, 6)))  # type: ignore[arg-type]
    h.source.existing = {"6": missed}
    h.source.coverage = "incomplete"
    result, pub = await h.run()
    assert result.coverageGaps == ["6"] and result.coverageGapCount == 1
    assert pub.event_types() == [BALANCE]  # its change is still published, and it is not removed
    assert h.cache.count(CLIENT) == 6
    # coverage does not decide the run state: the metadata is written, the next run is steady
    h.source.pages = pages(*(customer(i) for i in range(1, 6)), customer(7))  # type: ignore[arg-type]
    h.source.existing = None
    _, pub2 = await h.run()
    assert CREATED in pub2.event_types() and BASELINE not in pub2.event_types()


async def test_a_failed_commit_fails_the_run_and_the_cache_holds_only_what_was_committed() -> None:
    h = Harness()
    h.source.pages = pages(*(customer(i) for i in range(1, 7)))  # type: ignore[arg-type]
    publisher = FakePublisher(fail_at={1})  # the second page transaction
    with pytest.raises(CommitFailed):
        await h.run(publisher=publisher)
    committed_keys = {
        r.key for records, _ in publisher.committed for r in records if r.topic.endswith("snapshot")
    }
    assert {f"2218/{no}".encode() for (_, no) in h.cache.values} == committed_keys
    assert h.cache.get_meta(CLIENT) is None  # no result, no metadata: the request is redelivered
    # the redelivered request publishes what was not committed, and nothing twice
    result, pub = await h.run()
    assert len(pub.event_types()) == 6 - len(committed_keys)
    assert result.status is RunStatus.SUCCEEDED


async def test_cancelling_a_run_mid_read_closes_the_read_and_keeps_the_cache_consistent() -> None:
    h = Harness()
    h.source.gate = asyncio.Event()
    h.source.pages = pages(*(customer(i) for i in range(1, 7)))  # type: ignore[arg-type]
    publisher = FakePublisher()
    task = asyncio.create_task(h.engine().run(request(), publisher, PARTITION, None))
    while not publisher.committed:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.source.streams[-1].closed
    assert h.cache.count(CLIENT) == 2  # the first page's committed transaction reached the cache
    assert h.cache.get_meta(CLIENT) is None


async def test_get_one_confirmation_never_has_more_than_concurrency_requests_in_flight() -> None:
    from service.engine.reconcile import confirm_each

    in_flight = peak = 0

    async def fetch(no: str) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return None

    found, absent = await confirm_each([str(i) for i in range(500)], fetch, 4)
    assert found == [] and len(absent) == 500 and peak == 4


async def test_a_failed_result_carries_a_bounded_error_text() -> None:
    from service.sync.results import MAX_ERROR_CHARS

    h = Harness()
    publisher = FakePublisher()
    result = await h.engine().fail(request(), publisher, PARTITION, None, "x" * 100_000)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and len(result.error) == MAX_ERROR_CHARS
    assert len(result.model_dump_json()) < 4_000


async def test_a_read_of_the_whole_client_teaches_the_next_what_it_split() -> None:
    h = Harness()
    h.source.pages = pages(customer(1, name="Kari Nordmann"), customer(2, name="Über Transport"))  # type: ignore[arg-type]
    learned = NamePrefixes({"": "kü", "k": "a"}, 2)
    h.source.learned = learned
    await h.run()
    await h.run()
    assert h.source.taught_prefixes == [None, learned]
    # taught at once: the snapshot's names are not read
    assert h.source.known_names == [[], []]
    h.settings.sync.learn_names_from_snapshot = False
    await h.run()
    assert h.source.taught_prefixes[-1] is None and h.source.known_names[-1] == []


async def test_a_filtered_read_leaves_the_last_whole_reads_prefixes() -> None:
    h = Harness()
    h.source.pages = pages(*(customer(i) for i in range(1, 5)))  # type: ignore[arg-type]
    whole = NamePrefixes({"": "ab"}, 4)
    h.source.learned = whole
    await h.run()
    h.source.learned = NamePrefixes({"": "a"}, 1)
    await h.run(request(filters={"name": "A"}))  # a filtered read says less about the client
    assert NamePrefixes.from_bytes(h.cache.prefixes[CLIENT]) == whole
    await h.run()
    assert h.source.taught_prefixes[1:] == [whole, whole]


async def test_prefixes_that_do_not_decode_give_way_to_the_snapshots_names() -> None:
    h = Harness()
    h.source.pages = pages(customer(1, name="Kari Nordmann"))  # type: ignore[arg-type]
    await h.run()
    for raw in (b"{not json", b"[1, 2]", b'{"prefixes": {}, "customers": 3}', b'{"prefixes": "a"}'):
        h.cache.prefixes[CLIENT] = raw
        await h.run()
        assert h.source.taught_prefixes[-1] is None and h.source.known_names[-1] == ["kari nordmann"]


async def test_a_steady_run_teaches_the_slicing_the_names_in_the_snapshot() -> None:
    h = Harness()
    h.source.pages = pages(customer(1, name="Kari Nordmann"), customer(2, name="Über Transport"))  # type: ignore[arg-type]
    await h.run()
    await h.run()
    # none on the baseline; then folded and in code point order, as the slicing reads them in one pass
    assert h.source.known_names == [[], ["kari nordmann", "über transport"]]
    h.settings.sync.learn_names_from_snapshot = False
    await h.run()
    assert h.source.known_names[-1] == []


async def test_a_page_is_diffed_in_steps_that_give_the_other_tasks_turns() -> None:
    """The producer's commits and the reader's responses run on the same event loop: a page diffed
    in one go held them back for as long as its diff took."""
    h = Harness()
    h.source.pages = [[customer(i) for i in range(1, 1_001)]]  # type: ignore[list-item]
    turns, seen_at = 0, []

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    lookup = h.cache.get_raw_states

    def counting_lookup(
        client_no: int, customer_nos: Sequence[str], *, mark_seen: bool = False
    ) -> dict[str, bytes]:
        seen_at.append((len(customer_nos), turns))
        return lookup(client_no, customer_nos, mark_seen=mark_seen)

    h.cache.get_raw_states = counting_lookup  # type: ignore[method-assign]
    ticker = asyncio.create_task(other_task())
    try:
        result, _ = await h.run()
    finally:
        ticker.cancel()
    assert result.status is RunStatus.SUCCEEDED and result.counts == {"baseline": 1_000}
    sizes, at_turns = zip(*seen_at, strict=True)
    assert sizes == (DIFF_STEP, DIFF_STEP, DIFF_STEP, 1_000 - 3 * DIFF_STEP)
    assert all(a < b for a, b in itertools.pairwise(at_turns))  # the other task ran between the steps
