"""One read of a client's customers: slices, pages in parallel, guards, coverage (`CustomerRead`).

How a read goes:

1. The request's query (its filters, `pagesize`, `maximumcount`) is issued. If its first page says
   `totalCount >= maximumCount` the query is truncated: its customers are not yielded, but their
   names and customerNos are the sample the planner learns the next characters from (`planner.py`),
   and the query is split into slices; a slice whose first page is still truncated is split again.
   A slice the strategy cannot split is read as it is (capped) and makes coverage "incomplete".
   When the API reports true totals, a split slice whose children's totals add up to less than its
   own (a *shortfall*) gets the planner's probes, a few at a time, until the shortfall is zero or
   the probes run out (then the shortfall is a gap and coverage "incomplete"). When totals are
   capped, every first page teaches the learned alphabet, and when nothing is left to read a sweep
   tries at each split slice what it suggests (see `planner.py`); then a split slice whose
   children hold less than the cap, whose sample has names no child matches, or whose first page
   came in name order is a detected gap (coverage stays "unproven"). Gaps go to
   `ReadReport.gaps` (bounded).
2. A complete slice's first page is yielded and its other pages are fetched by `query` + `pageno`,
   `concurrency` requests at a time, pages before new slices (a short-lived queryId has less time
   to expire). Pages are yielded as they arrive, so in any order. `nextPage` is never followed
   (`totalPages` drives the read), so a missing, null or empty `nextPage` does not matter.
3. A 404 (or 410) on a `query=` request means the queryId expired: the slice's first request is issued
   again (once per slice; the new first page must agree with the old one on `totalCount` and
   `totalPages`), the read continues with the new queryId; a second expiry raises `AmiliQueryExpired`.

Guards (each ends the read with `AmiliProtocolError`): a page whose customers repeat an earlier page
(same customerNos in the same order), a page whose `pageNo` or `totalCount` differs from what was
asked or first seen, a page whose `currentPageSize` differs from its customers, a customerNo seen
twice in one read, and a complete slice whose pages do not add up to its `totalCount` (or whose
`totalPages` disagrees with `totalCount` and `pageSizeLimit`). Duplicates are found by the 64-bit
hashes of customerNo in compact tables (`seen.py`: ~11 MB for a million customers; a false alarm
would need a 64-bit collision).

Memory: at most `concurrency` pages are fetched or waiting for the consumer at any time (a
semaphore permit is taken before a request and given back when the consumer takes the page).
Pages without customers (empty slices) are counted in the report but not yielded.

Stopping: `aclose()` (or leaving `async with read:`) cancels the fetch tasks and waits for them, also
when the consumer was cancelled while it held a page (the generator is then suspended at `yield` and
would otherwise keep its tasks alive).
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.logs import get_logger
from service.metrics import CUSTOMERS_READ, PAGES_FETCHED, SLICES

from ._closing import ClosesOnExit
from ._http import CallStats
from .errors import AmiliBadRequest, AmiliError, AmiliHTTPError, AmiliProtocolError, AmiliQueryExpired
from .models import CustomerList, NamePrefixes, Page, ReadReport
from .planner import NO_NAMES, KnownNames, Sample, fold
from .seen import SeenKeys
from .slicing import SliceStrategy

log = get_logger("service.amili")

MAX_SPLIT_LEVEL = 48
PROBE_BATCH = 8  # probes sent at once while a shortfall remains
MAX_GAPS = 16  # gap entries kept in the report (each a few hundred bytes at most)
GAP_TEXT = 32  # characters of a prefix kept in a gap entry
MAX_POOL = 20_000  # sampled names a slice passes on to its children
ORDERED_PAGE = 20  # a first page of this many names or more, all in name order, is no random sample
_PAGE, _SLICE = 0, 1  # work priorities: finish open queries before starting new slices


class ListFetcher(Protocol):
    maximum_count: int
    concurrency: int

    async def list_first(self, client_no: int, filters: dict[str, str], stats: CallStats) -> CustomerList: ...

    async def list_page(
        self, client_no: int, query_id: str, page_no: int, stats: CallStats
    ) -> CustomerList: ...


_SEPARATORS = "".join(map(chr, range(32)))


@dataclass(frozen=True)
class _Packed:
    """A list of strings kept as one: `sep` joins them, a character none of them holds. A split
    slice keeps its sampled names (up to `MAX_POOL`) and its probes (a few hundred) until its last
    child has answered, and the read's order (a slice's pages before new slices) keeps dozens of
    split slices waiting at once in a big client: as str and dict objects they were ~6 MB of small
    objects at 1,000,000 customers, spread over the allocator's arenas (docs/performance.md, 4.13)."""

    text: str = ""
    sep: str = "\0"
    count: int = 0

    @classmethod
    def of(cls, items: Sequence[str]) -> _Packed | tuple[str, ...]:
        """`items` packed; as a tuple when every separator occurs in them (never, in practice)."""
        if not items:
            return _EMPTY
        for sep in _SEPARATORS:
            text = sep.join(items)
            if text.count(sep) == len(items) - 1:
                return cls(text, sep, len(items))
        return tuple(items)

    def __len__(self) -> int:
        return self.count

    def unpack(self) -> list[str]:
        return self.text.split(self.sep) if self.count else []


_EMPTY = _Packed()


def _unpack(items: _Packed | tuple[str, ...]) -> list[str]:
    return items.unpack() if isinstance(items, _Packed) else list(items)


@dataclass(eq=False)
class _Slice:
    filters: dict[str, str]
    level: int
    parent: _Slice | None = None
    children: list[_Slice] = field(default_factory=list)
    total_count: int | None = None
    true_total: int | None = None  # known true number of matches
    split: bool = False
    capped: bool = False
    probe: bool = False  # created by a shortfall probe
    open_children: int = 0  # children whose first answer has not come yet
    # left to try while a shortfall remains: the values of `probe_key`, each added to `filters`
    probes: _Packed | tuple[str, ...] = _EMPTY
    probe_key: str = ""
    unmatched: int = 0  # sampled customers no child can match
    unmatched_prefixes: list[str] = field(default_factory=list)
    shortfall: int = 0  # true totals: customers of this split slice its children do not hold
    pool: _Packed | tuple[str, ...] = _EMPTY  # folded sampled names of this slice and its ancestors
    tried: set[frozenset[tuple[str, str]]] = field(default_factory=set)  # filters of its children
    ordered: bool = False  # its first page came in name order: no sample of the slice, its start only
    query_id: str | None = None
    generation: int = 0
    restarts: int = 0
    total_pages: int = 0
    page_size_limit: int | None = None
    pages_done: int = 0
    count_read: int = 0
    done: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def describe(self) -> str:
        if not self.filters:
            return "the whole client"
        return "slice " + ",".join(f"{k}={v!r}" for k, v in sorted(self.filters.items()))

    def read_sum(self) -> int:
        return sum(c.read_sum() for c in self.children) if self.split else self.count_read


@dataclass
class _Failed:
    error: BaseException


_DONE = object()


class CustomerRead(ClosesOnExit):
    """The pages of one read. Iterate once; `report` is live during iteration and final after it."""

    def __init__(
        self,
        fetcher: ListFetcher,
        strategy: SliceStrategy,
        client_no: int,
        filters: dict[str, str],
        on_close: Callable[[CustomerRead], None] | None = None,
        known: KnownNames | Callable[[], KnownNames] = NO_NAMES,
    ) -> None:
        # `known` may come as a function that builds it: it is then built in a thread while the read
        # starts (a million snapshot names take seconds to stream and fold; the event loop, with
        # the group's heartbeats and the first requests, must not wait on them)
        self._known = known if isinstance(known, KnownNames) else NO_NAMES
        self._build_known = None if isinstance(known, KnownNames) else known
        self._known_task: asyncio.Task[KnownNames] | None = None
        self.report = ReadReport(client_no=client_no, filters=dict(filters), known_names=len(self._known))
        self.report.known_prefixes = self._known.prefixes
        self._true_totals = False  # seen totalCount > maximumCount: the API reports true totals
        self._probe_lock = asyncio.Lock()
        self._prior: Counter[str] = Counter()
        self._pairs: set[tuple[str, str]] = set()  # the learned alphabet (see `Sample.pairs`)
        self._fetcher = fetcher
        self._strategy = strategy
        self._client_no = client_no
        self._stats = CallStats(api_calls=self.report.api_calls, retries=self.report.retries)
        self._root = _Slice(dict(filters), 0)
        self._concurrency = max(1, fetcher.concurrency)
        self._on_close = on_close
        self._started = False
        self._iterator: AsyncIterator[Page] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # work items: (priority, sequence, slice, page number); page 0 = the slice's first request
        self._work: asyncio.PriorityQueue[tuple[int, int, _Slice, int]] = asyncio.PriorityQueue()
        self._out: asyncio.Queue[Page | _Failed | object] = asyncio.Queue()
        self._permits = asyncio.Semaphore(self._concurrency)
        self._seq = 0
        self._pending = 0
        self._seen = SeenKeys()
        self._fingerprints: dict[int, tuple[_Slice, int]] = {}
        self._finished = False

    # -- iteration ---------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Page]:
        if self._started:
            raise RuntimeError("a CustomerRead can be iterated only once")
        self._started = True
        self._iterator = self._run()
        return self._iterator

    async def aclose(self) -> None:
        """Stop the read (when the consumer stops early or was cancelled); cancels the fetch tasks and
        waits for them; safe to call more than once."""
        iterator = self._iterator
        if iterator is not None and hasattr(iterator, "aclose"):
            try:
                await iterator.aclose()
            except RuntimeError:  # it is being iterated by another task: wake that task with an error
                self._out.put_nowait(_Failed(AmiliError(f"the read of client {self._client_no} was closed")))
        await self._stop_workers()

    async def _run(self) -> AsyncIterator[Page]:
        self._enqueue(self._root, _SLICE, 0)
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"amili-read-{self._client_no}-{i}")
            for i in range(self._concurrency)
        ]
        if self._build_known is not None:
            self._known_task = asyncio.create_task(
                asyncio.to_thread(self._build_known), name=f"amili-read-{self._client_no}-names"
            )
            self._tasks.append(self._known_task)
        log.info(
            "amili.read_started",
            clientNo=self._client_no,
            filters=self._root.filters,
            concurrency=self._concurrency,
            slicing=self._strategy.name,
        )
        try:
            while True:
                item = await self._out.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failed):
                    raise item.error
                assert isinstance(item, Page)
                self._permits.release()
                yield item
            self._finish()
        finally:
            await self._stop_workers()
            if self._on_close is not None:
                self._on_close(self)

    async def _stop_workers(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:  # cancelled again while waiting: still wait, then re-raise
            await asyncio.wait(tasks)
            raise

    def _enqueue(self, sl: _Slice, kind: int, page_no: int) -> None:
        self._seq += 1
        self._pending += 1
        self._work.put_nowait((kind, self._seq, sl, page_no))

    async def _worker(self) -> None:
        while True:
            kind, _, sl, page_no = await self._work.get()
            try:
                if kind == _SLICE:
                    await self._start_slice(sl)
                else:
                    await self._fetch_page(sl, page_no)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._out.put_nowait(_Failed(exc))
                return
            self._pending -= 1
            if self._pending == 0 and not self._sweep():
                self._out.put_nowait(_DONE)

    async def _guarded(self, fetch: Callable[[], Awaitable[CustomerList]], sl: _Slice, page_no: int) -> None:
        """Take a permit, fetch, accept the page; the permit goes with a yielded page, else back."""
        await self._permits.acquire()
        delivered = False
        try:
            answer = await fetch()
            if page_no == 1 and sl.total_count is None:
                self._take_known_names()
                await self._before_open(sl, answer)
            delivered = self._handle(sl, page_no, answer)
        finally:
            if not delivered:
                self._permits.release()

    # -- slices --------------------------------------------------------------------------------------

    async def _start_slice(self, sl: _Slice) -> None:
        async def fetch() -> CustomerList:
            return await self._fetcher.list_first(self._client_no, sl.filters, self._stats)

        await self._guarded(fetch, sl, 1)

    def _handle(self, sl: _Slice, page_no: int, answer: CustomerList) -> bool:
        if page_no == 1 and sl.total_count is None and not self._open_slice(sl, answer):
            return False
        return self._accept(sl, page_no, answer)

    def _open_slice(self, sl: _Slice, answer: CustomerList) -> bool:
        """First page of a slice: split it (False: page discarded) or open it for paging (True)."""
        summary = answer.summary
        total = self._require(summary.totalCount, "totalCount", sl)
        cap = summary.maximumCount or self._fetcher.maximum_count
        sl.total_count = total
        truncated = total >= cap
        if sl is self._root:
            self.report.truncated = truncated
        if total == 0:
            self.report.empty_slices += 1
        try:
            if truncated:
                return self._open_truncated(sl, answer, total, cap)
            sl.true_total = total
            if sl is self._root:
                self.report.expected_total = total
            if not self._true_totals:  # capped totals: every first page teaches the learned alphabet
                self._learn_pairs(c.name for c in answer.customers)
            return self._open_pages(sl, answer, total, cap)
        finally:
            parent = sl.parent
            if parent is not None:
                parent.open_children -= 1
                if parent.open_children == 0:
                    self._settle(parent)

    def _sample(self, answer: CustomerList, true_totals: bool) -> Sample:
        customers = answer.customers
        names = [c.name for c in customers]
        return Sample(names, [c.customerNo for c in customers], true_totals, self._prior, self._pairs)

    @staticmethod
    def _inherited(sl: _Slice) -> list[str]:
        parent = sl.parent
        if parent is None or not parent.pool:
            return []
        prefix = fold(sl.filters.get("name", ""))
        return [n for n in _unpack(parent.pool) if n.startswith(prefix)][:MAX_POOL]

    def _learn_prior(self, sample: Sample) -> None:
        """Count the characters of sampled names (and customerNos): the order probes are tried in."""
        counts = self._prior
        for name in sample.names:
            if name:
                counts.update(fold(name))
        self._learn_pairs(sample.names)
        for number in sample.customer_nos:
            counts.update(fold(number))

    def _learn_pairs(self, names: Iterable[str | None]) -> None:
        pairs = self._pairs
        for name in names:
            if name:
                folded = fold(name)
                pairs.add(("", folded[0]))
                pairs.update(itertools.pairwise(folded))

    def _take_known_names(self) -> None:
        """Take the known names once they are built. A split never waits for them: waiting held the
        read's first split for the whole pass over the snapshot (~0.7 s of a 9 s steady read of
        100,000 customers, ~7 s at a million); the splits made before they are ready are planned
        from the sampled names alone, at the cost of more requests (201 -> 255 pages for that steady
        read: docs/performance.md, 4.14). A pass that failed fails the read here."""
        task = self._known_task
        if task is not None and task.done():
            self._known_task = None
            self._known = task.result()
            self.report.known_names = len(self._known)
            self.report.known_prefixes = self._known.prefixes

    async def _before_open(self, sl: _Slice, answer: CustomerList) -> None:
        """Ask the API once whether `customerno` is a prefix match, when a split would use it."""
        strategy, summary = self._strategy, answer.summary
        cap = summary.maximumCount or self._fetcher.maximum_count
        if strategy.customerno_prefix is not None or summary.totalCount is None or summary.totalCount < cap:
            return
        if not strategy.wants_customerno(sl.filters, self._sample(answer, summary.totalCount > cap)):
            return
        async with self._probe_lock:
            if strategy.customerno_prefix is None:
                strategy.customerno_prefix = await self._probe_customerno(answer)
        self.report.customerno_prefix = strategy.customerno_prefix

    async def _probe_customerno(self, answer: CustomerList) -> bool:
        """`customerno=<a sampled customerNo minus its last character>`: a prefix match answers
        customers whose numbers are longer than the value; an exact match answers none (or only a
        customer whose number is exactly the value)."""
        numbers = sorted((c.customerNo for c in answer.customers if len(c.customerNo) >= 2), key=len)
        if not numbers:
            return False
        value = numbers[-1][:-1]
        self.report.slice_queries += 1
        try:
            found = await self._fetcher.list_first(self._client_no, {"customerno": value}, self._stats)
        except AmiliBadRequest:
            found = None
        folded = fold(value)
        numbers = [fold(c.customerNo) for c in found.customers] if found is not None else []
        prefix = all(n.startswith(folded) for n in numbers) and any(n != folded for n in numbers)
        log.info("amili.customerno_probe", clientNo=self._client_no, prefix_match=prefix)
        return prefix

    def _open_truncated(self, sl: _Slice, answer: CustomerList, total: int, cap: int) -> bool:
        """A truncated first answer: split the slice (False: page discarded) or read it capped (True)."""
        if total > cap:
            self._true_totals = True
        if self._true_totals:
            sl.true_total = total
            if sl is self._root:
                self.report.expected_total = total
        sample = self._sample(answer, self._true_totals)
        self._learn_prior(sample)
        # the samples of the ancestors that fall under this slice teach it too (rare characters that
        # one page of 1,000 misses are often on another)
        own = [fold(n) for n in sample.names if n]
        sl.ordered = len(own) >= ORDERED_PAGE and all(a <= b for a, b in itertools.pairwise(own))
        pool = self._inherited(sl) + own
        sample = Sample(pool, sample.customer_nos, sample.true_totals, sample.prior, self._pairs)
        plan = (
            self._strategy.split(sl.filters, sl.level, sample, self._known)
            if sl.level < MAX_SPLIT_LEVEL
            else None
        )
        if plan is not None and (plan.children or plan.probes):
            sl.split = True
            sl.pool = _Packed.of(pool)
            if sl.true_total is not None:
                self._keep_probes(sl, plan.probes, plan.dimension)
            sl.unmatched, sl.unmatched_prefixes = plan.unmatched, plan.unmatched_prefixes
            self.report.splits += 1
            self.report.discarded_pages += 1
            log.info(
                "amili.slice_split",
                clientNo=self._client_no,
                slice=sl.describe(),
                total_count=total,
                maximum_count=cap,
                by=plan.dimension,
                children=len(plan.children),
                probes=len(sl.probes),
            )
            self._spawn(sl, plan.children, probe=False)
            if sl.open_children == 0:
                self._settle(sl)
            return False
        sl.capped = True
        self.report.coverage_notes.append(
            f"{sl.describe()} has {total} customers (cap {cap}) and cannot be split further: "
            f"read capped, the rest is missing"
        )
        self._gap("capped", sl, total - cap, exact=sl.true_total is not None)
        log.warning("amili.slice_capped", clientNo=self._client_no, slice=sl.describe(), total_count=total)
        return self._open_pages(sl, answer, total, cap)

    def _open_pages(self, sl: _Slice, answer: CustomerList, total: int, cap: int) -> bool:
        summary = answer.summary
        expected_count = min(total, cap)
        sl.page_size_limit = summary.pageSizeLimit
        pages = summary.totalPages
        if pages is None:
            limit = summary.pageSizeLimit or len(answer.customers) or 1
            pages = math.ceil(expected_count / limit)
        elif summary.pageSizeLimit:
            expected_pages = math.ceil(expected_count / summary.pageSizeLimit)
            if pages != expected_pages and not (expected_count == 0 and pages in (0, 1)):
                raise AmiliProtocolError(
                    f"Amili API: client {self._client_no}: {sl.describe()}: totalPages {pages} disagrees "
                    f"with totalCount {total} (cap {cap}) at pageSizeLimit {summary.pageSizeLimit}"
                )
        sl.total_pages = max(1, pages)
        sl.query_id = summary.queryId
        if sl.total_pages > 1 and not sl.query_id:
            raise AmiliProtocolError(
                f"Amili API: client {self._client_no}: {sl.describe()}: {sl.total_pages} pages but no queryId"
            )
        self.report.pages_total += sl.total_pages
        for page_no in range(2, sl.total_pages + 1):
            self._enqueue(sl, _PAGE, page_no)
        return True

    @staticmethod
    def _keep_probes(sl: _Slice, probes: Sequence[dict[str, str]], key: str) -> None:
        """Keep a split slice's probes packed: each is the slice's filters plus one value of `key`
        (the split's dimension), as the planner makes them."""
        values = [p.get(key, "") for p in probes]
        if any(p != {**sl.filters, key: v} for p, v in zip(probes, values, strict=True)):
            raise AmiliError(f"a probe of {sl.describe()} is not its filters plus one {key!r}")
        sl.probe_key = key
        sl.probes = _Packed.of(values)

    def _spawn(self, sl: _Slice, children: list[dict[str, str]], *, probe: bool) -> None:
        for filters in children:
            sl.tried.add(frozenset(filters.items()))
            child = _Slice(filters, sl.level + 1, parent=sl, probe=probe)
            sl.children.append(child)
            sl.open_children += 1
            self.report.slice_queries += 1
            if probe:
                self.report.probe_queries += 1
            self._enqueue(child, _SLICE, 0)

    def _settle(self, sl: _Slice) -> None:
        """Every child of a split slice has answered: probe on while a shortfall remains, or record
        what is detectably missing."""
        held = sum(c.total_count or 0 for c in sl.children)
        if sl.true_total is not None:
            shortfall = sl.true_total - held
            if shortfall > 0 and sl.probes:
                values = _unpack(sl.probes)
                batch = [{**sl.filters, sl.probe_key: v} for v in values[:PROBE_BATCH]]
                sl.probes = _Packed.of(values[PROBE_BATCH:])
                log.debug("amili.probing", clientNo=self._client_no, slice=sl.describe(), shortfall=shortfall)
                self._spawn(sl, batch, probe=True)
                return
            sl.probes = _EMPTY
            # no child is made any more (true totals: no sweep), so its sampled names can go: kept
            # to the end of the read, the pools of the split slices grew with the client (~15 MB
            # between 100,000 and 1,000,000 customers)
            sl.pool = _EMPTY
            if shortfall > 0:
                sl.shortfall = shortfall
                self._gap("shortfall", sl, shortfall, exact=True)
            elif shortfall < 0:
                self.report.coverage_notes.append(
                    f"{sl.describe()}: totalCount says {sl.true_total}, its slices hold {held} "
                    f"(the slices overlap: the API matches differently than assumed)"
                )
            return
        # capped totals: the sweep (when nothing else is left to read) probes on, then records gaps

    def _below_cap(self, sl: _Slice) -> int:
        """Capped totals: how many customers a split slice's children surely lack (its own total
        is at least the cap; a child at the cap may hold more than it says, so then nothing is sure)."""
        if any(c.split or c.capped for c in sl.children):
            return 0
        return max(self._fetcher.maximum_count - sum(c.total_count or 0 for c in sl.children), 0)

    def _sweep(self) -> bool:
        """Nothing is left to read. With capped totals, no sum says what a split slice's children
        miss: try at every split slice the characters the learned alphabet (now larger than when the
        slice was split) says can follow its prefix, and where the children surely hold less than
        the cap, the static and broad alphabets too, a batch at a time. True when probes were sent;
        otherwise the detectable gaps are recorded and the read ends."""
        self._take_known_names()
        capped = [s for s in self._walk(self._root) if s.split and s.true_total is None]
        spawned = False
        for sl in capped:
            plan = self._strategy.split(
                sl.filters,
                sl.level,
                Sample(_unpack(sl.pool), (), False, self._prior, self._pairs),
                self._known,
            )
            if plan is None:
                continue
            likely = [f for f in plan.probes[: plan.likely] if frozenset(f.items()) not in sl.tried]
            if not likely and self._below_cap(sl):
                rest = (f for f in plan.probes[plan.likely :] if frozenset(f.items()) not in sl.tried)
                likely = list(itertools.islice(rest, PROBE_BATCH))
            if likely:
                log.debug("amili.probing", clientNo=self._client_no, slice=sl.describe(), probes=len(likely))
                self._spawn(sl, likely, probe=True)
                spawned = True
        if not spawned:
            for sl in capped:
                if missing := self._below_cap(sl):
                    self._gap("below-cap", sl, missing, exact=False)
                elif sl.unmatched:
                    self._gap("unmatched-names", sl, sl.unmatched, exact=False)
                elif sl.ordered:  # how many is unknown: what follows the page's last name was never seen
                    self._gap("ordered-sample", sl, 0, exact=False)
        return spawned

    def _gap(self, kind: str, sl: _Slice, missing: int, *, exact: bool) -> None:
        report = self.report
        report.gap_count += 1
        if len(report.gaps) < MAX_GAPS:
            report.gaps.append(
                {
                    "kind": kind,
                    "slice": {k: v[:GAP_TEXT] for k, v in sorted(sl.filters.items())},
                    "missing": missing,
                    "exact": exact,
                    "unmatchedPrefixes": [p[: GAP_TEXT + 2] for p in sl.unmatched_prefixes[:4]],
                }
            )
        log.warning(
            "amili.coverage_gap",
            clientNo=self._client_no,
            kind=kind,
            slice=sl.describe(),
            missing=missing,
            exact=exact,
        )

    def _require(self, value: int | None, name: str, sl: _Slice) -> int:
        if value is None:
            raise AmiliProtocolError(
                f"Amili API: client {self._client_no}: {sl.describe()}: summary has no {name}"
            )
        return value

    # -- pages ---------------------------------------------------------------------------------------

    async def _fetch_page(self, sl: _Slice, page_no: int) -> None:
        async def fetch() -> CustomerList:
            while True:
                generation, query_id = sl.generation, sl.query_id
                assert query_id is not None
                try:
                    return await self._fetcher.list_page(self._client_no, query_id, page_no, self._stats)
                except AmiliHTTPError as exc:
                    if exc.status not in (404, 410):
                        raise
                    await self._restart(sl, generation, exc)

        await self._guarded(fetch, sl, page_no)

    async def _restart(self, sl: _Slice, generation: int, error: AmiliHTTPError) -> None:
        async with sl.lock:
            if sl.generation != generation:
                return  # another page of this slice restarted the query already
            if sl.restarts >= 1:
                raise AmiliQueryExpired(
                    error.client_no, error.path, error.status, error.body_excerpt, error.method
                ) from None
            sl.restarts += 1
            self.report.query_restarts += 1
            self._stats.retry("query_expired")
            log.warning(
                "amili.query_expired", clientNo=self._client_no, slice=sl.describe(), action="restart"
            )
            answer = await self._fetcher.list_first(self._client_no, sl.filters, self._stats)
            summary = answer.summary
            if summary.totalCount != sl.total_count or (
                summary.totalPages is not None and max(1, summary.totalPages) != sl.total_pages
            ):
                raise AmiliProtocolError(
                    f"Amili API: client {self._client_no}: {sl.describe()}: the restarted query answers "
                    f"totalCount {summary.totalCount} / totalPages {summary.totalPages}, the first "
                    f"answered {sl.total_count} / {sl.total_pages}: the data changed during the read"
                )
            if not summary.queryId:
                raise AmiliProtocolError(
                    f"Amili API: client {self._client_no}: {sl.describe()}: the restarted query has no queryId"
                )
            sl.query_id = summary.queryId
            sl.generation += 1

    def _accept(self, sl: _Slice, page_no: int, answer: CustomerList) -> bool:
        summary = answer.summary
        customers = answer.customers
        where = f"Amili API: client {self._client_no}: {sl.describe()} page {page_no}"
        if summary.pageNo is not None and summary.pageNo != page_no:
            raise AmiliProtocolError(
                f"{where}: asked for page {page_no}, the answer says page {summary.pageNo}"
            )
        if summary.totalCount is not None and summary.totalCount != sl.total_count:
            raise AmiliProtocolError(
                f"{where}: totalCount changed from {sl.total_count} to {summary.totalCount} during the query"
            )
        if summary.currentPageSize is not None and summary.currentPageSize != len(customers):
            raise AmiliProtocolError(
                f"{where}: currentPageSize {summary.currentPageSize} but {len(customers)} customers"
            )
        if customers:
            fingerprint = hash(tuple(c.customerNo for c in customers))
            earlier = self._fingerprints.get(fingerprint)
            if earlier is not None:
                raise AmiliProtocolError(f"{where} repeats {earlier[0].describe()} page {earlier[1]}")
            self._fingerprints[fingerprint] = (sl, page_no)
            repeat = self._seen.first_repeat([c.customerNo for c in customers])
            if repeat is not None:
                raise AmiliProtocolError(
                    f"{where}: customerNo {repeat!r} was already read in this run "
                    f"(overlapping slices or an unstable query)"
                )
        count = summary.currentPageSize if summary.currentPageSize is not None else len(customers)
        sl.pages_done += 1
        sl.count_read += count
        report = self.report
        report.pages_read += 1
        report.customers += len(customers)
        client = str(self._client_no)
        PAGES_FETCHED.labels(client_no=client).inc()
        if customers:
            CUSTOMERS_READ.labels(client_no=client).inc(len(customers))
        log.debug(
            "amili.page", clientNo=self._client_no, slice=sl.describe(), page=page_no, of=sl.total_pages
        )
        if sl.pages_done == sl.total_pages:
            self._complete(sl)
        if not customers:
            return False
        self._out.put_nowait(Page(dict(sl.filters), page_no, sl.total_pages, customers))
        return True

    def _complete(self, sl: _Slice) -> None:
        assert sl.total_count is not None
        expected = min(sl.total_count, self._fetcher.maximum_count) if sl.capped else sl.total_count
        if sl.count_read != expected:
            raise AmiliProtocolError(
                f"Amili API: client {self._client_no}: {sl.describe()}: its {sl.total_pages} page(s) hold "
                f"{sl.count_read} customers but totalCount is {sl.total_count}"
            )
        sl.done = True
        self.report.slices += 1
        if sl is not self._root:
            SLICES.labels(client_no=str(self._client_no)).inc()

    # -- the end -------------------------------------------------------------------------------------

    def _finish(self) -> None:
        report, root = self.report, self._root
        notes = report.coverage_notes
        undone = [s for s in self._walk(root) if not s.split and not s.done]
        if undone:  # cannot happen when every work item finished; keep the report honest anyway
            raise AmiliError(
                f"Amili read of client {self._client_no} ended with {len(undone)} unread slice(s)"
            )
        mismatch = any(
            sl.split and sl.true_total is not None and sl.read_sum() != sl.true_total
            for sl in self._walk(root)
        )
        if mismatch and root.true_total is not None:
            notes.append(
                f"{self._root.describe()}: totalCount says {root.true_total}, the slices hold {root.read_sum()}: "
                f"names no prefix reaches (equal to a prefix, empty, or after characters no probe tried); "
                f"{report.gap_count} gap(s)"
            )
        capped = any(s.capped for s in self._walk(root))
        if not root.split:
            report.expected_total = root.true_total
            report.coverage = "incomplete" if capped else "proven"
        else:
            report.expected_total = root.true_total
            if capped or mismatch:
                report.coverage = "incomplete"
            elif root.true_total is not None:
                report.coverage = "proven"
            else:
                report.coverage = "unproven"
                notes.append(
                    f"the query hit the cap with totalCount == maximumCount, so the true total is unknown; "
                    f"{report.customers} customers were read in {report.slices} slices; {report.gap_count} "
                    f"gap(s) detected, and customers the slices cannot reach may go unnoticed"
                )
        report.complete = report.coverage != "incomplete"
        self._finished = True
        if root.true_total is not None:
            report.unreachable = max(root.true_total - report.customers, 0)
        report.api_requests = sum(report.api_calls.values())
        if report.customers:
            report.requests_per_1000 = round(report.api_requests * 1000 / report.customers, 2)
        log.info(
            "amili.read_done",
            clientNo=self._client_no,
            customers=report.customers,
            pages=report.pages_read,
            slices=report.slices,
            coverage=report.coverage,
            retries=report.retries,
            api_requests=report.api_requests,
            probes=report.probe_queries,
            gaps=report.gap_count,
        )

    def name_prefixes(self) -> NamePrefixes:
        """What this read teaches the next one (`KnownNames.from_prefixes`): every name prefix it
        split, with the characters that followed it in the children that matched customers (a
        child `prefix + " " + c` puts a space after `prefix` and `c` after `prefix + " "`). The
        next read's splits at these prefixes then make those children at once, without the probes
        for characters the sample missed, and without a pass over the snapshot's names. Empty
        until the read has ended without error."""
        if not self._finished:
            return NamePrefixes({})
        after: dict[str, set[str]] = {}
        for sl in self._walk(self._root):
            if not sl.split or "customerno" in sl.filters:
                continue
            prefix = fold(sl.filters.get("name", ""))
            for child in sl.children:
                name = child.filters.get("name", "")
                if not child.total_count or len(name) <= len(prefix) or not name.startswith(prefix):
                    continue
                rest = name[len(prefix) :]
                after.setdefault(prefix, set()).add(rest[0])
                if rest[0].isspace() and len(rest) > 1:
                    after.setdefault(prefix + rest[0], set()).add(rest[1])
        prefixes = {prefix: "".join(sorted(chars)) for prefix, chars in sorted(after.items())}
        return NamePrefixes(prefixes, self.report.customers)

    @staticmethod
    def _walk(sl: _Slice) -> list[_Slice]:
        out, stack = [], [sl]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.children)
        return out
