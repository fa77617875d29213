"""Adaptive slicing against the real sandbox over HTTP: dense name families, capped totals,
name-ordered first pages, names no prefix separates, and the customerno prefix dimension.

The default variants scale the 10,000 cap down to 1,000 (sandbox `--maximum-count-cap 1000`,
reader `maximum_count=1000`, `page_size=1000`), so a 20,000-customer dense client has families
beyond the cap at every kind. The full-size client
(200,000 customers at the real cap) is marked `slow`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.amili import AmiliClient, NamePrefixes, ReadReport
from service.config import ApiSettings
from service.sandbox.testing import SandboxHandle, running_sandbox
from testkit.sandbox import sandbox_api_settings

DENSE, STUCK = 2218, 3000
N_DENSE, N_STUCK = 20_000, 8_000


@pytest.fixture(scope="module")
def small_cap() -> Iterator[SandboxHandle]:
    args = ["--maximum-count-cap", "1000", "--name-mix", f"{DENSE}=dense,{STUCK}=stuck"]
    with running_sandbox({DENSE: N_DENSE, STUCK: N_STUCK}, seed=7, extra_args=args) as sb:
        yield sb


@pytest.fixture
def sandbox(small_cap: SandboxHandle) -> Iterator[SandboxHandle]:
    control(small_cap, "/reset")
    yield small_cap
    control(small_cap, "/reset")


def control(sb: SandboxHandle, path: str, body: Any = None) -> Any:
    with httpx.Client(timeout=60) as http:
        r = http.post(sb.control_url + path, json=body) if body is not None or path == "/reset" else None
        if r is None:
            r = http.get(sb.control_url + path)
        assert r.status_code == 200, r.text
        return r.json()


def everyone(sb: SandboxHandle, client: int) -> dict[str, str]:
    with httpx.Client(timeout=60) as http:
        rows = http.get(f"{sb.control_url}/clients/{client}/customers").json()
    return {c["customerNo"]: c["name"] for c in rows}


# Alike settings_for() of the client tests in shape (kept): these are this suite's own defaults.
def settings(sb: SandboxHandle, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "page_size": 1000,
        "maximum_count": 1000,
        "concurrency": 4,
        "rate_limit": 10_000,
    }
    return sandbox_api_settings(sb, **{**values, **overrides})


def read(api: ApiSettings, client: int, known: list[str] | None = None) -> tuple[ReadReport, Counter[str]]:
    async def go() -> tuple[ReadReport, Counter[str]]:
        seen: Counter[str] = Counter()
        async with AmiliClient(api) as amili:
            async with amili.read(client, known_names=known or []) as reader:
                async for page in reader:
                    seen.update(c.customerNo for c in page.customers)
            return reader.report, seen

    return asyncio.run(go())


def read_learning(
    api: ApiSettings, client: int, taught: NamePrefixes | None = None
) -> tuple[ReadReport, Counter[str], NamePrefixes]:
    """A read taught what an earlier read split; also what this one leaves for the next."""

    async def go() -> tuple[ReadReport, Counter[str], NamePrefixes]:
        seen: Counter[str] = Counter()
        async with AmiliClient(api) as amili, amili.read(client, name_prefixes=taught) as reader:
            async for page in reader:
                seen.update(c.customerNo for c in page.customers)
        return reader.report, seen, reader.name_prefixes()

    return asyncio.run(go())


def test_a_read_taught_what_the_last_one_split_needs_no_probes(sandbox: SandboxHandle) -> None:
    names = everyone(sandbox, DENSE)
    first, seen, learned = read_learning(settings(sandbox), DENSE)
    assert set(seen) == set(names) and first.probe_queries > 0, "nothing for the teaching to save"
    # every prefix it split, with the characters of its children that held customers (and for a
    # child "prefix c", the space after the prefix and "prefix " with c)
    split = [p for p in learned.prefixes if not p.endswith(" ")]
    assert learned.customers == len(names) and "" in learned.prefixes and len(split) == first.splits
    for prefix, chars in learned.prefixes.items():
        for char in chars:
            assert any(n.casefold().startswith(prefix + char) for n in names.values()), (prefix, char)
    again, seen_again, relearned = read_learning(settings(sandbox), DENSE, learned)
    assert set(seen_again) == set(names) and max(seen_again.values()) == 1
    assert again.coverage == "proven" and again.known_prefixes == len(learned.prefixes)
    # the children the sample missed are made at once: no shortfall left to probe for
    assert again.probe_queries == 0 and again.api_requests < first.api_requests
    assert relearned.prefixes == learned.prefixes  # the same customers teach the same again
    # as few requests as a read taught every name of the snapshot
    by_names, _ = read(settings(sandbox), DENSE, known=list(names.values()))
    assert again.api_requests <= by_names.api_requests


def test_what_a_read_split_teaches_reads_that_name_ordered_pages_would_mislead(
    sandbox: SandboxHandle,
) -> None:
    """Capped totals and first pages in name order hide what follows a page's last name; a read
    taught what an earlier read (random order) split still reaches every customer, as the
    snapshot's names do in `test_name_ordered_pages_with_capped_totals_report_gaps`."""
    control(sandbox, "/config", {"totalCount": "capped"})
    names = everyone(sandbox, DENSE)
    _, seen, learned = read_learning(settings(sandbox), DENSE)
    assert set(seen) == set(names)
    control(sandbox, "/config", {"totalCount": "capped", "listOrder": "name"})
    report, seen_again, _ = read_learning(settings(sandbox, page_size=100), DENSE, learned)
    assert set(seen_again) == set(names) and max(seen_again.values()) == 1
    assert report.known_prefixes == len(learned.prefixes)


def test_dense_client_true_totals_is_proven_and_cheap(sandbox: SandboxHandle) -> None:
    report, seen = read(settings(sandbox), DENSE)
    assert set(seen) == set(everyone(sandbox, DENSE)) and max(seen.values()) == 1
    assert report.coverage == "proven" and report.unreachable == 0 and report.gap_count == 0
    assert report.api_requests == sum(report.api_calls.values()) > report.pages_read
    # a cap ten times smaller makes every slice ten times smaller: ten times the requests per customer
    assert report.requests_per_1000 is not None and report.requests_per_1000 <= 10 * 10
    assert report.splits > 10 and report.slice_queries >= report.probe_queries


def test_true_totals_free_each_split_slices_sampled_names_once_it_is_settled(sandbox: SandboxHandle) -> None:
    async def go() -> tuple[int, int]:
        async with AmiliClient(settings(sandbox)) as amili, amili.read(DENSE) as reader:
            async for _ in reader:
                pass
            splits = [s for s in reader._walk(reader._root) if s.split]
            return len(splits), sum(len(s.pool) for s in splits)

    splits, pooled = asyncio.run(go())
    assert splits > 10, "the dense client was not split: nothing shown"
    # kept to the end of the read, the pools grew with the client (memory flat in N)
    assert pooled == 0, f"{pooled} sampled names still held by settled split slices"


def test_dense_client_capped_totals_learns_what_the_alphabet_lacks(sandbox: SandboxHandle) -> None:
    control(sandbox, "/config", {"totalCount": "capped"})
    report, seen = read(settings(sandbox), DENSE)
    names = everyone(sandbox, DENSE)
    # every customer: what a family's first page misses ("kari öztürk" beyond the first 1,000 of
    # ~2,700 "kari") the learned alphabet finds ("ö" starts a word elsewhere)
    assert set(seen) == set(names) and max(seen.values()) == 1
    reached = {names[no].casefold()[:2] for no in seen}
    assert {"üb", "gó", "d'"} <= reached
    assert report.coverage == "unproven" and report.unreachable is None and report.probe_queries > 0
    # the learned alphabet, not the static one at every split: a cap ten times smaller makes every
    # slice ten times smaller, ten times the requests per customer
    assert report.requests_per_1000 is not None and report.requests_per_1000 <= 10 * 10


def test_name_ordered_pages_with_capped_totals_report_gaps(sandbox: SandboxHandle) -> None:
    control(sandbox, "/config", {"totalCount": "capped", "listOrder": "name"})
    # a first page of 100 under a cap of 1,000: the ratio of 1,000 under the real 10,000
    report, seen = read(settings(sandbox, page_size=100), DENSE)
    names = everyone(sandbox, DENSE)
    missing = set(names) - set(seen)
    assert missing and max(seen.values()) == 1
    assert report.coverage == "unproven" and report.complete and report.gap_count >= 1
    # the sums prove nothing here (the probes bring every split to the cap), but the first pages say
    # they are in name order: the splits learned from their slices' alphabetical starts only
    assert {g["kind"] for g in report.gaps} <= {"ordered-sample", "below-cap", "unmatched-names"}
    prefixes = [g["slice"]["name"] for g in report.gaps if g["slice"].get("name")]
    # a reported slice really misses customers: some missing name starts with it
    assert any(names[no].casefold().startswith(p) for p in prefixes for no in missing)
    assert len(str(report.gaps)) < 8_000
    # the names the snapshot knows teach the planner what name-ordered first pages hide
    again, seen_again = read(settings(sandbox, page_size=100), DENSE, known=list(names.values()))
    assert set(seen_again) == set(names) and again.known_names > 0


def test_names_equal_to_a_prefix_are_counted_exactly(sandbox: SandboxHandle) -> None:
    report, seen = read(settings(sandbox, slice_customerno="auto"), STUCK)
    names = everyone(sandbox, STUCK)
    unreachable = [no for no, name in names.items() if name.casefold() in ("fjord as", "") or name[:1] == " "]
    assert len(unreachable) > 1000  # more than the cap: no read of "fjord as" can complete
    assert set(seen) == set(names) - set(unreachable)
    assert report.coverage == "incomplete" and not report.complete
    assert report.unreachable == len(unreachable) and report.customerno_prefix is False
    assert any(g["kind"] == "shortfall" and g["exact"] for g in report.gaps)


def test_customerno_prefix_dimension_reads_what_names_cannot(sandbox: SandboxHandle) -> None:
    control(sandbox, "/config", {"customerNoFilter": "prefix"})
    report, seen = read(settings(sandbox, slice_customerno="auto"), STUCK)
    assert set(seen) == set(everyone(sandbox, STUCK)) and max(seen.values()) == 1
    assert report.coverage == "proven" and report.unreachable == 0 and report.customerno_prefix is True
    off, _ = read(settings(sandbox, slice_customerno="off"), STUCK)
    assert off.coverage == "incomplete" and off.customerno_prefix is None


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_full_size_dense_client_at_the_real_cap() -> None:
    """200,000 customers, dense families of every kind, the real 10,000 cap, true totals."""
    with running_sandbox({DENSE: 200_000}, seed=7, extra_args=["--name-mix", "dense"]) as sb:
        report, seen = read(settings(sb, page_size=1000, maximum_count=10_000), DENSE)
        with httpx.Client(timeout=60) as http:
            count = http.get(f"{sb.control_url}/clients/{DENSE}/count").json()["count"]
    assert len(seen) == count == 200_000 and max(seen.values()) == 1
    assert report.coverage == "proven" and report.unreachable == 0
    assert report.requests_per_1000 is not None and report.requests_per_1000 <= 10


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_full_size_dense_client_capped_totals_reaches_everyone() -> None:
    """The same client with capped totals: every customer reached by the learned alphabet, cheaply."""
    args = ["--name-mix", "dense", "--total-count", "capped"]
    with running_sandbox({DENSE: 200_000}, seed=7, extra_args=args) as sb:
        report, seen = read(settings(sb, page_size=1000, maximum_count=10_000), DENSE)
        with httpx.Client(timeout=60) as http:
            count = http.get(f"{sb.control_url}/clients/{DENSE}/count").json()["count"]
    assert len(seen) == count == 200_000 and max(seen.values()) == 1
    assert report.coverage == "unproven" and report.unreachable is None
    assert report.requests_per_1000 is not None and report.requests_per_1000 <= 10
