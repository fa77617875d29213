"""Slicing strategies: how a query that hits the `maximumCount` cap is split into smaller queries.

A strategy gets the filters of a truncated slice and how many splits led to it (`level`, 0 for the
request's own query) and answers the filter sets of its children, or None when it cannot split
further (the reader then reads that slice capped and reports coverage "incomplete"). Children must
be disjoint (a customer in two slices ends the read with a duplicate-customerNo error) and should
together cover the parent.

**Name prefixes** (`NamePrefixSlicing`, setting `slicing=name-prefix`). Assumed filter semantics:
`name=X` matches names that start with X, case-insensitively (the API docs say nothing; the sandbox
implements exactly this, and a real API must be checked before trusting it). The first split asks
one slice per first character: the alphabet (`slice_alphabet`: digits, A-Z, ÆØÅ by default),
upper-cased and de-duplicated (`a` and `A` are one slice), plus the punctuation names are seen to
start with (`FIRST_PUNCTUATION`: quotes, `#`, `&`, `'`, `(`, `+`, `-`, `.`, `@`, `«` ...). A child
that is still truncated is refined with the alphabet plus the punctuation seen inside names
(`PUNCTUATION`: space, `-`, `.`, `,`, `'`, `&`, `/`, `(`, `)`): `A` -> `AA` ... `AÅ`, `A-` ....
A filter value never ends in whitespace (an API may trim it, and `OLA ` would then also match
`OLAV`, overlapping its siblings): the space is expanded at once (`OLA` -> `OLA A`, `OLA B` ...).
What prefixes cannot reach:

- names that start with a character outside the first-level set, or continue (after a refined
  prefix) with a character outside the refinement set (É, Ü, Č, emoji ...);
- names exactly equal to a refined prefix (a name `ABB` under the refined prefix `ABB`: every
  child asks for one more character), names ending in a space, and an empty or missing name.

A prefix filter cannot express "any other first character", so these customers are not read by the
slices. The reader detects the gap by sums when the API reports true counts (`totalCount >
maximumCount`): the slices then add up to less than the parent's total and coverage is
"incomplete". When the API caps `totalCount` at `maximumCount`, the gap is invisible and coverage is
"unproven"; removals are then still confirmed one by one with GET (a customer that still exists is
a coverage gap, not a removal).

**Filter sets** (`FilterSetSlicing`, setting `slicing=filter-sets`): the request's query is split
into the configured list of filter sets (`slice_filter_sets`, e.g. one per `customercategory`),
each merged with the request's own filters (a set that contradicts them is skipped). A set that is
still truncated is refined by name prefixes. Whether the sets cover everything is the operator's
claim; the sums check it when true counts are known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from service.config import ApiSettings, SlicingStrategy

# first characters beyond letters and digits (company names: "Fjordhytta" AS, #1 Pizza, @Home, «Bøker»)
FIRST_PUNCTUATION = "\"#$%&'()*+,-./:;<=>?@[]_«»“„‘’!¡¿"
# characters tried after a refined prefix (inside names: "Anne-Lise", "St. Olav", "O'Neill", "A/S")
PUNCTUATION = " -.,'&/()"
MAX_PREFIX_LENGTH = 12


@runtime_checkable
class SliceStrategy(Protocol):
    """Splits a truncated slice. Return None (or an empty list) when it cannot split further."""

    name: str

    def split(self, filters: Mapping[str, str], level: int) -> list[dict[str, str]] | None: ...


def normalize_alphabet(alphabet: str, extra: str = "") -> str:
    """Upper-case, de-duplicate (the filter is case-insensitive: `a` and `A` are one slice), keep order."""
    seen: dict[str, None] = {}
    for char in alphabet + extra:
        upper = char.upper()
        key = upper if len(upper) == 1 else char  # "ß".upper() == "SS": keep the character itself
        seen.setdefault(key, None)
    return "".join(seen)


class NamePrefixSlicing:
    name = "name-prefix"

    def __init__(
        self,
        alphabet: str,
        *,
        first_extra: str = FIRST_PUNCTUATION,
        extra: str = PUNCTUATION,
        max_prefix_length: int = MAX_PREFIX_LENGTH,
    ) -> None:
        self.first = normalize_alphabet(alphabet, first_extra).replace(" ", "")
        self.alphabet = normalize_alphabet(alphabet, extra)
        if not self.first or not self.alphabet:
            raise ValueError("name-prefix slicing needs a non-empty alphabet")
        self.max_prefix_length = max_prefix_length

    def split(self, filters: Mapping[str, str], level: int) -> list[dict[str, str]] | None:
        prefix = filters.get("name", "")
        if len(prefix) >= self.max_prefix_length:
            return None
        if not prefix.strip():  # a name does not start with a space: no whitespace first characters
            return [{**filters, "name": char} for char in self.first if not char.isspace()]
        words = [char for char in self.alphabet if not char.isspace()]
        prefixes: list[str] = []
        for char in self.alphabet:
            if not char.isspace():
                prefixes.append(prefix + char)
            else:  # never end a filter value on whitespace: expand "P " at once into "P A", "P B", ...
                prefixes.extend(prefix + char + other for other in words)
        return [{**filters, "name": p} for p in prefixes]


def _merge(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str] | None:
    """The intersection of two filter sets, or None when it is empty (values compare case-insensitively;
    for `name`, prefixes intersect when one extends the other)."""
    merged = dict(base)
    for key, value in extra.items():
        key = key.lower()
        if key not in merged:
            merged[key] = value
            continue
        old = merged[key]
        if key == "name":
            a, b = old.casefold(), value.casefold()
            if a.startswith(b):
                continue
            if b.startswith(a):
                merged[key] = value
                continue
            return None
        if old.casefold() != value.casefold():
            return None
    return merged


class FilterSetSlicing:
    name = "filter-sets"

    def __init__(self, filter_sets: Sequence[Mapping[str, str]], then: SliceStrategy | None = None) -> None:
        if not filter_sets:
            raise ValueError("filter-sets slicing needs at least one filter set (setting slice_filter_sets)")
        self.filter_sets = [dict(s) for s in filter_sets]
        self.then = then

    def split(self, filters: Mapping[str, str], level: int) -> list[dict[str, str]] | None:
        if level == 0:
            children = [m for s in self.filter_sets if (m := _merge(filters, s)) is not None]
            return children or None
        return self.then.split(filters, level) if self.then is not None else None


def make_strategy(settings: ApiSettings) -> SliceStrategy:
    by_name = NamePrefixSlicing(settings.slice_alphabet)
    if settings.slicing == SlicingStrategy.FILTER_SETS:
        return FilterSetSlicing(settings.slice_filter_sets, then=by_name)
    return by_name
