"""Switchable, seeded faults.

A fault spec is a JSON object `{"seed": 7, "faults": [rule, ...]}` (a bare list of rules, or one
rule object, is accepted too). Each rule:

    {"kind": "429", "rate": 0.2, "count": 3, "skip": 0, "routes": ["list", "one"], "clients": [2218],
     ...kind-specific keys}

kind            what happens                                          kind-specific keys
"429"           429 + Retry-After                                     retryAfter (s, default 1),
                                                                      retryAfterFormat "seconds"|"http-date"|"none"
"500" "502"     that status with an error body                        retryAfter, retryAfterFormat (only sent
"503" "504"                                                           when retryAfter is given)
"401"           401 although the token is valid (forces a refresh)
"latency"       delay before the request is handled, then normal      ms (default 100), jitterMs (default 0)
"drop"          the connection is closed without any response         phase "before" (default: not handled)
                                                                      | "after" (handled, answer discarded)
"truncate"      the response body is cut off                          fraction (default 0.5),
                                                                      mode "json" (Content-Length fits the
                                                                      cut body: invalid JSON) | "http"
                                                                      (declared full length, then closed)
"query_expiry"  queryIds expire early                                 afterReads N: a query answers N page
                                                                      reads, the next is 404; afterSeconds S:
                                                                      404 once a query is S seconds old;
                                                                      neither: the query named by the
                                                                      request is expired now (rate/count)
"poison"        a 200 answer whose body is poison: the handler's      variant (required, see below)
                answer, rewritten (routes default: ["list"])

Poison variants (each breaks one promise of the API; the client must fail the run naming client,
page and field, and publish nothing of the page). Customer-level variants hit the page's first
customer (a placeholder customer is added to an empty page):

  invalid_json           a comma where a value belongs: not JSON
  not_object             the body is a JSON array
  wrong_type             balanceTotal is an object
  int_overflow           accountNo is 2^63 (one above signed 64-bit; valid JSON)
  nan                    balanceTotal is NaN (not JSON, but accepted by lenient parsers)
  infinity               balanceTotal is 1e400 (valid JSON, infinite as a double)
  invalid_utf8           the name holds the bytes FF FE
  truncated              the body stops half-way; Content-Length fits the cut body
  huge_string            the name is 200,000 characters long
  deep_nesting           an unknown field nested 20 levels deep
  missing_customerno     the customer has no customerNo
  bad_customerno         customerNo "12/34" (a '/', unusable in the GET-one path)
  control_customerno     customerNo with a NUL byte
  duplicate_customer     the page's last customer repeats its first
  duplicate_across_pages the first customerNo of the previous page this rule saw (of the same
                         client) replaces the first customer's on a page that lacks it; the first
                         page a rule sees is remembered and passed untouched
  summary_contradiction  currentPageSize is one more than the customers sent
  negative_total         totalCount is -5
  page_size_zero         pageSizeLimit is 0
  absurd_pages           totalPages is 1,000,000,000 and pageSizeLimit is null
  huge_list              naceCodes holds 100,000 items

Common keys:
  rate     probability 0..1 that a matching request is hit (default 1)
  count    at most this many requests are hit, then the rule is spent (default: no limit)
  skip     the first `skip` matching requests pass untouched (default 0)
  routes   any of "list", "one", "write", "token", or "*" (default: ["list", "one"]; query_expiry: list)
  clients  only requests for these client numbers (default: all; the token route has no client)

Rules are tried in order for every request. Every "latency" rule that hits adds its delay; the
first other rule that hits decides the outcome, and later rules are not consulted (so their
`skip`/`count` are not used up). Each rule draws from its own random.Random seeded with
(seed, position in the list), so the same spec and the same request sequence give the same faults.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

ROUTES: Final = ("list", "one", "write", "token")
STATUS_KINDS: Final = ("401", "429", "500", "502", "503", "504")
KINDS: Final = (*STATUS_KINDS, "latency", "drop", "truncate", "query_expiry", "poison")
POISON_VARIANTS: Final = (
    "invalid_json",
    "not_object",
    "wrong_type",
    "int_overflow",
    "nan",
    "infinity",
    "invalid_utf8",
    "truncated",
    "huge_string",
    "deep_nesting",
    "missing_customerno",
    "bad_customerno",
    "control_customerno",
    "duplicate_customer",
    "duplicate_across_pages",
    "summary_contradiction",
    "negative_total",
    "page_size_zero",
    "absurd_pages",
    "huge_list",
)

_COMMON_KEYS: Final = {"kind", "rate", "count", "skip", "routes", "clients"}
_RETRY_KEYS: Final = frozenset({"retryAfter", "retryAfterFormat"})
_KIND_KEYS: Final[dict[str, frozenset[str]]] = {
    "401": frozenset(),
    "429": _RETRY_KEYS,
    "500": _RETRY_KEYS,
    "502": _RETRY_KEYS,
    "503": _RETRY_KEYS,
    "504": _RETRY_KEYS,
    "latency": frozenset({"ms", "jitterMs"}),
    "drop": frozenset({"phase"}),
    "truncate": frozenset({"fraction", "mode"}),
    "query_expiry": frozenset({"afterReads", "afterSeconds"}),
    "poison": frozenset({"variant"}),
}


class FaultSpecError(ValueError):
    pass


@dataclass
class FaultRule:
    kind: str
    rate: float = 1.0
    count: int | None = None
    skip: int = 0
    routes: frozenset[str] = frozenset({"list", "one"})
    clients: frozenset[int] | None = None
    retry_after: int | None = None
    retry_after_format: str = "seconds"
    ms: float = 100.0
    jitter_ms: float = 0.0
    phase: str = "before"
    fraction: float = 0.5
    mode: str = "json"
    after_reads: int | None = None
    after_seconds: float | None = None
    variant: str = ""
    remembered: dict[int | None, str] = field(default_factory=dict, repr=False)  # duplicate_across_pages
    rng: random.Random = field(default_factory=random.Random, repr=False)
    seen: int = 0
    fired: int = 0
    source: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_policy(self) -> bool:
        """query_expiry with afterReads/afterSeconds: checked when a query page is read, not per request."""
        return self.kind == "query_expiry" and (
            self.after_reads is not None or self.after_seconds is not None
        )

    def applies_to(self, route: str, client_no: int | None) -> bool:
        if route not in self.routes:
            return False
        return self.clients is None or client_no in self.clients

    def hit(self) -> bool:
        """Called for a matching request: does the rule fire on it?"""
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        if self.rate < 1.0 and self.rng.random() >= self.rate:
            return False
        self.fired += 1
        return True

    def retry_after_header(self, now: float | None = None) -> str | None:
        seconds = self.retry_after
        if seconds is None:
            if self.kind != "429":
                return None
            seconds = 1
        if self.retry_after_format == "none":
            return None
        if self.retry_after_format == "http-date":
            return email.utils.formatdate((now if now is not None else time.time()) + seconds, usegmt=True)
        return str(seconds)

    def latency_seconds(self) -> float:
        jitter = self.rng.uniform(0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        return (self.ms + jitter) / 1000.0

    def describe(self) -> dict[str, Any]:
        return {
            **self.source,
            "seen": self.seen,
            "fired": self.fired,
            "remaining": None if self.count is None else max(0, self.count - self.fired),
        }


def _number(
    rule: dict[str, Any], key: str, low: float, high: float | None = None, integer: bool = False
) -> Any:
    value = rule[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        raise FaultSpecError(f"{key} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise FaultSpecError(f"{key} must be within {low}..{high if high is not None else ''}, got {value!r}")
    return value


def _choice(rule: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = rule[key]
    if value not in allowed:
        raise FaultSpecError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def parse_rule(raw: Any, seed: int, position: int) -> FaultRule:
    if not isinstance(raw, dict):
        raise FaultSpecError(f"fault #{position}: want an object, got {raw!r}")
    kind = str(raw.get("kind", ""))
    if kind not in KINDS:
        raise FaultSpecError(
            f"fault #{position}: kind must be one of {', '.join(KINDS)}, got {raw.get('kind')!r}"
        )
    unknown = set(raw) - _COMMON_KEYS - _KIND_KEYS[kind]
    if unknown:
        raise FaultSpecError(f"fault #{position} ({kind}): unknown keys {', '.join(sorted(unknown))}")
    try:
        rule = FaultRule(kind=kind, rng=random.Random(f"fault:{seed}:{position}"), source=dict(raw))
        if kind in ("query_expiry", "poison"):
            rule.routes = frozenset({"list"})
        if kind == "poison":
            if "variant" not in raw:
                raise FaultSpecError(f"variant is required, one of {', '.join(POISON_VARIANTS)}")
            rule.variant = _choice(raw, "variant", POISON_VARIANTS)
        if "rate" in raw:
            rule.rate = float(_number(raw, "rate", 0, 1))
        if "count" in raw:
            rule.count = int(_number(raw, "count", 0, integer=True))
        if "skip" in raw:
            rule.skip = int(_number(raw, "skip", 0, integer=True))
        if "routes" in raw:
            routes = raw["routes"]
            if routes == "*" or routes == ["*"]:
                routes = list(ROUTES)
            if isinstance(routes, str):
                routes = [routes]
            if not isinstance(routes, list) or not routes or any(r not in ROUTES for r in routes):
                raise FaultSpecError(
                    f'routes must be a list of {", ".join(ROUTES)} (or "*"), got {raw["routes"]!r}'
                )
            rule.routes = frozenset(routes)
        if "clients" in raw:
            clients = raw["clients"]
            if not isinstance(clients, list) or any(
                isinstance(c, bool) or not isinstance(c, int) for c in clients
            ):
                raise FaultSpecError(f"clients must be a list of client numbers, got {clients!r}")
            rule.clients = frozenset(clients)
        if "retryAfter" in raw:
            rule.retry_after = int(_number(raw, "retryAfter", 0, integer=True))
        if "retryAfterFormat" in raw:
            rule.retry_after_format = _choice(raw, "retryAfterFormat", ("seconds", "http-date", "none"))
        if "ms" in raw:
            rule.ms = float(_number(raw, "ms", 0, 600_000))
        if "jitterMs" in raw:
            rule.jitter_ms = float(_number(raw, "jitterMs", 0, 600_000))
        if "phase" in raw:
            rule.phase = _choice(raw, "phase", ("before", "after"))
        if "fraction" in raw:
            rule.fraction = float(_number(raw, "fraction", 0, 1))
            if rule.fraction >= 1:
                raise FaultSpecError("fraction must be below 1")
        if "mode" in raw:
            rule.mode = _choice(raw, "mode", ("json", "http"))
        if "afterReads" in raw:
            rule.after_reads = int(_number(raw, "afterReads", 0, integer=True))
        if "afterSeconds" in raw:
            rule.after_seconds = float(_number(raw, "afterSeconds", 0))
    except FaultSpecError as exc:
        raise FaultSpecError(f"fault #{position} ({kind}): {exc}") from None
    return rule


# --- poison bodies ------------------------------------------------------------------------------

_PLACEHOLDER = {"customerNo": "poison-0", "name": "Poison Placeholder", "balanceTotal": 0}


def poison_body(rule: FaultRule, body: bytes, client_no: int | None) -> bytes:
    """The 200 answer `body` (a customer list, or one customer) rewritten by the rule's variant."""
    variant = rule.variant
    if variant == "truncated":
        return body[: max(1, len(body) // 2)]
    if variant == "not_object":
        return b"[" + body + b"]"
    data: Any = orjson.loads(body)
    is_list = isinstance(data, dict) and isinstance(data.get("customers"), list)
    customers: list[dict[str, Any]] = data["customers"] if is_list else [data]
    summary: dict[str, Any] = data.get("summary", {}) if is_list else {}
    if not customers:
        customers.append(dict(_PLACEHOLDER))
    first = customers[0]
    marker = "__poison__"
    if variant in ("invalid_json", "nan", "infinity", "int_overflow", "invalid_utf8"):
        first["balanceTotal" if variant != "invalid_utf8" else "name"] = marker
        if variant == "int_overflow":
            first["accountNo"], first["balanceTotal"] = marker, 0
        raw = orjson.dumps(data)
        literal = {
            "invalid_json": b",",
            "nan": b"NaN",
            "infinity": b"1e400",
            "int_overflow": str(2**63).encode(),
            "invalid_utf8": b'"\xff\xfe"',
        }[variant]
        return raw.replace(f'"{marker}"'.encode(), literal, 1)
    if variant == "wrong_type":
        first["balanceTotal"] = {"amount": 1}
    elif variant == "huge_string":
        first["name"] = "x" * 200_000
    elif variant == "deep_nesting":
        nested: Any = 1
        for _ in range(20):
            nested = {"n": nested}
        first["poisonExtra"] = nested
    elif variant == "missing_customerno":
        first.pop("customerNo", None)
    elif variant == "bad_customerno":
        first["customerNo"] = "12/34"
    elif variant == "control_customerno":
        first["customerNo"] = "12\u000034"
    elif variant == "duplicate_customer":
        if len(customers) == 1:
            customers.append(dict(first))
        else:
            customers[-1] = dict(first)
    elif variant == "duplicate_across_pages":
        nos = {str(c.get("customerNo")) for c in customers}
        earlier = rule.remembered.get(client_no)
        if earlier is None or earlier in nos:
            rule.remembered[client_no] = str(first.get("customerNo"))
            return body
        first["customerNo"] = earlier
    elif variant == "summary_contradiction":
        summary["currentPageSize"] = len(customers) + 1
    elif variant == "negative_total":
        summary["totalCount"] = -5
    elif variant == "page_size_zero":
        summary["pageSizeLimit"] = 0
    elif variant == "absurd_pages":
        summary["totalPages"], summary["pageSizeLimit"] = 1_000_000_000, None
    elif variant == "huge_list":
        first["naceCodes"] = ["01.110"] * 100_000
    return orjson.dumps(data if is_list else first)


@dataclass
class Decision:
    delay: float = 0.0
    rule: FaultRule | None = None


class FaultEngine:
    """The active fault rules; asked once per request."""

    def __init__(self) -> None:
        self.seed = 0
        self.rules: list[FaultRule] = []
        self.fired_by_kind: dict[str, int] = {}

    def set(self, spec: Any, default_seed: int) -> None:
        """Replace the rules by `spec` (validated as a whole first)."""
        seed = default_seed
        raw_rules: Any
        if isinstance(spec, list):
            raw_rules = spec
        elif isinstance(spec, dict) and "kind" in spec:
            raw_rules = [spec]
        elif isinstance(spec, dict):
            unknown = set(spec) - {"seed", "faults"}
            if unknown:
                raise FaultSpecError(f"unknown keys {', '.join(sorted(unknown))} (want seed, faults)")
            if "seed" in spec:
                if isinstance(spec["seed"], bool) or not isinstance(spec["seed"], int):
                    raise FaultSpecError(f"seed must be an integer, got {spec['seed']!r}")
                seed = spec["seed"]
            raw_rules = spec.get("faults", [])
            if not isinstance(raw_rules, list):
                raise FaultSpecError("faults must be a list of fault rules")
        else:
            raise FaultSpecError('want {"seed": n, "faults": [...]}, a list of rules or one rule')
        rules = [parse_rule(raw, seed, i) for i, raw in enumerate(raw_rules)]
        self.seed = seed
        self.rules = rules

    def clear(self) -> None:
        self.rules = []

    def reset_counters(self) -> None:
        self.fired_by_kind = {}

    def describe(self) -> dict[str, Any]:
        return {"seed": self.seed, "faults": [r.describe() for r in self.rules]}

    def decide(self, route: str, client_no: int | None, continuation: bool) -> Decision:
        decision = Decision()
        for rule in self.rules:
            if rule.is_policy or not rule.applies_to(route, client_no):
                continue
            if rule.kind == "query_expiry" and not continuation:
                continue
            if rule.kind == "latency":
                if rule.hit():
                    decision.delay += rule.latency_seconds()
                    self._count(rule)
                continue
            if rule.hit():
                decision.rule = rule
                self._count(rule)
                break
        return decision

    def query_expired(self, client_no: int, reads: int, age: float) -> bool:
        """Policy rules: has a query that answered `reads` page reads and is `age` s old expired?"""
        for rule in self.rules:
            if not rule.is_policy or not rule.applies_to("list", client_no):
                continue
            if (rule.after_reads is not None and reads >= rule.after_reads) or (
                rule.after_seconds is not None and age >= rule.after_seconds
            ):
                rule.seen += 1
                rule.fired += 1
                self._count(rule)
                return True
        return False

    def _count(self, rule: FaultRule) -> None:
        self.fired_by_kind[rule.kind] = self.fired_by_kind.get(rule.kind, 0) + 1
