"""The sandbox's customer data: generated lazily per index, plus an overlay of what changed.

Every client has `n` generated customers (indexes 0..n-1) that are never stored: a customer is
generated from (clientNo, seed, index) whenever it is needed. What changes through the API or the
control endpoints lives in `overlay`: key -> the current customer object, or None when a generated
customer was deleted. Customers created later get keys n, n+1, ... in creation order.

Keys are also the sort order of every listing (see the README: generated customers in index
order, which is ascending customerNo, then created customers in creation order).

Customer objects in the overlay are never mutated: a change stores a new dict. Frozen query results
keep plain references (an int for an untouched generated customer, the dict otherwise), so a query
result is a snapshot that later changes do not alter.

Filters (all case-insensitive; several filters combine with AND):
  customerno, organizationno, customercategory: exact match;  accountno: integer equality;
  name: prefix match (`casefold(name).startswith(casefold(value))`).
  With the `customerno` switch on `prefix`, customerno is a prefix match too (a range of indexes).

Order of a listing: key order, or with `list_order="name"` by casefolded name (then key), the order
an API backed by a name index might use: a truncated query's first page then shows only the
alphabetically first names, not a sample.
To answer them over a million customers without generating everyone, a client lazily builds
columns from the genome bytes: a category column (bytes.translate), a name index (every index
sorted by the rank of its name among all names the word lists can make, so a name prefix is one
contiguous slice) and an organizationNo column (array of ints, built on the first such filter).
"""

from __future__ import annotations

import bisect
import random
import sys
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from service.sandbox import data as g
from service.sandbox import names as w
from service.sandbox.data import Customer

Ref = int | Customer  # an untouched generated customer's index, or a customer object


@dataclass(frozen=True)
class Filters:
    """List filters, as given (None or "" = not given)."""

    customer_no: str | None = None
    account_no: int | None = None
    organization_no: str | None = None
    name: str | None = None
    category: str | None = None
    customer_no_prefix: bool = False  # customerno: prefix match instead of exact

    def matches(self, c: Customer) -> bool:
        """The filter rules, applied to a customer object."""
        if self.customer_no:
            number, wanted = str(c.get("customerNo", "")).casefold(), self.customer_no.casefold()
            if not (number.startswith(wanted) if self.customer_no_prefix else number == wanted):
                return False
        if self.account_no is not None and c.get("accountNo") != self.account_no:
            return False
        if (
            self.organization_no
            and str(c.get("organizationNo", "")).casefold() != self.organization_no.casefold()
        ):
            return False
        if self.name and not str(c.get("name", "")).casefold().startswith(self.name.casefold()):
            return False
        return not (
            self.category is not None
            and str(c.get("customerCategory", "")).casefold() != self.category.casefold()
        )


# ---------------------------------------------------------------------------------------------
# names: every name the word lists can make, sorted; shared by all clients


class NameTable:
    """Ranks of all possible (casefolded) base names; a name prefix is a contiguous range of ranks."""

    _instances: dict[str, NameTable] = {}  # noqa: RUF012 - one table per name mix, shared

    def __init__(self, mix: str = "classic") -> None:
        cache: dict[tuple[int, int, int], str] = {}
        lens = {
            g.KIND_COMPANY: (len(w.COMPANY_WORDS), len(w.COMPANY_SUFFIXES)),
            g.KIND_PUBLIC: (len(w.PUBLIC_PLACES), len(w.PUBLIC_SUFFIXES)),
        }
        person = (len(w.FIRST_NAMES), len(w.LAST_NAMES))
        keys: list[str] = []
        for kind in range(g.N_KINDS):
            la, lb = lens.get(kind, person)
            for a in range(256):
                for b in range(256):
                    if mix == "classic":
                        ck = (kind if kind != g.KIND_PERSON_UNCATEGORIZED else g.KIND_PERSON, a % la, b % lb)
                    else:
                        ck = (kind, a, b)
                    name = cache.get(ck)
                    if name is None:
                        name = g.base_name(kind, a, b, mix).casefold()
                        cache[ck] = name
                    keys.append(name)
        self.names: list[str] = sorted(set(keys))
        rank = {name: i for i, name in enumerate(self.names)}
        self.rank_of_key: list[int] = [rank[name] for name in keys]

    @classmethod
    def get(cls, mix: str = "classic") -> NameTable:
        table = cls._instances.get(mix)
        if table is None:
            table = cls._instances[mix] = NameTable(mix)
        return table

    def prefix_ranks(self, prefix: str) -> tuple[int, int]:
        p = prefix.casefold()
        return bisect.bisect_left(self.names, p), bisect.bisect_left(self.names, p + "\U0010ffff")


class NameIndex:
    """Per client: the rank of every generated customer's name, and indexes sorted by rank."""

    def __init__(self, genome_column: bytes, n: int, mix: str = "classic") -> None:
        table = NameTable.get(mix)
        buf = bytearray(genome_column)
        buf[2::4] = bytes(genome_column[2::4]).translate(g.KIND_TABLE)
        buf[3::4] = bytes(n)
        keys = array("I")
        keys.frombytes(bytes(buf))
        if sys.byteorder == "big":  # pragma: no cover - the layout is little-endian
            keys.byteswap()
        del buf
        self.ranks = array("I", map(table.rank_of_key.__getitem__, keys))
        del keys
        self.order = array("I", sorted(range(n), key=self.ranks.__getitem__))
        counts = Counter(self.ranks)
        offsets = array("I", [0]) * (len(table.names) + 1)
        total = 0
        for r in range(len(table.names)):
            offsets[r] = total
            total += counts.get(r, 0)
        offsets[len(table.names)] = total
        self.offsets = offsets

    def slice(self, r0: int, r1: int) -> array[int]:
        return self.order[self.offsets[r0] : self.offsets[r1]]


# ---------------------------------------------------------------------------------------------


class ChangeError(ValueError):
    pass


CHANGE_KINDS: Final = ("balance", "address", "registration_status", "deleted", "created")


class ClientData:
    """One client's customers: `n` generated ones, and the overlay of changes."""

    def __init__(self, client_no: int, n: int, seed: int, mix: str = "classic") -> None:
        if mix not in w.NAME_MIXES:
            raise ValueError(f"unknown name mix {mix!r}; one of {', '.join(w.NAME_MIXES)}")
        self.client_no = client_no
        self.n = n
        self.seed = seed
        self.mix = mix
        self.genome = g.Genome(client_no, seed)
        self.overlay: dict[int, Customer | None] = {}
        self.by_no: dict[str, int] = {}  # casefolded customerNo -> key, for customers with key >= n
        self.next_key = n
        self.count = n
        self._category_column: bytes | None = None
        self._name_index: NameIndex | None = None
        self._orgno_column: array[int] | None = None

    # --- single customers -------------------------------------------------------------------
    def generate(self, index: int) -> Customer:
        return g.generate_customer(self.client_no, self.seed, index, self.genome.at(index), mix=self.mix)

    def resolve(self, ref: Ref) -> Customer:
        return self.generate(ref) if isinstance(ref, int) else ref

    def get(self, key: int) -> Customer | None:
        if key in self.overlay:
            return self.overlay[key]
        return self.generate(key) if 0 <= key < self.n else None

    def is_alive(self, key: int) -> bool:
        if key in self.overlay:
            return self.overlay[key] is not None
        return 0 <= key < self.n

    def find(self, customer_no: str) -> int | None:
        """The key of the current customer with this customerNo (case-insensitive), or None."""
        key = self.by_no.get(customer_no.casefold())
        if key is not None:
            return key
        index = g.index_of_customer_no(customer_no)
        if index is not None and index < self.n and self.is_alive(index):
            return index
        return None

    # --- columns -----------------------------------------------------------------------------
    def category_column(self) -> bytes:
        if self._category_column is None:
            self._category_column = bytes(self.genome.column(self.n)[2::4]).translate(g.CATEGORY_TABLE)
        return self._category_column

    def name_index(self) -> NameIndex:
        if self._name_index is None:
            self._name_index = NameIndex(self.genome.column(self.n), self.n, self.mix)
        return self._name_index

    def orgno_column(self) -> array[int]:
        if self._orgno_column is None:
            kinds = bytes(self.genome.column(self.n)[2::4]).translate(g.KIND_TABLE)
            column = array("I", bytes(4 * self.n))
            client, seed = self.client_no, self.seed
            for i, kind in enumerate(kinds):
                if kind >= g.KIND_COMPANY:
                    column[i] = int(g.orgno_of(client, seed, i, kind))
            self._orgno_column = column
        return self._orgno_column

    # --- queries -----------------------------------------------------------------------------
    def select(self, f: Filters, limit: int, order: str = "key") -> tuple[list[Ref], int]:
        """The first `limit` matches in key order, or in name order (as refs), and the number of all
        matches."""
        if order == "name":
            return self._select_by_name(f, limit)
        overlay_matches = sorted(
            ((k, c) for k, c in self.overlay.items() if c is not None and f.matches(c)), key=lambda kc: kc[0]
        )
        base, base_total = self._base_matches(f)
        refs: list[Ref] = []
        oi, on = 0, len(overlay_matches)
        if limit > 0:
            for i in base:
                while oi < on and overlay_matches[oi][0] < i and len(refs) < limit:
                    refs.append(overlay_matches[oi][1])
                    oi += 1
                if len(refs) >= limit:
                    break
                refs.append(i)
                if len(refs) >= limit:
                    break
            while oi < on and len(refs) < limit:
                refs.append(overlay_matches[oi][1])
                oi += 1
        return refs, base_total + on

    def _select_by_name(self, f: Filters, limit: int) -> tuple[list[Ref], int]:
        """`select` in order of casefolded name, then key: generated customers by name rank (the
        name index), overlay customers merged in by their own names."""
        overlay_matches = sorted(
            (str(c.get("name") or "").casefold(), k, c)
            for k, c in self.overlay.items()
            if c is not None and f.matches(c)
        )
        _, base_total = self._base_matches(f)
        index_, names = self.name_index(), NameTable.get(self.mix).names
        checked = f.customer_no or f.account_no is not None or f.organization_no or f.category is not None
        wanted = set(self._base_matches(f)[0]) if checked and base_total <= 200_000 else None
        base: list[tuple[str, int]] = []
        if limit > 0:
            r0, r1 = NameTable.get(self.mix).prefix_ranks(f.name) if f.name else (0, len(names))
            ranks, overlay = index_.ranks, self.overlay
            for i in index_.slice(r0, r1):
                if i in overlay or (wanted is not None and i not in wanted):
                    continue
                if checked and wanted is None and not f.matches(self.generate(i)):
                    continue
                base.append((names[ranks[i]], i))
                if len(base) >= limit:
                    break
        entries: list[tuple[str, int, Ref]] = [(name, i, i) for name, i in base]
        entries.extend(overlay_matches)
        merged = sorted(entries, key=lambda t: (t[0], t[1]))
        refs: list[Ref] = [ref for _, _, ref in merged[:limit]]
        return refs, base_total + len(overlay_matches)

    def _base_matches(self, f: Filters) -> tuple[Iterable[int], int]:
        """Untouched generated customers that match: ascending indexes (lazy), and their number."""
        n, overlay = self.n, self.overlay
        if f.customer_no and f.customer_no_prefix:
            first, last = _index_range(f.customer_no, n)
            if first > last:
                return [], 0
            if not (f.name or f.category is not None or f.organization_no or f.account_no is not None):
                live = (i for i in range(first, last + 1) if i not in overlay)
                gone = sum(1 for k in overlay if first <= k <= last)
                return live, last + 1 - first - gone
            hits = [i for i in range(first, last + 1) if i not in overlay and f.matches(self.generate(i))]
            return hits, len(hits)
        if f.customer_no or f.account_no is not None:
            if f.customer_no:
                index = g.index_of_customer_no(f.customer_no)
            else:
                assert f.account_no is not None
                index = f.account_no - g.BASE_ACCOUNT_NO
            if index is None or not 0 <= index < n or index in overlay or not f.matches(self.generate(index)):
                return [], 0
            return [index], 1

        checks: list[Callable[[int], bool]] = []
        drivers: list[tuple[int, Callable[[], Iterable[int]]]] = []
        if f.organization_no:
            target = f.organization_no
            column = self.orgno_column() if target.isdigit() and len(target) == 9 else None
            if column is None:
                return [], 0
            value = int(target)
            hits = _positions_in_array(column, value)
            drivers.append((len(hits), lambda: hits))
            checks.append(lambda i: column[i] == value)
        if f.category is not None:
            code = g.CATEGORY_CODES.get(f.category.upper())
            if code is None:
                return [], 0
            cat = self.category_column()
            code_byte = bytes([code])
            drivers.append((cat.count(code_byte), lambda: _positions_in_bytes(cat, code_byte)))
            checks.append(lambda i: cat[i] == code)
        if f.name:
            index_ = self.name_index()
            r0, r1 = NameTable.get(self.mix).prefix_ranks(f.name)
            ranks = index_.ranks
            drivers.append((index_.offsets[r1] - index_.offsets[r0], lambda: sorted(index_.slice(r0, r1))))
            checks.append(lambda i: r0 <= ranks[i] < r1)

        base_overlay = [k for k in overlay if k < n]
        if not drivers:
            return (i for i in range(n) if i not in overlay), n - len(base_overlay)
        drivers.sort(key=lambda d: d[0])
        size, make = drivers[0]
        if len(checks) == 1:
            check = checks[0]
            excluded = sum(1 for k in base_overlay if check(k))
            return (i for i in make() if i not in overlay), size - excluded
        hits_all = [i for i in make() if i not in overlay and all(c(i) for c in checks)]
        return hits_all, len(hits_all)

    def iter_current(self) -> Iterator[Ref]:
        refs, _ = self.select(Filters(), self.count)
        return iter(refs)

    # --- writes ------------------------------------------------------------------------------
    def _new_key(self, customer_no: str | None) -> tuple[int, str]:
        key = self.next_key
        self.next_key += 1
        if customer_no is None:
            customer_no = g.customer_no_of(key)
            while self.find(customer_no) is not None:
                customer_no = g.customer_no_of(self.next_key)
                self.next_key += 1
        return key, customer_no

    def store(self, key: int, customer: Customer) -> None:
        created = not self.is_alive(key)
        self.overlay[key] = customer
        if key >= self.n:
            self.by_no[str(customer["customerNo"]).casefold()] = key
        if created:
            self.count += 1

    def create(self, customer: Customer, customer_no: str | None = None) -> Customer:
        """Store a new customer (its customerNo and accountNo filled in when missing)."""
        key, cno = self._new_key(customer_no)
        customer["customerNo"] = cno
        if not customer.get("accountNo"):
            customer["accountNo"] = g.BASE_ACCOUNT_NO + key
        customer["clientNo"] = self.client_no
        self.store(key, customer)
        return customer

    def delete(self, key: int) -> Customer | None:
        before = self.get(key)
        if before is None:
            return None
        if key < self.n:
            self.overlay[key] = None
        else:
            del self.overlay[key]
            self.by_no.pop(str(before["customerNo"]).casefold(), None)
        self.count -= 1
        return before

    # --- seeded random changes -----------------------------------------------------------------
    def apply_changes(
        self, seed: int, amounts: dict[str, float | int], today: str
    ) -> list[dict[str, object]]:
        """Seeded random changes (see the README); one entry per changed customer."""
        rng = random.Random(f"changes:{self.client_no}:{seed}")
        current = self.count
        wanted = {kind: _how_many(amounts.get(kind, 0), current, kind) for kind in CHANGE_KINDS}
        existing = wanted["balance"] + wanted["address"] + wanted["registration_status"] + wanted["deleted"]
        if existing > current:
            raise ChangeError(
                f"{existing} changes to existing customers asked for, but the client has only {current}"
            )
        picks = self._pick(rng, existing)
        changes: list[dict[str, object]] = []
        start = 0
        for kind in ("balance", "address", "registration_status", "deleted"):
            chosen = sorted(picks[start : start + wanted[kind]])
            start += wanted[kind]
            for key in chosen:
                before = self.get(key)
                assert before is not None
                if kind == "deleted":
                    self.delete(key)
                    after = None
                else:
                    after = _changed(kind, before, rng, today)
                    self.store(key, after)
                changes.append(
                    {"customerNo": before["customerNo"], "kind": kind, "before": before, "after": after}
                )
        for _ in range(wanted["created"]):
            key, cno = self._new_key(None)
            customer = g.generate_customer(self.client_no, self.seed, key, self.genome.at(key), cno, self.mix)
            self.store(key, customer)
            changes.append({"customerNo": cno, "kind": "created", "before": None, "after": customer})
        return changes

    def _pick(self, rng: random.Random, k: int) -> list[int]:
        """k distinct keys of current customers, seeded."""
        if k == 0:
            return []
        space = self.next_key
        if k * 4 > self.count or self.count * 2 < space:
            alive = [key for key in range(space) if self.is_alive(key)]
            return rng.sample(alive, k)
        chosen: dict[int, None] = {}
        while len(chosen) < k:
            key = rng.randrange(space)
            if key not in chosen and self.is_alive(key):
                chosen[key] = None
        return list(chosen)


def _how_many(value: float | int, current: int, kind: str) -> int:
    """An integer is a count; a float is a fraction of the current customers (rounded half up, >= 1 if > 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ChangeError(f"{kind}: want a non-negative integer (count) or a fraction 0..1")
    if isinstance(value, int):
        return value
    if value > 1:
        raise ChangeError(f"{kind}: a fraction must be within 0..1, got {value}")
    if value == 0 or current == 0:
        return 0
    return max(1, int(value * current + 0.5))


def _changed(kind: str, before: Customer, rng: random.Random, today: str) -> Customer:
    after = copy_customer(before)
    if kind == "balance":
        old = g.amount_to_cents(float(before.get("balanceTotal", 0) or 0))
        delta = rng.randint(100, 500_000) * rng.choice((-1, 1))
        after["balanceTotal"] = g._amount(old + delta)
    elif kind == "address":
        company = before.get("customerCategory") in ("BUS", "PUB")
        while True:
            address = g.random_postal_address(rng.randbytes(8), company)
            if address != before.get("postalAddress") and address["addressLine1"]:
                break
        after["postalAddress"] = address
        after["postalAddressChanged"] = today
        after = {k: after[k] for k in _ordered_keys(after)}
    elif kind == "registration_status":
        person = before.get("customerCategory") not in ("BUS", "PUB")
        codes = [
            c
            for c in (w.PERSON_REGISTRATION_CODES if person else w.COMPANY_REGISTRATION_CODES)
            if c != before.get("registrationStatusCode")
        ]
        after["registrationStatusCode"] = rng.choice(codes)
        after["registrationStatusDate"] = today
        after = {k: after[k] for k in _ordered_keys(after)}
    return after


def _ordered_keys(c: Customer) -> list[str]:
    known = [k for k in g.CUSTOMER_SCHEMA if k in c]
    return known + [k for k in c if k not in g.CUSTOMER_SCHEMA]


def copy_customer(c: Customer) -> Customer:
    """A deep copy (customer objects hold only dicts, lists and scalars)."""
    out: Customer = {}
    for k, v in c.items():
        if isinstance(v, dict):
            out[k] = dict(v)
        elif isinstance(v, list):
            out[k] = list(v)
        else:
            out[k] = v
    return out


def _index_range(prefix: str, n: int) -> tuple[int, int]:
    """Indexes [first, last] of generated customers whose customerNo starts with `prefix` (every
    generated customerNo has 7 digits: 1000000 + index); first > last when there are none."""
    width = len(g.customer_no_of(0))
    if not prefix.isdigit() or not prefix.isascii() or len(prefix) > width:
        return 0, -1
    low = int(prefix.ljust(width, "0")) - g.BASE_CUSTOMER_NO
    high = int(prefix.ljust(width, "9")) - g.BASE_CUSTOMER_NO
    return max(low, 0), min(high, n - 1)


def _positions_in_bytes(data: bytes, needle: bytes) -> Iterator[int]:
    i = data.find(needle)
    while i != -1:
        yield i
        i = data.find(needle, i + 1)


def _positions_in_array(column: array[int], value: int) -> list[int]:
    hits: list[int] = []
    start = 0
    while True:
        try:
            i = column.index(value, start)
        except ValueError:
            return hits
        hits.append(i)
        start = i + 1
