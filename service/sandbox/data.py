"""Deterministic generation of Amili ARM customer objects.

A customer is a pure function of (clientNo, seed, index):

* a 4-byte *genome* `[b, a, kind, x]` taken from a per-client random byte stream (chunks of
  `GENOME_CHUNK` indexes, each chunk seeded from (clientNo, seed, chunk number)). It fixes the
  kind (person, company, public body), the category and the name. Because it is a plain byte
  string, filter columns (category, name keys) for a million customers are built with C-speed
  bytes operations, without generating the customers;
* 128 *detail* bytes, `shake_128("clientNo:seed:index")`, for every other field.

Identifiers: `customerNo = str(1_000_000 + index)` (always 7 digits below 9,000,000 customers),
`accountNo = 500_000 + index`. Organization numbers and bank account numbers carry valid mod-11
check digits, KIDs a valid mod-10 (Luhn) check digit, and SSNs are *synthetic* Norwegian national
ids: valid check digits, but the month is +80 (the Tenor test-data convention), so none is real.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Any, Final

from service.sandbox import names as w

Customer = dict[str, Any]

BASE_CUSTOMER_NO: Final = 1_000_000
BASE_ACCOUNT_NO: Final = 500_000
MAX_CUSTOMERS_PER_CLIENT: Final = 8_999_999
GENOME_CHUNK: Final = 65_536
GENOME_WIDTH: Final = 4

# Kinds, and how the third genome byte maps to them (bytes.translate table).
KIND_PERSON: Final = 0  # "First Last", CONS
KIND_PERSON_REVERSED: Final = 1  # "Last First" (register style), CONS
KIND_PERSON_UNCATEGORIZED: Final = 2  # "First Last", category ""
KIND_COMPANY: Final = 3  # BUS
KIND_PUBLIC: Final = 4  # PUB
N_KINDS: Final = 5
CATEGORY_BY_KIND: Final = ("CONS", "CONS", "", "BUS", "PUB")
CATEGORIES: Final = ("CONS", "BUS", "PUB", "")


def _kind_of_byte(value: int) -> int:
    if value < 3:
        return KIND_PERSON_UNCATEGORIZED
    if value < 20:
        return KIND_PERSON_REVERSED
    if value < 170:
        return KIND_PERSON
    if value < 250:
        return KIND_COMPANY
    return KIND_PUBLIC


KIND_TABLE: Final = bytes(_kind_of_byte(v) for v in range(256))
# byte -> category code (index into CATEGORIES), for the category filter column
CATEGORY_CODES: Final = {"CONS": 0, "BUS": 1, "PUB": 2, "": 3}
CATEGORY_TABLE: Final = bytes(CATEGORY_CODES[CATEGORY_BY_KIND[_kind_of_byte(v)]] for v in range(256))


def is_person_kind(kind: int) -> bool:
    return kind <= KIND_PERSON_UNCATEGORIZED


# ---------------------------------------------------------------------------------------------
# dates: a table of ISO strings, index = days since 1920-01-01
_DAY0: Final = dt.date(1920, 1, 1).toordinal()
DATES: Final = tuple(
    dt.date.fromordinal(_DAY0 + i).isoformat() for i in range(dt.date(2031, 1, 1).toordinal() - _DAY0)
)


def _day(year: int, month: int = 1, day: int = 1) -> int:
    return dt.date(year, month, day).toordinal() - _DAY0


_BIRTH0, _BIRTH_SPAN = _day(1930), _day(2007) - _day(1930)
_REG0, _REG_SPAN = _day(2000), _day(2026) - _day(2000)
_PAC0, _PAC_SPAN = _day(2005), _day(2026) - _day(2005)
_RET0, _RET_SPAN = _day(2023), _day(2026) - _day(2023)
_STOP0, _STOP_SPAN = _day(2025, 6), _day(2028) - _day(2025, 6)


# ---------------------------------------------------------------------------------------------
# check digits


def mod11_check(digits: str, weights: tuple[int, ...]) -> int | None:
    """Norwegian mod-11 check digit for `digits`, or None when no valid digit exists (remainder 1)."""
    total = sum(int(c) * wt for c, wt in zip(digits, weights, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


ORGNO_WEIGHTS: Final = (3, 2, 7, 6, 5, 4, 3, 2)
BANK_WEIGHTS: Final = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
SSN_K1_WEIGHTS: Final = (3, 7, 6, 1, 8, 9, 4, 5, 2)
SSN_K2_WEIGHTS: Final = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def is_valid_orgno(value: str) -> bool:
    return len(value) == 9 and value.isdigit() and mod11_check(value[:8], ORGNO_WEIGHTS) == int(value[8])


def is_valid_bank_account(value: str) -> bool:
    return len(value) == 11 and value.isdigit() and mod11_check(value[:10], BANK_WEIGHTS) == int(value[10])


def is_valid_synthetic_ssn(value: str) -> bool:
    if len(value) != 11 or not value.isdigit():
        return False
    k1 = mod11_check(value[:9], SSN_K1_WEIGHTS)
    k2 = mod11_check(value[:10], SSN_K2_WEIGHTS)
    return k1 == int(value[9]) and k2 == int(value[10])


_LUHN_DOUBLE: Final = {str(d): (2 * d if d < 5 else 2 * d - 9) for d in range(10)}


def luhn_check(digits: str) -> int:
    """Mod-10 (Luhn) check digit to append to `digits`."""
    rev = digits[::-1]
    total = sum(_LUHN_DOUBLE[c] for c in rev[0::2]) + sum(int(c) for c in rev[1::2])
    return (10 - total % 10) % 10


def is_valid_kid(value: str) -> bool:
    return value.isdigit() and len(value) >= 2 and luhn_check(value[:-1]) == int(value[-1])


def _weighted_table(weights: tuple[int, ...]) -> list[int]:
    """Weighted digit sums of every len(weights)-digit number (with leading zeros), for fast check digits."""
    width = len(weights)
    return [
        sum(int(c) * wt for c, wt in zip(f"{n:0{width}d}", weights, strict=True)) for n in range(10**width)
    ]


_W3276: Final = _weighted_table((3, 2, 7, 6))
_W5432: Final = _weighted_table((5, 4, 3, 2))
_W76: Final = _weighted_table((7, 6))
_W376: Final = _weighted_table((3, 7, 6))
_W189: Final = _weighted_table((1, 8, 9))
_W452: Final = _weighted_table((4, 5, 2))
_W543: Final = _weighted_table((5, 4, 3))
_W276: Final = _weighted_table((2, 7, 6))


def _check_of(total: int) -> int:
    """11 - total mod 11, with 11 -> 0; 10 means "no valid check digit"."""
    check = 11 - total % 11
    return 0 if check == 11 else check


def make_orgno(seed_value: int) -> str:
    """A 9-digit organization number (first digit 8 or 9) with a valid mod-11 check digit."""
    base = 80_000_000 + seed_value % 20_000_000
    while True:
        check = _check_of(_W3276[base // 10_000] + _W5432[base % 10_000])
        if check != 10:
            return f"{base}{check}"
        base += 1


_BANK_REGS: Final = (1503, 8150, 9710, 3000, 1254, 1822, 6345, 1207, 4202, 9235)


def make_bank_account(seed_value: int) -> str:
    """An 11-digit Norwegian bank account number with a valid mod-11 check digit."""
    reg = _BANK_REGS[seed_value % len(_BANK_REGS)]
    rest = seed_value // len(_BANK_REGS) % 1_000_000
    while True:
        check = _check_of(_W5432[reg] + _W76[rest // 10_000] + _W5432[rest % 10_000])
        if check != 10:
            return f"{reg}{rest:06d}{check}"
        rest = (rest + 1) % 1_000_000


_SSN_SUFFIXES: dict[tuple[int, int, int], tuple[str, ...]] = {}


def _ssn_suffixes(s1: int, s2: int, low: int) -> tuple[str, ...]:
    """Every valid "iii k1 k2" ending for a date part with weighted sums s1, s2 (mod 11), cached."""
    key = (s1 % 11, s2 % 11, low)
    found = _SSN_SUFFIXES.get(key)
    if found is None:
        out = []
        for iii in range(low, low + 500):
            k1 = _check_of(key[0] + _W452[iii])
            if k1 != 10:
                k2 = _check_of(key[1] + _W543[iii] + 2 * k1)
                if k2 != 10:
                    out.append(f"{iii:03d}{k1}{k2}")
        found = _SSN_SUFFIXES[key] = tuple(out)
    return found


_SSN_DAYS: dict[int, tuple[str, tuple[str, ...]]] = {}


def make_synthetic_ssn(birth_iso: str, seed_value: int) -> str:
    """A synthetic 11-digit national id: ddmmyy with month + 80, individual number, two check digits."""
    day = dt.date.fromisoformat(birth_iso).toordinal() - _DAY0
    return synthetic_ssn_for_day(day, seed_value)


def synthetic_ssn_for_day(day: int, seed_value: int) -> str:
    """make_synthetic_ssn for DATES[day], with the date part and its valid endings cached per day."""
    cached = _SSN_DAYS.get(day)
    if cached is None:
        birth_iso = DATES[day]
        month = int(birth_iso[5:7]) + 80
        hi = int(birth_iso[8:10]) * 10 + month // 10  # d d m
        lo = month % 10 * 100 + int(birth_iso[2:4])  # m y y
        low = 0 if birth_iso[0] == "1" else 500
        cached = (f"{hi:03d}{lo:03d}", _ssn_suffixes(_W376[hi] + _W189[lo], _W543[hi] + _W276[lo], low))
        _SSN_DAYS[day] = cached
    prefix, suffixes = cached
    return prefix + suffixes[seed_value % len(suffixes)]


def _luhn_table(doubled_positions: tuple[int, ...]) -> list[int]:
    def value(n: int) -> int:
        digits = f"{n:03d}"
        return sum(_LUHN_DOUBLE[c] if i in doubled_positions else int(c) for i, c in enumerate(digits))

    return [value(n) for n in range(1000)]


_LUHN_A: Final = _luhn_table((0, 2))  # account digits 1-3 of a 20-digit KID body: doubled, single, doubled
_LUHN_B: Final = _luhn_table((1,))  # account digits 4-6: single, doubled, single
_KID_CLIENT_PART: dict[int, int] = {}


def make_kid(client_no: int, account_no: int) -> str:
    """KID = "500" + clientNo (4 digits) + accountNo (6 digits), zero-padded to 20, + mod-10 (Luhn)."""
    if client_no >= 10_000 or account_no >= 1_000_000:
        body = f"500{client_no:04d}{account_no:06d}".ljust(20, "0")
        return body + str(luhn_check(body))
    part = _KID_CLIENT_PART.get(client_no)
    if part is None:
        prefix = f"500{client_no:04d}" + "0" * 13
        rev = prefix[::-1]
        part = sum(_LUHN_DOUBLE[c] for c in rev[0::2]) + sum(int(c) for c in rev[1::2])
        _KID_CLIENT_PART[client_no] = part
    total = part + _LUHN_A[account_no // 1000] + _LUHN_B[account_no % 1000]
    return f"500{client_no:04d}{account_no:06d}0000000{(10 - total % 10) % 10}"


# ---------------------------------------------------------------------------------------------
# names

_ASCII = str.maketrans(
    {"æ": "ae", "ø": "o", "å": "aa", "é": "e", "ë": "e", "ö": "o", "ü": "u", "ä": "a", "ś": "s",
     " ": "", "'": "", '"': "", "«": "", "»": "", "(": "", ")": "", "&": "", "#": "", "@": "",
     "+": "", ",": ""}
)  # fmt: skip


def ascii_slug(text: str) -> str:
    return text.lower().translate(_ASCII).encode("ascii", "ignore").decode().strip(".-") or "x"


def _byte_table(table: tuple[tuple[int, str], ...]) -> tuple[str | None, ...]:
    """`table` as one entry per byte value: the value of the first bound above the byte, else None."""
    return tuple(next((value for below, value in table if byte < below), None) for byte in range(256))


# looked up once per generated customer: an index, where a scan of the bounds was ~10% of a page
_DENSE_FIRST_BY_BYTE: Final = _byte_table(w.DENSE_FIRST)
_DENSE_COMPANY_BY_BYTE: Final = _byte_table(w.DENSE_COMPANY)


def base_name(kind: int, a: int, b: int, mix: str = "classic") -> str:
    """The name for a genome, before the case variant (which does not matter for matching)."""
    if mix == "dense":
        return _dense_name(kind, a, b)
    if mix == "stuck":
        if kind == KIND_COMPANY and a < 128:
            return w.STUCK_NAME
        if kind == KIND_PUBLIC and b < 64:
            return "" if b < 32 else " " + _classic_name(kind, a, b)
    return _classic_name(kind, a, b)


def _dense_name(kind: int, a: int, b: int) -> str:
    last = w.DENSE_LAST[b % len(w.DENSE_LAST)]
    if kind == KIND_PERSON:
        first = _DENSE_FIRST_BY_BYTE[a]
        if first is not None:
            return f"{first} {last}"
    elif kind == KIND_PERSON_REVERSED and b < 210:
        return f"{w.DENSE_PARTICLE} {w.LAST_NAMES[b % len(w.LAST_NAMES)]} {w.FIRST_NAMES[a % len(w.FIRST_NAMES)]}"
    elif kind == KIND_COMPANY:
        word = _DENSE_COMPANY_BY_BYTE[a]
        if word is not None:
            # a place between word and suffix: "Über AS" alone would be the exact name of ~14,000
            # customers at 1,000,000, more than the cap (a slice no prefix can complete)
            place = w.PUBLIC_PLACES[a % len(w.PUBLIC_PLACES)]
            return f"{word} {place} {w.COMPANY_SUFFIXES[b % len(w.COMPANY_SUFFIXES)]}"
    return _classic_name(kind, a, b)


def _classic_name(kind: int, a: int, b: int) -> str:
    if kind == KIND_COMPANY:
        return (
            f"{w.COMPANY_WORDS[a % len(w.COMPANY_WORDS)]} {w.COMPANY_SUFFIXES[b % len(w.COMPANY_SUFFIXES)]}"
        )
    if kind == KIND_PUBLIC:
        return f"{w.PUBLIC_PLACES[a % len(w.PUBLIC_PLACES)]} {w.PUBLIC_SUFFIXES[b % len(w.PUBLIC_SUFFIXES)]}"
    first = w.FIRST_NAMES[a % len(w.FIRST_NAMES)]
    last = w.LAST_NAMES[b % len(w.LAST_NAMES)]
    return f"{last} {first}" if kind == KIND_PERSON_REVERSED else f"{first} {last}"


def display_name(kind: int, a: int, b: int, x: int, mix: str = "classic") -> str:
    name = base_name(kind, a, b, mix)
    if x < 4:
        return name.lower()  # typed in lower case
    if x < 7:
        return name.upper()  # typed with caps lock
    return name


_FIRST_SLUGS: Final = tuple(ascii_slug(n) for n in w.FIRST_NAMES)
_LAST_SLUGS: Final = tuple(ascii_slug(n) for n in w.LAST_NAMES)
_COMPANY_SLUGS: Final = tuple(ascii_slug(n.split(" ")[0]) for n in w.COMPANY_WORDS)
_PUBLIC_SLUGS: Final = tuple(ascii_slug(n.split(" ")[0]) for n in w.PUBLIC_PLACES)
_REF3: Final = tuple(
    chr(65 + v % 26) + chr(65 + v * 7 % 26) + chr(65 + v * 13 // 26 % 26) for v in range(256)
)
_REF2: Final = tuple(chr(65 + v % 26) + chr(65 + v // 26 * 3 % 26) for v in range(256))


# ---------------------------------------------------------------------------------------------
# genome


def _seed_int(*parts: object) -> int:
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "little")


class Genome:
    """The per-client stream of 4-byte genomes, generated in chunks on demand and kept."""

    def __init__(self, client_no: int, seed: int) -> None:
        self.client_no = client_no
        self.seed = seed
        self._chunks: dict[int, bytes] = {}

    def chunk(self, number: int) -> bytes:
        data = self._chunks.get(number)
        if data is None:
            rng = random.Random(_seed_int("genome", self.client_no, self.seed, number))
            data = rng.randbytes(GENOME_CHUNK * GENOME_WIDTH)
            self._chunks[number] = data
        return data

    def at(self, index: int) -> bytes:
        number, offset = divmod(index, GENOME_CHUNK)
        start = offset * GENOME_WIDTH
        return self.chunk(number)[start : start + GENOME_WIDTH]

    def column(self, count: int) -> bytes:
        """Genomes of indexes [0, count) as one bytes object (count * 4 bytes)."""
        chunks = (count + GENOME_CHUNK - 1) // GENOME_CHUNK
        data = b"".join(self.chunk(n) for n in range(chunks))
        return data[: count * GENOME_WIDTH]

    def kind(self, index: int) -> int:
        return KIND_TABLE[self.at(index)[2]]

    def name_key(self, index: int) -> int:
        g = self.at(index)
        return KIND_TABLE[g[2]] << 16 | g[1] << 8 | g[0]


def name_key_parts(key: int) -> tuple[int, int, int]:
    return key >> 16, (key >> 8) & 0xFF, key & 0xFF


def details(client_no: int, seed: int, index: int) -> bytes:
    return hashlib.shake_128(f"{client_no}:{seed}:{index}".encode()).digest(128)


def customer_no_of(index: int) -> str:
    return str(BASE_CUSTOMER_NO + index)


def index_of_customer_no(customer_no: str) -> int | None:
    """The generated index a customerNo stands for (no range check), or None if it is not canonical."""
    if not customer_no.isdigit() or customer_no[0] == "0" or not customer_no.isascii():
        return None
    index = int(customer_no) - BASE_CUSTOMER_NO
    return index if index >= 0 else None


def orgno_of(client_no: int, seed: int, index: int, kind: int) -> str:
    """The generated organizationNo of a customer ("" for persons), without generating the rest."""
    if is_person_kind(kind):
        return ""
    d = details(client_no, seed, index)
    return make_orgno(int.from_bytes(d[20:24], "little"))


def _u16(d: bytes, i: int) -> int:
    return d[i] | d[i + 1] << 8


def _u32(d: bytes, i: int) -> int:
    return int.from_bytes(d[i : i + 4], "little")


def _amount(cents: int) -> int | float:
    """JSON number for an amount in øre: whole kroner as an integer (1000), else with decimals (1234.5)."""
    if cents % 100 == 0:
        return cents // 100
    return cents / 100


def amount_to_cents(value: float) -> int:
    return round(value * 100)


def random_postal_address(rng_bytes: bytes, company: bool) -> dict[str, str]:
    """A postal address from 8 bytes: Norwegian mostly, a few foreign, some with empty lines."""
    d = rng_bytes
    street = f"{w.STREETS[d[2] % len(w.STREETS)]} {1 + d[3] % 120}"
    if d[4] < 30:
        street += "ABCD"[d[4] % 4]
    line1, line2, line3 = street, "", ""
    if company and d[5] < 60:
        line1, line2 = f"Postboks {1 + _u16(d, 6) % 9000}", ""
    elif company and d[5] < 90:
        line1, line2 = f"C/O {w.COMPANY_WORDS[d[6] % len(w.COMPANY_WORDS)]} Regnskap AS", street
    elif not company and d[5] < 50:
        line2 = f"H0{1 + d[6] % 4}{1 + d[7] % 9:02d}"  # bolignummer
    elif not company and d[5] < 58:
        line1, line2 = (
            f"C/O {w.FIRST_NAMES[d[6] % len(w.FIRST_NAMES)]} {w.LAST_NAMES[d[7] % len(w.LAST_NAMES)]}",
            street,
        )
    if d[1] < 6:
        code, city, country_text, country = w.FOREIGN_PLACES[d[0] % len(w.FOREIGN_PLACES)]
    else:
        code, city = w.NO_PLACES[d[0] % len(w.NO_PLACES)]
        country_text, country = "Norway", "NO"
    if d[1] == 255:  # unknown address: every line empty
        return {"addressLine1": "", "addressLine2": "", "addressLine3": "", "postalCode": "", "cityName": "",
                "countryText": "", "countryCode": ""}  # fmt: skip
    if d[5] == 254:
        line3 = "Bygg 17"
    return {"addressLine1": line1, "addressLine2": line2, "addressLine3": line3, "postalCode": code,
            "cityName": city, "countryText": country_text, "countryCode": country}  # fmt: skip


# Keys that are left out (absent) when they have no value, as in the docs' second example.
OPTIONAL_KEYS: Final = (
    "postalReturnDate", "dateOfBirth", "usingLanguage", "stopReminderUntil", "stopDebtCollectionUntil",
    "stopInterestCalcUntil", "registrationStatusDate", "postalAddressChanged",
)  # fmt: skip


def generate_customer(
    client_no: int,
    seed: int,
    index: int,
    genome: bytes,
    customer_no: str | None = None,
    mix: str = "classic",
) -> Customer:
    """The generated customer at `index` (its genome passed in), with every documented field.

    Each group of fields is drawn by a step of its own from the customer's detail bytes `d`; the
    steps return plain tuples and the customer is built in one dict (this runs for every customer a
    sandbox page serves, so it stays free of intermediate dicts)."""
    b, a, kind_byte, x = genome[0], genome[1], genome[2], genome[3]
    kind = KIND_TABLE[kind_byte]
    person = kind <= KIND_PERSON_UNCATEGORIZED
    d = hashlib.shake_128(f"{client_no}:{seed}:{index}".encode()).digest(128)  # = details(...)
    account_no = BASE_ACCOUNT_NO + index
    address = random_postal_address(d[0:8], not person)
    foreign = address["countryCode"] not in ("NO", "")
    slug_first, slug_last = _slugs(kind, person, a, b)
    emails, secondary_emails, phone, secondary_phone = _contact(d, person, slug_first, slug_last)
    orgno, birth, year_of_birth, ssn, ssn_country = _identity(d, person, foreign)
    language = "no" if d[33] < 200 else ("en" if d[33] < 230 else ("sv" if d[33] < 250 else ""))
    currency = _currency(d, foreign, address["countryCode"])
    distribution = _distribution(d, person, orgno)
    stop = DATES[_STOP0 + _u16(d, 48) % _STOP_SPAN] if d[47] < 14 else None
    nace, parent_no, parent_org = _structure(d, person, index)
    reg_code, reg_date = _registration(d, person)
    return_status = 100 if d[6] < 10 else 0

    customer: Customer = {
        "clientNo": client_no,
        "accountNo": account_no,
        "customerNo": customer_no if customer_no is not None else str(BASE_CUSTOMER_NO + index),
        "name": display_name(kind, a, b, x, mix),
        "postalAddress": address,
        "postalReturnStatus": return_status,
        "postalReturnDate": DATES[_RET0 + _u16(d, 7) % _RET_SPAN] if return_status else None,
        "customerCategory": CATEGORY_BY_KIND[kind],
        "emailAddressDocument": emails,
        "secondaryEmailAddress": secondary_emails,
        "phoneNo": phone,
        "secondaryPhoneNo": secondary_phone,
        "organizationNo": orgno,
        "organizationNoScheme": "0192" if orgno else "",
        "dateOfBirth": birth,
        "yearOfBirth": year_of_birth,
        "ssn": ssn,
        "ssnCountry": ssn_country,
        "informalName": w.NICKNAMES[d[30] % len(w.NICKNAMES)] if d[30] < 20 else "",
        "customerGroupCode": ("VIP", "STD", "EMP", "")[d[31] % 4] if d[31] < 80 else "",
        "priceNetOrGross": "N" if not person and d[32] < 100 else "B",
        "language": language,
        "usingLanguage": language if d[34] < 80 else None,
        "currency": currency,
        "distribution": distribution,
        "sellerReference": _REF3[d[89]] if d[39] < 100 else "",
        "buyerReference": _REF2[d[90]] if not person and d[40] < 150 else "",
        "bankAccountNo": make_bank_account(_u32(d, 41)) if d[46] < (200 if not person else 40) else "",
        "stopReminderUntil": stop,
        "stopDebtCollectionUntil": stop if d[47] < 8 else None,
        "stopInterestCalcUntil": stop if d[47] < 4 else None,
        "efakturaBlockIds": (
            [str(10_000_000 + _u32(d, 51 + k) % 90_000_000) for k in range(d[50] % 4)] if d[50] < 24 else []
        ),
        "peppolBlockIds": [make_orgno(_u32(d, 55))] if d[59] < 10 else [],
        "digipostBlockIds": [f"{slug_first}.{slug_last or 'as'}#{_REF3[d[88]]}"] if d[60] < 10 else [],
        "dueDays": (10, 14, 14, 20, 30, 14, 10, 45)[d[61] % 8],
        "vatLiable": (d[62] < 230) if not person else (d[62] < 40),
        "arRules": list(w.AR_RULES[d[63] % len(w.AR_RULES)]),
        "naceCodes": nace,
        "districtCodes": list(w.DISTRICT_CODES[d[66] % len(w.DISTRICT_CODES)]),
        "parentCustomerNo": parent_no,
        "parentOrganizationNo": parent_org,
        "discountRate": (0, 0, 0, 0, 0, 0, 2.5, 5, 5.5, 10)[d[72] % 10],
        "activeStatusWeb": ("", "", "Active", "Passive")[d[73] % 4],
        "customerMessage": w.CUSTOMER_MESSAGES[d[74] % len(w.CUSTOMER_MESSAGES)] if d[74] < 15 else "",
        "limitAmount": (0, 0, 0, 2000, 5000, 10000, 50000)[d[75] % 7],
        "registrationStatusCode": reg_code,
        "registrationStatusDate": reg_date,
        "postalAddressChanged": DATES[_PAC0 + _u16(d, 79) % _PAC_SPAN] if d[81] >= 40 else None,
        "customerKid": make_kid(client_no, account_no) if d[82] >= 12 else "",
        "balanceTotal": _balance(d),
    }
    for key in OPTIONAL_KEYS:
        if customer[key] is None:
            del customer[key]
    return customer


def _slugs(kind: int, person: bool, a: int, b: int) -> tuple[str, str]:
    """The (first, last) parts of e-mail addresses and block ids."""
    if person:
        return _FIRST_SLUGS[a % len(_FIRST_SLUGS)], _LAST_SLUGS[b % len(_LAST_SLUGS)]
    if kind == KIND_COMPANY:
        return _COMPANY_SLUGS[a % len(_COMPANY_SLUGS)], ""
    return _PUBLIC_SLUGS[a % len(_PUBLIC_SLUGS)], ""


def _contact(
    d: bytes, person: bool, slug_first: str, slug_last: str
) -> tuple[list[str], list[str], str, str]:
    """E-mail addresses (document, secondary) and phone numbers (main, secondary)."""
    domain = w.EMAIL_DOMAINS[d[10] % len(w.EMAIL_DOMAINS)]
    if person:
        primary = f"{slug_first}.{slug_last}{d[11] % 100 if d[11] < 128 else ''}@{domain}"
    else:
        primary = f"{'faktura' if d[11] < 128 else 'post'}@{slug_first}.no"
    emails = [] if d[9] < 20 else [primary] if d[9] < 235 else [primary, f"{slug_first}@{domain}"]
    secondary = (
        [f"{slug_first}{d[11]}@{w.EMAIL_DOMAINS[(d[10] + 1) % len(w.EMAIL_DOMAINS)]}"]
        if d[9] % 7 == 0
        else []
    )
    phone_u = _u32(d, 12)
    if d[16] < 20:
        phone = ""
    elif person or d[16] < 120:
        phone = str((40_000_000 if d[16] % 2 else 90_000_000) + phone_u % 10_000_000)
    else:
        phone = str(20_000_000 + phone_u % 60_000_000)
    if phone and d[16] > 240:
        phone = "+47 " + phone
    secondary_phone = str(90_000_000 + _u32(d, 17) % 10_000_000) if d[19] < 40 else ""
    return emails, secondary, phone, secondary_phone


def _identity(d: bytes, person: bool, foreign: bool) -> tuple[str, str | None, int, str, str]:
    """Organization number, or a person's birth date, year of birth and (synthetic) national id."""
    orgno = "" if person else make_orgno(_u32(d, 20))
    if not (person and d[26] >= 12):
        return orgno, None, 0, "", ""
    birth_day = _BIRTH0 + (d[24] | d[25] << 8) % _BIRTH_SPAN
    birth = DATES[birth_day]
    ssn = synthetic_ssn_for_day(birth_day, d[27] | d[28] << 8) if d[29] >= 30 and not foreign else ""
    ssn_country = "NO" if ssn else ("SE" if foreign and d[29] % 3 == 0 else "")
    return orgno, birth, int(birth[:4]), ssn, ssn_country


def _currency(d: bytes, foreign: bool, country: str) -> str:
    currency = "NOK" if not foreign else ("SEK" if country == "SE" else "EUR")
    return "EUR" if d[35] > 250 else currency


def _distribution(d: bytes, person: bool, orgno: str) -> dict[str, Any]:
    """How invoices go out: PEPPOL for most companies, eFaktura for some persons, else paper/e-mail."""
    peppol = not person and d[38] < 140
    if peppol:
        dist_type, einvoice = "H", 90
    elif person and d[36] < 90:
        dist_type, einvoice = "E", 2  # eFaktura
    else:
        dist_type, einvoice = ("P", 0) if d[36] < 200 else ("D", 0)
    return {
        "type": dist_type,
        "einvoiceCode": einvoice,
        "peppolEndpointId": orgno if peppol else "",
        "peppolEndpointIdScheme": "0192" if peppol else "",
    }


def _structure(d: bytes, person: bool, index: int) -> tuple[list[str], str, str]:
    """Industry codes and the place in a customer hierarchy (parent customer, parent organization)."""
    nace: list[str] = []
    if not person:
        nace = [w.NACE_CODES[d[64] % len(w.NACE_CODES)]]
        if d[65] < 60:
            nace.append(w.NACE_CODES[d[65] % len(w.NACE_CODES)])
    parent_no, parent_org = "", ""
    if d[67] < 6 and index > 0:
        parent_no = str(BASE_CUSTOMER_NO + _u32(d, 68) % index)
    if not person and d[67] > 245:
        parent_org = make_orgno(_u32(d, 68))
    return nace, parent_no, parent_org


def _registration(d: bytes, person: bool) -> tuple[str, str | None]:
    codes = w.PERSON_REGISTRATION_CODES if person else w.COMPANY_REGISTRATION_CODES
    if d[76] < 25:
        return "", None
    code = codes[0] if d[76] < 215 else codes[d[76] % len(codes)]
    return code, DATES[_REG0 + _u16(d, 77) % _REG_SPAN]


def _balance(d: bytes) -> float | int:
    """Most customers owe nothing; some are in credit; the rest owe up to 50,000.00."""
    if d[83] < 150:
        cents = 0
    elif d[83] < 160:
        cents = -(1 + _u32(d, 84) % 500_000)
    else:
        cents = 1 + _u32(d, 84) % 5_000_000
    return _amount(cents)


# ---------------------------------------------------------------------------------------------
# the documented customer object, for writes: key -> type


class FieldType:
    STR = "string"
    INT = "integer"
    NUM = "number"
    BOOL = "boolean"
    DATE = "date"  # "YYYY-MM-DD" string (or "" to clear)
    STR_LIST = "array of strings"
    OBJECT = "object"


CUSTOMER_SCHEMA: Final[dict[str, str]] = {
    "clientNo": FieldType.INT, "accountNo": FieldType.INT, "customerNo": FieldType.STR, "name": FieldType.STR,
    "postalAddress": FieldType.OBJECT, "postalReturnStatus": FieldType.INT, "postalReturnDate": FieldType.DATE,
    "customerCategory": FieldType.STR, "emailAddressDocument": FieldType.STR_LIST,
    "secondaryEmailAddress": FieldType.STR_LIST, "phoneNo": FieldType.STR, "secondaryPhoneNo": FieldType.STR,
    "organizationNo": FieldType.STR, "organizationNoScheme": FieldType.STR, "dateOfBirth": FieldType.DATE,
    "yearOfBirth": FieldType.INT, "ssn": FieldType.STR, "ssnCountry": FieldType.STR,
    "informalName": FieldType.STR, "customerGroupCode": FieldType.STR, "priceNetOrGross": FieldType.STR,
    "language": FieldType.STR, "usingLanguage": FieldType.STR, "currency": FieldType.STR,
    "distribution": FieldType.OBJECT, "sellerReference": FieldType.STR, "buyerReference": FieldType.STR,
    "bankAccountNo": FieldType.STR, "stopReminderUntil": FieldType.DATE,
    "stopDebtCollectionUntil": FieldType.DATE, "stopInterestCalcUntil": FieldType.DATE,
    "efakturaBlockIds": FieldType.STR_LIST, "peppolBlockIds": FieldType.STR_LIST,
    "digipostBlockIds": FieldType.STR_LIST, "dueDays": FieldType.INT, "vatLiable": FieldType.BOOL,
    "arRules": FieldType.STR_LIST, "naceCodes": FieldType.STR_LIST, "districtCodes": FieldType.STR_LIST,
    "parentCustomerNo": FieldType.STR, "parentOrganizationNo": FieldType.STR, "discountRate": FieldType.NUM,
    "activeStatusWeb": FieldType.STR, "customerMessage": FieldType.STR, "limitAmount": FieldType.NUM,
    "registrationStatusCode": FieldType.STR, "registrationStatusDate": FieldType.DATE,
    "postalAddressChanged": FieldType.DATE, "customerKid": FieldType.STR, "balanceTotal": FieldType.NUM,
}  # fmt: skip

POSTAL_ADDRESS_KEYS: Final = (
    "addressLine1", "addressLine2", "addressLine3", "postalCode", "cityName", "countryText", "countryCode",
)  # fmt: skip
DISTRIBUTION_SCHEMA: Final[dict[str, str]] = {
    "type": FieldType.STR, "einvoiceCode": FieldType.INT, "peppolEndpointId": FieldType.STR,
    "peppolEndpointIdScheme": FieldType.STR,
}  # fmt: skip


def blank_customer(client_no: int, account_no: int, customer_no: str) -> Customer:
    """A customer created through the API starts from this (then the request's keys are applied)."""
    customer: Customer = {}
    for key, kind in CUSTOMER_SCHEMA.items():
        if kind == FieldType.DATE or key == "usingLanguage":
            continue  # absent until set
        if kind == FieldType.STR:
            customer[key] = ""
        elif kind in (FieldType.INT, FieldType.NUM):
            customer[key] = 0
        elif kind == FieldType.BOOL:
            customer[key] = False
        elif kind == FieldType.STR_LIST:
            customer[key] = []
    customer["postalAddress"] = dict.fromkeys(POSTAL_ADDRESS_KEYS, "")
    customer["distribution"] = {
        "type": "",
        "einvoiceCode": 0,
        "peppolEndpointId": "",
        "peppolEndpointIdScheme": "",
    }
    customer["clientNo"] = client_no
    customer["accountNo"] = account_no
    customer["customerNo"] = customer_no
    ordered = {k: customer[k] for k in CUSTOMER_SCHEMA if k in customer}
    return ordered
