"""Malformed fetch requests by kind: each kind makes a (key, value) pair from a seeded random and
names the DLQ code the worker must give it. Shared by the unit test of the request schema and the
bad-input suite (`scripts/bad-input`), which sends them to a real worker."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class BadRequest:
    kind: str
    key: bytes | None
    value: bytes | None
    code: str  # the dlq-error-code the worker must give it


def good_body(client_no: int, rng: random.Random) -> dict[str, Any]:
    return {
        "requestId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "clientNo": client_no,
        "requestedAt": "2026-11-24T10:00:00+00:00",
    }


def _dumps(body: Any) -> bytes:
    return json.dumps(body).encode()  # the standard library writes integers of any size


Maker = Callable[[int, random.Random], tuple[bytes | None, bytes | None]]


def _with(**changes: Any) -> Maker:
    def make(client: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
        body = {**good_body(client, rng), **changes}
        return str(client).encode(), _dumps({k: v for k, v in body.items() if v is not _DROP})

    return make


_DROP = object()


def _huge_client(client: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
    big = INT64_MAX + 1 + rng.randrange(10**6)  # valid JSON, keyed correctly: passes any JSON parser
    return str(big).encode(), _dumps({**good_body(client, rng), "clientNo": big})


def _beyond_u64_client(client: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
    big = 2**64 + rng.randrange(10**6)
    return str(big).encode(), _dumps({**good_body(client, rng), "clientNo": big})


def _raw(text: Callable[[int, random.Random], bytes], key: bool = True) -> Maker:
    def make(client: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
        return (str(client).encode() if key else None), text(client, rng)

    return make


def _deep(client: int, rng: random.Random) -> bytes:
    body = good_body(client, rng)
    nested: Any = "x"
    for _ in range(rng.randrange(10, 60)):
        nested = {"n": nested}
    return _dumps({**body, "filters": nested})


def _very_deep(client: int, rng: random.Random) -> bytes:
    depth = rng.randrange(2000, 4000)
    return b'{"requestId": ' + b"[" * depth + b"]" * depth + b"}"


def _bad_utf8(client: int, rng: random.Random) -> bytes:
    body = _dumps({**good_body(client, rng), "reason": "MARK"})
    return body.replace(b"MARK", bytes([0xFF, 0xFE, rng.randrange(0x80, 0xC0)]))


def _duplicate_key(client: int, rng: random.Random) -> bytes:
    body = good_body(client, rng)
    text = _dumps(body)[:-1]
    return text + b', "clientNo": ' + str(client + 1).encode() + b"}"


def _oversize(client: int, rng: random.Random) -> bytes:
    return _dumps({**good_body(client, rng), "reason": "x" * (70_000 + rng.randrange(1000))})


def _not_object(client: int, rng: random.Random) -> bytes:
    return _dumps([good_body(client, rng)])


def _nan_client(client: int, rng: random.Random) -> bytes:
    return _dumps(good_body(client, rng)).replace(str(client).encode(), b"NaN", 1)


def _key_mismatch(client: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
    return str(client + 1 + rng.randrange(100)).encode(), _dumps(good_body(client, rng))


def _long_key(client: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
    return b"0" * 30 + str(client).encode(), _dumps(good_body(client, rng))


KINDS: dict[str, tuple[Maker, str]] = {
    "clientNo_above_int64": (_huge_client, "out_of_range"),
    "clientNo_above_uint64": (_beyond_u64_client, "out_of_range"),
    "clientNo_zero": (_with(clientNo=0), "out_of_range"),
    "clientNo_negative": (_with(clientNo=-5), "out_of_range"),
    "clientNo_string": (_with(clientNo="2218"), "invalid"),
    "clientNo_float": (_with(clientNo=2218.5), "invalid"),
    "clientNo_bool": (_with(clientNo=True), "invalid"),
    "clientNo_nan": (_raw(_nan_client), "bad_json"),
    "unknown_field": (_with(colour="red"), "unknown_field"),
    "unknown_filter": (_with(filters={"colour": "red"}), "unknown_field"),
    "missing_requestId": (_with(requestId=_DROP), "missing_field"),
    "missing_requestedAt": (_with(requestedAt=_DROP), "missing_field"),
    "bad_uuid": (_with(requestId="not-a-uuid"), "invalid"),
    "bad_date": (_with(requestedAt="2026-13-45T99:00:00Z"), "invalid"),
    "naive_date": (_with(requestedAt="2026-11-24T10:00:00"), "invalid"),
    "null_byte_in_filter": (_with(filters={"name": "Ola\u0000Nordmann"}), "invalid"),
    "newline_in_reason": (_with(reason="nightly\r\nX-Injected: 1"), "invalid"),
    "long_filter": (_with(filters={"name": "N" * 201}), "too_long"),
    "long_reason": (_with(reason="r" * 501), "too_long"),
    "filter_wrong_type": (_with(filters={"name": 42}), "invalid"),
    "filters_not_object": (_with(filters=["name", "A"]), "invalid"),
    "empty_filter_value": (_with(filters={"name": ""}), "too_short"),
    "deep_nesting": (_raw(_deep), "too_deep"),
    "very_deep_nesting": (_raw(_very_deep), "too_deep"),
    "invalid_utf8": (_raw(_bad_utf8), "bad_utf8"),
    "duplicate_key": (_raw(_duplicate_key), "duplicate_key"),
    "oversize": (_raw(_oversize), "oversize"),
    "not_json": (_raw(lambda c, r: b"{clientNo: " + str(c).encode()), "bad_json"),
    "not_object": (_raw(_not_object), "bad_json"),
    "empty_body": (_raw(lambda c, r: b""), "bad_json"),
    "no_key": (_raw(lambda c, r: _dumps(good_body(c, r)), key=False), "no_key"),
    "null_value": (lambda c, r: (str(c).encode(), None), "empty"),
    "key_mismatch": (_key_mismatch, "key_mismatch"),
    "key_with_leading_zeros": (_long_key, "key_mismatch"),
}


def make(kind: str, client_no: int, rng: random.Random) -> BadRequest:
    maker, code = KINDS[kind]
    key, value = maker(client_no, rng)
    return BadRequest(kind, key, value, code)


def many(n: int, client_nos: list[int], seed: int = 13) -> list[BadRequest]:
    """`n` bad requests cycling through every kind (and the given clients)."""
    rng = random.Random(seed)
    kinds = list(KINDS)
    return [make(kinds[i % len(kinds)], client_nos[i % len(client_nos)], rng) for i in range(n)]
