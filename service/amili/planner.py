"""The slicing planner: which queries split a truncated one. Pure: no I/O, no clock, no randomness.

A query that hits the `maximumCount` cap is split into children that each add one character to a
prefix filter (`name`, or `customerno` where the API matches it as a prefix). Which characters:

* **Learned** ones first: the characters that follow the prefix in the names on the truncated
  query's own first page (a free sample of up to `pagesize` matches) and in the names the caller
  already knows (the local snapshot, `KnownNames`).
* **Likely** ones, as probes: the characters the client's *learned alphabet* (`Sample.pairs`: the
  pairs of consecutive characters in the names the read has seen) says can follow the prefix's
  last character (after a space: any character seen to start a word); for the first two
  characters, the configured static alphabet too.
* The **configured static alphabet** (`slice_alphabet`, plus `FIRST_PUNCTUATION` at the first
  character and `PUNCTUATION` deeper), then `BROAD` (digits, ASCII, Latin-1 and Latin Extended-A
  letters, whitespace and punctuation), as further probes.
* **True totals**: after the children's first answers, the parent's *shortfall* is its total minus
  the sum of its children's totals. While it is above zero the reader tries the probes in order
  (likely first, then by how often each character was seen). A probe is the child's own first
  request, so a probe that finds customers is already a slice; an empty one costs one small answer.
  Coverage is proven only when every shortfall is zero.
* **Capped totals**: no sum tells what is missing. When nothing is left to read the reader asks the
  planner again with the alphabet learned by then and tries every likely probe not yet tried (a
  sweep, repeated until it adds nothing); the other probes only where the children surely hold less
  than the cap.

**Case.** The sandbox matches `name` as `casefold(name).startswith(casefold(value))` (full Unicode
case folding: `ß` matches `ss`, `Σ` matches `σ`). The planner assumes exactly that: it compares
characters after `str.casefold`, de-duplicates children by their folded value, and sends the folded
prefix. An API that also ignores accents (a SQL `_AI` collation) would make `U` and `Ü` overlap: the
reader's duplicate-customerNo guard then stops the read instead of publishing twice.

**What a prefix cannot reach, and what happens to it.**

* A filter value never ends in whitespace (an API may trim it, and `OLA ` would then match `OLAV`,
  overlapping its siblings), so a space is expanded at once: `OLA` → `OLA A`, `OLA B`, ... A name
  that starts with whitespace, has two whitespace characters in a row at the split point, ends in
  whitespace right after the prefix, is empty or missing, or is exactly equal to the prefix is not
  matched by any child.
* Such names on the sample are counted (`Split.unmatched`); they remain a shortfall (true totals:
  an exact count) or a reported gap (capped).

**By customerNo.** When the API matches `customerno` as a prefix (setting `slice_customerno=on`, or
`auto` and the reader's one probe said so), every split goes by customerNo prefix instead: numbers
are unique and their alphabet is closed (digits first; any other character seen or probed), so the
children cover the parent whatever the names are, and the probes find any other character.
"""

from __future__ import annotations

import bisect
import string
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BROAD",
    "FIRST_PUNCTUATION",
    "MAX_PREFIX_LENGTH",
    "PUNCTUATION",
    "KnownNames",
    "Planner",
    "Sample",
    "Split",
    "fold",
    "fold_alphabet",
]

# first characters beyond letters and digits (company names: "Fjordhytta" AS, #1 Pizza, @Home, «Bøker»)
FIRST_PUNCTUATION = "\"#$%&'()*+,-./:;<=>?@[]_«»“„‘’!¡¿"
# characters tried after a prefix (inside names: "Anne-Lise", "St. Olav", "O'Neill", "A/S")
PUNCTUATION = " -.,'&/()"
MAX_PREFIX_LENGTH = 40

Dimension = Literal["name", "customerno"]


def fold(text: str) -> str:
    """The comparison form of a name or prefix (see the module docs)."""
    return text.casefold()


def fold_alphabet(alphabet: str, extra: str = "") -> str:
    """Fold and de-duplicate, keep order; a character whose fold is longer than one (`ß`) is dropped:
    its fold's first character is tried anyway."""
    seen: dict[str, None] = {}
    for char in alphabet + extra:
        folded = fold(char)
        if len(folded) == 1:
            seen.setdefault(folded, None)
    return "".join(seen)


def _broad() -> str:
    letters = "".join(chr(c) for c in range(0xC0, 0x180) if chr(c).isalpha())  # Latin-1 + Extended-A
    punctuation = string.punctuation + "«»“”„‘’‚‹›–—¡¿§°·"
    return fold_alphabet(string.digits + string.ascii_lowercase + letters + punctuation)


# every character probed when a shortfall remains (whitespace is handled by expansion)
BROAD = _broad()


def _common(a: str, b: str) -> int:
    """The length of the longest common prefix (a bisection on slice comparisons, which run in C)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while hi - lo > 1:  # a[:lo] == b[:lo], a[:hi] != b[:hi]
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class KnownNames:
    """What the caller's own names (e.g. the local snapshot's) say about the dense prefixes: for every
    prefix at least `dense` names start with, the characters that follow it.

    Built in one pass over the names in folded code point order (`SnapshotCache.names` streams them
    so): the prefixes where consecutive names part (their common prefixes) form a stack of open
    ranges, each closed when a name leaves it; a closed range of at least `dense` names is kept
    with the characters seen after its prefix. A prefix where no names part (all of them go on
    with the same character) is answered from the shortest kept prefix that extends it. A few
    thousand entries at a million names, where a sorted list of every name took ~60 MB; a split
    asks only about prefixes with at least `maximumCount` matches. A collection (list, tuple, set)
    is folded and sorted here; any other iterable must already be folded and sorted (a
    `ValueError` says so otherwise).
    """

    def __init__(self, names: Iterable[str | None] = (), *, dense: int = 1) -> None:
        self.dense = max(1, dense)
        self._next: dict[str, str] = {}
        self._count = 0
        if isinstance(names, Collection):
            self._build(sorted(fold(n) for n in names if n))
        else:
            self._build(self._checked(names))
        self._keys = sorted(self._next)

    @staticmethod
    def _checked(names: Iterable[str | None]) -> Iterator[str]:
        last = ""
        for name in names:
            if not name:
                continue
            if name < last or fold(name) != name:
                raise ValueError(
                    "known names streamed from an iterator must be folded and in code point order"
                )
            last = name
            yield name

    def _build(self, names: Iterable[str]) -> None:
        limit = MAX_PREFIX_LENGTH
        # open ranges, shallowest first: [prefix length, index of the range's first name, characters after it]
        stack: list[tuple[int, int, set[str]]] = [(0, 0, set())]
        prev: str | None = None
        index = 0
        for index, full in enumerate(names):
            name = full[:limit]
            if prev is None:
                prev = name
                if name:
                    stack[0][2].add(name[0])
                continue
            common = _common(prev, name)
            first = index - 1
            while stack[-1][0] > common:  # ranges the new name leaves
                depth, first, chars = stack.pop()
                self._keep(prev[:depth], index - first, chars)
            if stack[-1][0] < common:
                stack.append((common, first, set()))
            chars = stack[-1][2]
            if len(prev) > common:
                chars.add(prev[common])
            if len(name) > common:
                chars.add(name[common])
            prev = name
        if prev is None:
            return
        self._count = index + 1
        while stack:
            depth, first, chars = stack.pop()
            self._keep(prev[:depth], self._count - first, chars)

    @classmethod
    def from_prefixes(cls, prefixes: Mapping[str, str], names: int = 0, *, dense: int = 1) -> KnownNames:
        """The dense prefixes as an earlier read left them (`CustomerRead.name_prefixes`: each name
        prefix it split, with the characters that followed it), for `names` customers. Loading a few
        thousand entries takes milliseconds where the pass over a million snapshot names took
        seconds. Entries that are not a folded prefix with its following characters are skipped:
        this is a hint, a read proves its coverage whatever it is taught."""
        known = cls(dense=dense)
        for prefix, chars in prefixes.items():
            if (
                isinstance(prefix, str)
                and isinstance(chars, str)
                and len(prefix) < MAX_PREFIX_LENGTH
                and fold(prefix) == prefix
                and fold(chars) == chars
            ):
                known._next[prefix] = "".join(sorted(set(chars)))
        known._keys = sorted(known._next)
        known._count = max(0, names)
        return known

    def _keep(self, prefix: str, count: int, chars: set[str]) -> None:
        if count >= self.dense:  # also a name many customers bear (no characters after it)
            self._next[prefix] = "".join(sorted(chars))

    def __len__(self) -> int:
        """How many names were read."""
        return self._count

    @property
    def prefixes(self) -> int:
        """How many dense prefixes are kept."""
        return len(self._next)

    def next_chars(self, prefix: str, limit: int = 512) -> list[str]:
        """The distinct characters that follow `prefix` (folded) in the known names, in code point
        order; none when fewer than `dense` names start with it."""
        chars = self._next.get(prefix)
        if chars is None:
            at = bisect.bisect_left(self._keys, prefix)
            longer = self._keys[at] if at < len(self._keys) else ""
            chars = longer[len(prefix)] if longer.startswith(prefix) and len(longer) > len(prefix) else ""
        return list(chars)[:limit]


NO_NAMES = KnownNames()


@dataclass(frozen=True)
class Sample:
    """What the truncated query's first page showed."""

    names: Sequence[str | None] = ()
    customer_nos: Sequence[str] = ()
    true_totals: bool = False  # totalCount > maximumCount: the API reports true counts
    # how often each (folded) character was seen in the names of the read so far: probes go in
    # this order (a letter seen everywhere before a digit never seen), then in alphabet order
    prior: Mapping[str, int] = field(default_factory=dict)
    # the client's learned alphabet: (character, the character after it) pairs seen in the folded
    # names read so far, ("", c) for a first character; a prefix ending in `a` is tried next with
    # what followed an `a` anywhere (after whitespace: what starts a word)
    pairs: Set[tuple[str, str]] = frozenset()


@dataclass
class Split:
    """Children to read now, and probes to try while the parent's shortfall is above zero."""

    dimension: Dimension
    children: list[dict[str, str]]
    probes: list[dict[str, str]] = field(default_factory=list)
    # the first `likely` probes add a character the learned alphabet says can follow the prefix: with
    # capped totals these are tried whatever the sums say (nothing else can find what the sample missed)
    likely: int = 0
    unmatched: int = 0  # sampled customers that no child (nor probe) can match
    unmatched_prefixes: list[str] = field(default_factory=list)  # where, cut to the split point


class Planner:
    """Plans the split of a truncated slice; one instance serves every read of a client object."""

    def __init__(
        self,
        alphabet: str,
        *,
        first_extra: str = FIRST_PUNCTUATION,
        extra: str = PUNCTUATION,
        max_prefix_length: int = MAX_PREFIX_LENGTH,
        customerno_prefix: bool | None = False,
        broad: str = BROAD,
    ) -> None:
        self.first = "".join(c for c in fold_alphabet(alphabet, first_extra) if not c.isspace())
        self.alphabet = fold_alphabet(alphabet, extra)
        if not self.first or not self.alphabet:
            raise ValueError("name-prefix slicing needs a non-empty alphabet")
        self.words = "".join(c for c in self.alphabet if not c.isspace())
        self.broad = "".join(c for c in broad if not c.isspace())
        self.max_prefix_length = max_prefix_length
        # does the API match `customerno` as a prefix? True/False, or None: not known yet (probe once)
        self.customerno_prefix = customerno_prefix

    # -- decisions --------------------------------------------------------------------------------------

    def wants_customerno(self, filters: Mapping[str, str], sample: Sample) -> bool:
        """Would this split go by customerNo if the API matched it as a prefix? Always: customer
        numbers are unique and (mostly) digits, so their prefixes cover a slice whatever its names are
        (the caller asks the API once whether it matches `customerno` as a prefix)."""
        return True

    def split(self, filters: Mapping[str, str], sample: Sample, known: KnownNames = NO_NAMES) -> Split | None:
        """The split of a truncated slice, or None when it cannot be split further."""
        if self.customerno_prefix and self.wants_customerno(filters, sample):
            return self._split_customerno(filters, sample)
        if "customerno" in filters:
            return None  # an exact customerNo match: nothing to split
        return self._split_name(filters, sample, known)

    # -- by name ----------------------------------------------------------------------------------------

    @staticmethod
    def _unreachable(name: str | None, prefix: str) -> bool:
        """A sampled name (matching `prefix`) that no child of `prefix` can match."""
        folded = fold(name or "")
        if not folded.startswith(prefix):
            return False  # not under this prefix (the API's match differs): not our business here
        rest = folded[len(prefix) :]
        if not rest:
            return True  # equal to the prefix, or empty at the top
        if rest[0].isspace():
            return not prefix or len(rest) < 2 or rest[1].isspace()
        return False

    def _split_name(self, filters: Mapping[str, str], sample: Sample, known: KnownNames) -> Split | None:
        prefix = fold(filters.get("name", ""))
        if len(prefix) >= self.max_prefix_length:
            return None
        learned = self._learned(prefix, sample, known)
        spaced = any(c[len(prefix) : len(prefix) + 1].isspace() for c in learned)
        taken = set(learned)
        # the static alphabet counts as likely for the first two characters: few splits, and a first
        # page of a whole client (or of all its "k" names) may miss a letter that starts thousands
        # of names ("kv" is on no page when "kvam" is one "k" name in a hundred)
        static = self._static(prefix, spaced) if len(prefix) <= 1 else []
        suggested = self._from_pairs(prefix, sample.pairs, spaced) + static
        likely = self._by_prior([p for p in dict.fromkeys(suggested) if p not in taken], sample.prior)
        taken.update(likely)
        unmatched = [n for n in sample.names if self._unreachable(n, prefix)]
        # then the static alphabet, and the broad set unless the sample shows names no child can match
        # (they are a shortfall whatever is probed)
        rest = self._static(prefix, spaced)
        if not (sample.true_totals and unmatched):
            rest += self._expand(prefix, self.broad) if prefix else list(self.broad)
        rest = self._by_prior([p for p in dict.fromkeys(rest) if p not in taken], sample.prior)
        cut = sorted({fold(n or "")[: len(prefix) + 2] for n in unmatched})
        return Split(
            "name",
            [{**filters, "name": p} for p in learned],
            [{**filters, "name": p} for p in likely + rest],
            likely=len(likely),
            unmatched=len(unmatched),
            unmatched_prefixes=cut[:8],
        )

    def _from_pairs(self, prefix: str, pairs: Set[tuple[str, str]], spaced: bool) -> list[str]:
        """Children the learned alphabet suggests: `prefix` + each character seen after its last one;
        after whitespace (only where names are seen to continue with a space), each character seen
        to start a word."""
        if not pairs:
            return []
        last = prefix[-1:]
        out: list[str] = []
        word_starts: list[str] | None = None
        for before, char in sorted(pairs):
            if before != last:
                continue
            if not char.isspace():
                out.append(prefix + char)
            elif spaced and prefix and word_starts is None:
                word_starts = sorted({c for b, c in pairs if b.isspace() and not c.isspace()})
                out.extend(prefix + " " + c for c in word_starts)
        return [c for c in dict.fromkeys(out) if self._valid(c, prefix)]

    @staticmethod
    def _by_prior(prefixes: list[str], prior: Mapping[str, int]) -> list[str]:
        """Stable sort by how often the added character was seen (its last character)."""
        return sorted(prefixes, key=lambda p: -prior.get(p[-1], 0))

    def _learned(self, prefix: str, sample: Sample, known: KnownNames) -> list[str]:
        """Child prefixes from the sample and the known names, most frequent in the sample first."""
        depth = len(prefix)
        counts: Counter[str] = Counter()
        for name in sample.names:
            folded = fold(name or "")
            if len(folded) > depth and folded.startswith(prefix):
                counts[self._child_of(folded, depth)] += 1
        children = [c for c, _ in counts.most_common() if c]
        for char in known.next_chars(prefix):
            if not char.isspace():
                children.append(prefix + char)
            elif prefix:
                after = known.next_chars(prefix + char)
                children.extend(prefix + char + d for d in after if not d.isspace())
        return list(dict.fromkeys(c for c in children if self._valid(c, prefix)))

    @staticmethod
    def _child_of(folded: str, depth: int) -> str:
        """The child prefix a name falls in: one more character, two when that one is whitespace."""
        if folded[depth].isspace():
            return folded[: depth + 2] if len(folded) > depth + 1 else ""
        return folded[: depth + 1]

    @staticmethod
    def _valid(child: str, prefix: str) -> bool:
        if not prefix and child[:1].isspace():
            return False  # never a filter value that starts with whitespace (it may be trimmed)
        return not child[-1].isspace()

    def _static(self, prefix: str, spaced: bool = True) -> list[str]:
        """The static alphabet after `prefix`; a space only where names are seen to continue with one
        (`spaced`): a word then follows, and its first characters are tried too."""
        if not prefix:
            return list(self.first)
        out: list[str] = []
        for char in self.alphabet:
            if char.isspace():
                if spaced:
                    out.extend(prefix + char + c for c in self.words)
            else:
                out.append(prefix + char)
        return out

    @staticmethod
    def _expand(prefix: str, chars: str) -> list[str]:
        """`prefix + c` for every c, then `prefix + " " + c` (a space is never the last character)."""
        return [prefix + c for c in chars] + [prefix + " " + c for c in chars]

    # -- by customerNo ----------------------------------------------------------------------------------

    def _split_customerno(self, filters: Mapping[str, str], sample: Sample) -> Split | None:
        prefix = fold(filters.get("customerno", ""))
        if len(prefix) >= self.max_prefix_length:
            return None
        depth = len(prefix)
        counts: Counter[str] = Counter(
            folded[depth]
            for no in sample.customer_nos
            if len(folded := fold(no)) > depth and folded.startswith(prefix)
        )
        learned = [c for c, _ in counts.most_common() if not c.isspace()]
        digits = list(string.digits)
        children = list(dict.fromkeys(learned + digits))
        probes = [c for c in self.broad if c not in children] if sample.true_totals else []
        probes = [p[-1] for p in self._by_prior([prefix + c for c in probes], sample.prior)]
        equal = sum(1 for no in sample.customer_nos if fold(no) == prefix)
        return Split(
            "customerno",
            [{**filters, "customerno": prefix + c} for c in children],
            [{**filters, "customerno": prefix + c} for c in probes],
            unmatched=equal,
        )
