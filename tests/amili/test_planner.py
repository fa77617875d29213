"""The slicing planner on synthetic name sets: pure, no HTTP.

`simulate` plays an API over a list of names the way the reader uses the planner: a query that
matches `cap` or more customers is split (its first `page` matches are the sample), its children
are read, and while the true total exceeds what the children hold the probes are tried in order.
"""

from __future__ import annotations

import itertools
import random
import string
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.amili.planner import BROAD, KnownNames, Planner, Sample, fold
from service.config import DEFAULT_SLICE_ALPHABET


@dataclass
class Outcome:
    covered: Counter[int] = field(default_factory=Counter)
    requests: int = 0
    probes: int = 0
    shortfall: int = 0
    splits: int = 0


def matches(names: list[str], filters: dict[str, str]) -> list[int]:
    name, number = fold(filters.get("name", "")), fold(filters.get("customerno", ""))
    return [
        i
        for i, n in enumerate(names)
        if fold(n).startswith(name) and (not number or str(100000 + i).startswith(number))
    ]


@dataclass
class CappedSplit:
    filters: dict[str, str]
    pool: list[str]
    tried: set[str]
    totals: list[int]  # the children's totals as the API says them (at most the cap)


def simulate(
    names: list[str],
    planner: Planner,
    *,
    cap: int,
    page: int,
    true_totals: bool = True,
    known: KnownNames | None = None,
    order: str = "key",
) -> Outcome:
    """Plays the reader: children at once; with true totals the probes while a shortfall remains;
    with capped totals, once nothing is left to read, the sweep: every split slice tries what the
    learned alphabet (every first page's names) says can follow its prefix, and where its children
    surely hold less than the cap, the other probes a batch of 8 at a time."""
    out = Outcome()
    prior: Counter[str] = Counter()
    pairs: set[tuple[str, str]] = set()
    capped: list[CappedSplit] = []

    def learn(page_names: list[str]) -> None:
        for name in page_names:
            folded = fold(name or "")
            prior.update(folded)
            if folded:
                pairs.add(("", folded[0]))
                pairs.update(itertools.pairwise(folded))

    def run(filters: dict[str, str]) -> int:
        found = matches(names, filters)
        out.requests += 1
        first = sorted(found, key=lambda i: fold(names[i])) if order == "name" else found
        first_page = [names[i] for i in first[:page]]
        if len(found) < cap:
            out.covered.update(found)
            if not true_totals:
                learn(first_page)
            return len(found)
        sample = Sample(
            first_page, [str(100000 + i) for i in first[:page]], true_totals, prior, frozenset(pairs)
        )
        learn(first_page)
        plan = planner.split(filters, sample, known or KnownNames())
        assert plan is not None, f"cannot split {filters}"
        out.splits += 1
        totals = [run(child) for child in plan.children]
        if not true_totals:
            tried = {c["name"] for c in plan.children if "name" in c}
            capped.append(CappedSplit(filters, first_page, tried, totals))
            return cap
        held = sum(totals)
        probes = list(plan.probes)
        while held < len(found) and probes:
            out.probes += 1
            held += run(probes.pop(0))
        out.shortfall += max(len(found) - held, 0)
        return len(found)

    def sweep() -> bool:
        spawned = False
        for split in list(capped):
            sample = Sample(split.pool, (), False, prior, frozenset(pairs))
            plan = planner.split(split.filters, sample, known or KnownNames())
            assert plan is not None
            likely = [p for p in plan.probes[: plan.likely] if p["name"] not in split.tried]
            below_cap = max(split.totals, default=0) < cap and sum(split.totals) < cap
            if not likely and below_cap:
                likely = [p for p in plan.probes[plan.likely :] if p["name"] not in split.tried][:8]
            for probe in likely:
                split.tried.add(probe["name"])
                out.probes += 1
                split.totals.append(run(probe))
                spawned = True
        return spawned

    run({})
    while not true_totals and sweep():
        pass
    return out


def family(prefix: str, count: int, tails: list[str]) -> list[str]:
    return [f"{prefix}{tails[i % len(tails)]} {i:05d}" for i in range(count)]


def test_learns_characters_no_alphabet_has_from_the_sample() -> None:
    names = family("Über", 40, ["Transport", "Bygg"]) + family("Ola", 30, ["N", "Ø"]) + ["Ωmega AS"] * 3
    planner = Planner(DEFAULT_SLICE_ALPHABET)
    plan = planner.split({}, Sample(names[::5], true_totals=True))
    assert plan is not None
    assert {c["name"] for c in plan.children} == {"ü", "o", "ω"}  # only what the sample shows
    assert all(p["name"] not in {"ü", "o", "ω"} for p in plan.probes)
    assert plan.probes[0]["name"] in set(fold(DEFAULT_SLICE_ALPHABET))  # the static alphabet first


def test_capped_totals_read_the_learned_children_then_what_the_learned_alphabet_suggests() -> None:
    planner = Planner("AB", first_extra="", extra=" ")
    # the read has seen "ö" and "ç" start a word, and "-" follow an "i"
    pairs = frozenset({(" ", "ö"), (" ", "ç"), ("i", "-"), ("i", " "), ("", "k")})
    plan = planner.split({"name": "kari"}, Sample(["Kari Çelik 1", "Kari Berg 2"], (), False, {}, pairs))
    assert plan is not None
    assert [c["name"] for c in plan.children] == ["kari ç", "kari b"]  # what the sample shows
    likely = [p["name"] for p in plan.probes[: plan.likely]]
    assert sorted(likely) == [
        "kari ö",
        "kari-",
    ]  # the learned alphabet's, not yet a child; never a trailing space
    rest = [p["name"] for p in plan.probes[plan.likely :]]
    assert {"karia", "karib", "kari a"} <= set(rest) and not any(c.endswith(" ") for c in rest)


def test_capped_totals_reach_a_family_the_sample_missed_through_the_learned_alphabet() -> None:
    # "kari öztürk" comes last in key order: no first page of "kari" shows it, but "anne öztürk" teaches
    # that "ö" starts a word
    others = family("Kari ", 120, ["Hansen", "Berg", "Lie"]) + family("Anne ", 30, ["Öztürk", "Hansen"])
    names = random.Random(3).sample(others, len(others)) + family("Kari Öztürk", 12, [""])
    planner = Planner(DEFAULT_SLICE_ALPHABET)
    out = simulate(names, planner, cap=40, page=20, true_totals=False)
    assert set(out.covered) == set(range(len(names))) and max(out.covered.values()) == 1
    assert out.probes > 0
    # the learned alphabet is tried, not the static and broad ones: a few requests per split
    assert out.requests <= 12 * out.splits + len(names) // 20


def test_capped_totals_probe_on_where_the_children_surely_hold_less_than_the_cap() -> None:
    # "ÿ" follows a space nowhere the read can see: only the proven shortfall (the children of "kari"
    # hold 30 < cap 40) makes the broad alphabet worth trying
    names = family("Kari Berg", 30, [""]) + family("Kari ÿ", 15, [""])
    out = simulate(names, Planner(DEFAULT_SLICE_ALPHABET), cap=40, page=20, true_totals=False)
    assert set(out.covered) == set(range(len(names)))


def test_capped_totals_sum_at_the_cap_is_no_proof() -> None:
    # the children hold 40 = the cap, "ÿ" is seen nowhere: nothing says a customer is missing
    names = family("Kari Berg", 40, [""]) + family("Kari ÿ", 5, [""])
    out = simulate(names, Planner(DEFAULT_SLICE_ALPHABET), cap=40, page=20, true_totals=False)
    assert set(range(len(names))) - set(out.covered) == set(range(40, 45))


def test_case_folding_matches_the_sandbox() -> None:
    planner = Planner("A")
    plan = planner.split({"name": "STRA"}, Sample(["Straße 1", "STRAND 2", "strand 3"], true_totals=True))
    assert plan is not None
    # ß folds to "ss": one child "stras" holds it; "strand" in any case is one child
    assert sorted(c["name"] for c in plan.children) == ["stran", "stras"]


def test_names_a_prefix_cannot_reach_are_counted() -> None:
    planner = Planner("AB")
    sample = Sample(["Ola", "ola", "Ola ", "Ola  X", "Olav"], true_totals=True)
    plan = planner.split({"name": "ola"}, sample)
    assert plan is not None
    assert [c["name"] for c in plan.children] == ["olav"]
    # equal to the prefix (twice, any case), a trailing space, two spaces in a row
    assert plan.unmatched == 4
    top = planner.split({}, Sample(["", " Leading", None, "Ola"], true_totals=True))
    assert top is not None and top.unmatched == 3  # empty, missing, leading space
    assert [c["name"] for c in top.children] == ["o"]


def test_unreachable_names_switch_to_customerno_when_it_is_a_prefix_match() -> None:
    sample = Sample(["Fjord AS"] * 9 + ["Fjord ASA"], [str(1000000 + i) for i in range(10)], True)
    off = Planner("AB", customerno_prefix=False)
    assert off.wants_customerno({"name": "fjord as"}, sample)
    by_name = off.split({"name": "fjord as"}, sample)
    assert by_name is not None and by_name.dimension == "name"
    on = Planner("AB", customerno_prefix=True)
    plan = on.split({"name": "fjord as"}, sample)
    assert plan is not None and plan.dimension == "customerno"
    assert [c["customerno"] for c in plan.children] == ["1", *"023456789"]
    assert all(c["name"] == "fjord as" for c in plan.children)
    deeper = on.split({"name": "fjord as", "customerno": "1"}, sample)
    assert deeper is not None and {c["customerno"] for c in deeper.children} == {
        f"1{d}" for d in "0123456789"
    }


def test_known_names_teach_the_planner() -> None:
    known = KnownNames(["Gómez Hansen", "Gómez Berg", "Geir Lie", "Gunnar Moe", None, ""])
    assert known.next_chars("g") == ["e", "u", "ó"]
    assert known.next_chars("gómez ") == ["b", "h"]
    plan = Planner("A").split({"name": "g"}, Sample(["Geir X"], true_totals=True), known)
    assert plan is not None and {"gó", "ge", "gu"} <= {c["name"] for c in plan.children}


def test_prefixes_an_earlier_read_left_teach_the_planner_as_the_names_do() -> None:
    names = ["Kari A", "Kari B", "Kåre", "Ola", "Ölen", "Über"] * 30
    from_names = KnownNames(names, dense=20)
    # what a read splitting the whole client and "kar" would leave (a space after "kari")
    learned = KnownNames.from_prefixes({"": "koöü", "kari": " ", "kari ": "ab"}, 180, dense=20)
    assert len(learned) == 180 and learned.prefixes == 3
    for prefix in ("", "kari", "kari "):
        assert learned.next_chars(prefix) == from_names.next_chars(prefix)
    sample = Sample(["ola"], ("1",), True)
    assert Planner("abc").split({}, sample, learned) == Planner("abc").split({}, sample, from_names)
    # not a folded prefix with its characters (a damaged store): skipped, never trusted
    odd = KnownNames.from_prefixes({"Kari": "a", "k": "B", "ok": "ab", 3: "a", "x": 4}, 0)  # type: ignore[dict-item]
    assert odd.prefixes == 1 and odd.next_chars("ok") == ["a", "b"] and odd.next_chars("kari") == []


def test_name_ordered_first_pages_leave_a_shortfall_the_probes_close() -> None:
    names = (
        family("Gómez", 60, list("ABCDEFGH")) + family("Geir", 20, list("AB")) + family("Gunnar", 5, ["X"])
    )
    planner = Planner(DEFAULT_SLICE_ALPHABET)
    out = simulate(names, planner, cap=20, page=10, order="name")
    assert sorted(out.covered) == list(range(len(names))) and max(out.covered.values()) == 1
    assert out.probes > 0 and out.shortfall == 0
    capped = simulate(names, planner, cap=20, page=10, order="name", true_totals=False)
    missing = set(range(len(names))) - set(capped.covered)
    # capped totals prove nothing: what no page shows ("ó" or "u" after a "g") is never tried
    assert missing and all(names[i].startswith(("Gómez", "Gunnar")) for i in missing)


# -- property: random name sets with random dense prefixes are covered when totals are true ----------------

TAIL = st.text(alphabet=st.sampled_from(BROAD + " "), min_size=0, max_size=4).filter(
    lambda t: "  " not in t and "#" not in t
)
PREFIX = st.text(alphabet=st.sampled_from(BROAD.replace("#", "") + "ÜÓ"), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefixes=st.lists(PREFIX, min_size=1, max_size=4),
    tails=st.lists(TAIL, min_size=1, max_size=12),
    sizes=st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=4),
    cap=st.integers(min_value=5, max_value=40),
    page=st.integers(min_value=1, max_value=20),
    order=st.sampled_from(["key", "name"]),
)
def test_random_dense_families_are_always_covered_with_true_totals(
    prefixes: list[str], tails: list[str], sizes: list[int], cap: int, page: int, order: str
) -> None:
    names: list[str] = []
    for k, prefix in enumerate(prefixes):
        for i in range(sizes[k % len(sizes)]):
            # a unique fixed-width end: no name is a proper prefix of another, none ends in a space
            names.append(f"{prefix}{tails[(i * 7 + k) % len(tails)]}#{len(names):05d}")
    names = [n for n in names if not n[0].isspace()]
    out = simulate(names, Planner(DEFAULT_SLICE_ALPHABET), cap=cap, page=min(page, cap), order=order)
    assert out.shortfall == 0
    assert set(out.covered) == set(range(len(names)))
    assert max(out.covered.values(), default=1) == 1  # disjoint children: nobody read twice


def test_probe_candidates_cover_digits_letters_and_punctuation() -> None:
    assert set(string.digits + string.ascii_lowercase) <= set(BROAD)
    assert {"é", "ü", "ó", "ç", "ñ", "š", "ż", "ø", "'", ".", "-", "&"} <= set(BROAD)
    assert len(BROAD) == len(set(BROAD)) and " " not in BROAD
