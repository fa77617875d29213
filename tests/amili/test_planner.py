"""The slicing planner on synthetic name sets: pure, no HTTP.

`simulate` plays an API over a list of names the way the reader uses the planner: a query that
matches `cap` or more customers is split (its first `page` matches are the sample), its children
are read, and while the true total exceeds what the children hold the probes are tried in order.
"""

from __future__ import annotations

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
    out = Outcome()
    prior: Counter[str] = Counter()

    def run(filters: dict[str, str]) -> int:
        found = matches(names, filters)
        out.requests += 1
        if len(found) < cap:
            out.covered.update(found)
            return len(found)
        first = sorted(found, key=lambda i: fold(names[i])) if order == "name" else found
        sample = Sample(
            [names[i] for i in first[:page]], [str(100000 + i) for i in first[:page]], true_totals, prior
        )
        for name in sample.names:
            prior.update(fold(name or ""))
        plan = planner.split(filters, sample, known or KnownNames())
        assert plan is not None, f"cannot split {filters}"
        out.splits += 1
        held = sum(min(run(child), len(found) if true_totals else cap) for child in plan.children)
        probes = list(plan.probes)
        while true_totals and held < len(found) and probes:
            out.probes += 1
            held += run(probes.pop(0))
        if true_totals:
            out.shortfall += max(len(found) - held, 0)
        return len(found)

    run({})
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


def test_capped_totals_try_the_static_alphabet_at_once() -> None:
    planner = Planner("AB", first_extra="", extra=" ")
    plan = planner.split({"name": "kari"}, Sample(["Kari Çelik 1", "Kari-Anne 2"], true_totals=False))
    assert plan is not None and plan.probes == []
    children = [c["name"] for c in plan.children]
    # learned first ("kari ç", "kari-"), then A, B and the space expanded at once (never a trailing space)
    assert children[:2] == ["kari ç", "kari-"]
    assert {"karia", "karib", "kari a", "kari b"} <= set(children)
    assert not any(c.endswith(" ") for c in children)


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
    assert missing and all(names[i].startswith("Gómez") for i in missing)  # "gó" never seen, never tried


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
