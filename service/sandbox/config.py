"""The sandbox's configuration and its modes.

Every mode is a `StrEnum`, so the plain strings the CLI, the runtime switches JSON and the tests
pass ("capped", "name", ...) are accepted as they are and compare equal to the members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

# One small class per mode: their member lists are declarations, alike in shape by nature (as the
# service's own modes in service/config.py), with no logic to share.


class TotalCount(StrEnum):
    """summary.totalCount: every match, or at most maximumCount."""

    TRUE = "true"
    CAPPED = "capped"


class NextPageOnLast(StrEnum):
    """summary.nextPage (and lastPage) when there is none: null, or left out."""

    NULL = "null"
    ABSENT = "absent"


class OverCap(StrEnum):
    """pagesize/maximumcount above the cap: clamp to the cap, or answer 400."""

    CLAMP = "clamp"
    ERROR = "error"


class ListOrder(StrEnum):
    """Order of every listing: customerNo (key) order, or by casefolded name (then key)."""

    KEY = "key"
    NAME = "name"


class CustomerNoFilter(StrEnum):
    """The customerno list filter: exact match, or prefix match."""

    EXACT = "exact"
    PREFIX = "prefix"


class NameMix(StrEnum):
    """How generated names are made (names.py describes each mix)."""

    CLASSIC = "classic"
    DENSE = "dense"
    STUCK = "stuck"


@dataclass
class SandboxConfig:
    clients: dict[int, int]
    seed: int = 7
    base_path: str = "/arm/v1"
    token_path: str = "/token"  # noqa: S105 - a path, not a secret
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"  # noqa: S105 - the documented sandbox default
    static_tokens: tuple[str, ...] = ()
    token_ttl: int = 3600
    token_clients: tuple[int, ...] | None = None  # None: every configured client
    jwt_secret: str | None = None  # None: random per start
    token_numbers_as_strings: bool = False
    query_ttl: float = 900.0
    max_open_queries: int = 10_000
    total_count: TotalCount = TotalCount.TRUE
    next_page_on_last: NextPageOnLast = NextPageOnLast.NULL
    over_cap: OverCap = OverCap.CLAMP
    page_size_default: int = 100
    page_size_cap: int = 1000
    maximum_count_cap: int = 10_000
    public_url: str | None = None  # scheme://host[:port] for nextPage/lastPage; default: from the request
    faults: Any = None  # initial fault spec
    page_cache_bytes: int = 64 * 1024 * 1024
    prefetch: bool = True  # render page n+1 of a query (into the page cache) right after serving page n
    list_order: ListOrder = ListOrder.KEY
    customer_no_filter: CustomerNoFilter = CustomerNoFilter.EXACT
    name_mix: NameMix = NameMix.CLASSIC
    client_name_mix: dict[int, NameMix] = field(default_factory=dict)  # per client, over name_mix

    def __post_init__(self) -> None:
        # plain strings (CLI, tests) become members; an unknown one fails here, at start-up
        self.total_count = TotalCount(self.total_count)
        self.next_page_on_last = NextPageOnLast(self.next_page_on_last)
        self.over_cap = OverCap(self.over_cap)
        self.list_order = ListOrder(self.list_order)
        self.customer_no_filter = CustomerNoFilter(self.customer_no_filter)
        self.name_mix = NameMix(self.name_mix)
        self.client_name_mix = {no: NameMix(mix) for no, mix in self.client_name_mix.items()}

    def switches(self) -> dict[str, str]:
        return {
            "totalCount": self.total_count,
            "listOrder": self.list_order,
            "customerNoFilter": self.customer_no_filter,
        }


# runtime switches (POST /_sandbox/config): JSON key -> (attribute, the mode it takes)
SWITCHES: Final[dict[str, tuple[str, type[StrEnum]]]] = {
    "totalCount": ("total_count", TotalCount),
    "listOrder": ("list_order", ListOrder),
    "customerNoFilter": ("customer_no_filter", CustomerNoFilter),
}


def switch_values(mode: type[StrEnum]) -> list[str]:
    """The values a switch accepts, as the strings a client sends."""
    return [member.value for member in mode]
