"""`KnownNames`: what the caller's own names say about dense prefixes, built in one pass and small."""

from __future__ import annotations

import random

import pytest

from service.amili.planner import KnownNames, fold


def brute_force(names: list[str], dense: int) -> dict[str, str]:
    """Every prefix at least `dense` folded names start with, and the characters that follow it."""
    folded = [fold(n) for n in names if n]
    out: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for name in folded:
        for depth in range(len(name) + 1):
            counts[name[:depth]] = counts.get(name[:depth], 0) + 1
            if depth < len(name):
                out.setdefault(name[:depth], set()).add(name[depth])
    return {p: "".join(sorted(out.get(p, ()))) for p, n in counts.items() if n >= dense}


def test_next_chars_of_dense_prefixes_only() -> None:
    names = ["Gómez Hansen", "Gómez Berg", "Geir Lie", "Gunnar Moe", "gómez berg", None, ""]
    known = KnownNames(names, dense=2)
    assert len(known) == 5  # every name read, duplicates included
    assert known.next_chars("") == ["g"]
    assert known.next_chars("g") == ["e", "u", "ó"]
    assert known.next_chars("gómez ") == ["b", "h"]
    assert known.next_chars("gómez b") == ["e"]  # two customers called "gómez berg"
    assert known.next_chars("ge") == []  # one name only: not dense, not kept
    assert known.next_chars("x") == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_pass_agrees_with_counting_every_prefix(seed: int) -> None:
    rng = random.Random(seed)
    words = ["Kari", "Karl", "Anne-Marie", "Anne", "Über", "D'Angelo", "van der", "Ola", "Åse", "Öz"]
    tails = ["Hansen", "Öztürk", "Çelik", "Berg", "B", "", "Šimić", "Lie AS", "L"]
    names = [f"{rng.choice(words)} {rng.choice(tails)}".strip() for _ in range(2_000)]
    for dense in (1, 7, 60, 500):
        known = KnownNames(names, dense=dense)
        want = brute_force(names, dense)
        assert {p: "".join(known.next_chars(p)) for p in want} == want
        # kept: only the prefixes where names part or end; the others are answered from them
        assert known.prefixes <= len(want)


def test_a_stream_is_read_once_and_must_be_folded_and_sorted() -> None:
    stream = iter(["anne b", "anne b", "anne c", "kari a"])
    known = KnownNames(stream, dense=3)
    assert known.next_chars("anne ") == ["b", "c"] and len(known) == 4
    with pytest.raises(ValueError, match="folded and in code point order"):
        KnownNames(iter(["kari", "anne"]))
    with pytest.raises(ValueError, match="folded and in code point order"):
        KnownNames(iter(["Anne"]))


def test_a_million_names_keep_a_few_thousand_prefixes() -> None:
    rng = random.Random(5)
    first = ["kari", "anne", "ola", "per", "d'angelo", "gómez", "dr."]
    last = [f"{a}{b}sen" for a in "abcdefghijklmnopqrstuvwxyzæøå" for b in "aeiouy"]
    names = sorted(f"{rng.choice(first)} {rng.choice(last)} {rng.randrange(1000)}" for _ in range(200_000))
    known = KnownNames(iter(names), dense=625)
    assert len(known) == 200_000
    assert 0 < known.prefixes < 2_000
    assert known.next_chars("kari ") == sorted({n[5] for n in names if n.startswith("kari ")})
