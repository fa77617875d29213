"""Slicing strategies: how a query that hits the `maximumCount` cap is split into smaller queries.

A strategy gets the filters of a truncated slice, how many splits led to it (`level`, 0 for the
request's own query), what the truncated query's first page showed (`Sample`) and the names the
caller already knows (`KnownNames`), and answers a `Split` (children now, probes while a shortfall
remains), or None when it cannot split further (the reader then reads that slice capped and reports
coverage "incomplete"). Children must be disjoint (a customer in two slices ends the read with a
duplicate-customerNo error) and should together cover the parent.

**Name prefixes** (`NamePrefixSlicing`, setting `slicing=name-prefix`): the adaptive planner of
`planner.py` (learned characters, the static alphabet `slice_alphabet`, shortfall probes, case
folding, and what a prefix cannot reach). `slice_customerno` (`off`, `on`, `auto`) lets a slice whose
names a prefix cannot separate (names equal to the prefix, empty names) be split by customerNo
prefix instead; `auto` asks the API once per client object whether `customerno` is a prefix match.

**Filter sets** (`FilterSetSlicing`, setting `slicing=filter-sets`): the request's query is split
into the configured list of filter sets (`slice_filter_sets`, e.g. one per `customercategory`),
each merged with the request's own filters (a set that contradicts them is skipped). A set that is
still truncated is refined by name prefixes. Whether the sets cover everything is the operator's
claim; the sums check it when true counts are known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from service.config import ApiSettings, CustomerNoSlicing, SlicingStrategy

from .planner import (
    FIRST_PUNCTUATION,
    MAX_PREFIX_LENGTH,
    NO_NAMES,
    PUNCTUATION,
    KnownNames,
    Planner,
    Sample,
    Split,
)

__all__ = [
    "FIRST_PUNCTUATION",
    "PUNCTUATION",
    "FilterSetSlicing",
    "NamePrefixSlicing",
    "SliceStrategy",
    "make_strategy",
]


@runtime_checkable
class SliceStrategy(Protocol):
    """Splits a truncated slice. Return None when it cannot split further."""

    name: str
    # does the API match `customerno` as a prefix? None: not known yet (the reader probes once)
    customerno_prefix: bool | None

    def wants_customerno(self, filters: Mapping[str, str], sample: Sample) -> bool: ...

    def split(
        self, filters: Mapping[str, str], level: int, sample: Sample, known: KnownNames = NO_NAMES
    ) -> Split | None: ...


class NamePrefixSlicing:
    name = "name-prefix"

    # Same keywords as Planner (kept): the strategy is configured by the planner's knobs and forwards them.
    def __init__(
        self,
        alphabet: str,
        *,
        first_extra: str = FIRST_PUNCTUATION,
        extra: str = PUNCTUATION,
        max_prefix_length: int = MAX_PREFIX_LENGTH,
        customerno_prefix: bool | None = False,
    ) -> None:
        self.planner = Planner(
            alphabet,
            first_extra=first_extra,
            extra=extra,
            max_prefix_length=max_prefix_length,
            customerno_prefix=customerno_prefix,
        )

    @property
    def customerno_prefix(self) -> bool | None:
        return self.planner.customerno_prefix

    @customerno_prefix.setter
    def customerno_prefix(self, value: bool | None) -> None:
        self.planner.customerno_prefix = value

    def wants_customerno(self, filters: Mapping[str, str], sample: Sample) -> bool:
        return self.planner.wants_customerno(filters, sample)

    def split(
        self, filters: Mapping[str, str], level: int, sample: Sample, known: KnownNames = NO_NAMES
    ) -> Split | None:
        return self.planner.split(filters, sample, known)


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

    def __init__(
        self, filter_sets: Sequence[Mapping[str, str]], then: NamePrefixSlicing | None = None
    ) -> None:
        if not filter_sets:
            raise ValueError("filter-sets slicing needs at least one filter set (setting slice_filter_sets)")
        self.filter_sets = [dict(s) for s in filter_sets]
        self.then = then

    @property
    def customerno_prefix(self) -> bool | None:
        return self.then.customerno_prefix if self.then is not None else False

    @customerno_prefix.setter
    def customerno_prefix(self, value: bool | None) -> None:
        if self.then is not None:
            self.then.customerno_prefix = value

    def wants_customerno(self, filters: Mapping[str, str], sample: Sample) -> bool:
        return self.then is not None and self.then.wants_customerno(filters, sample)

    def split(
        self, filters: Mapping[str, str], level: int, sample: Sample, known: KnownNames = NO_NAMES
    ) -> Split | None:
        if level == 0:
            children = [m for s in self.filter_sets if (m := _merge(filters, s)) is not None]
            return Split("name", children) if children else None
        return self.then.split(filters, level, sample, known) if self.then is not None else None


_CUSTOMERNO = {CustomerNoSlicing.OFF: False, CustomerNoSlicing.ON: True, CustomerNoSlicing.AUTO: None}


def make_strategy(settings: ApiSettings) -> SliceStrategy:
    by_name = NamePrefixSlicing(
        settings.slice_alphabet, customerno_prefix=_CUSTOMERNO[settings.slice_customerno]
    )
    if settings.slicing == SlicingStrategy.FILTER_SETS:
        return FilterSetSlicing(settings.slice_filter_sets, then=by_name)
    return by_name
