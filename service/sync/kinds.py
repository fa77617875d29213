"""The event kinds: one registry entry per kind of change event, from which everything else derives.

An entry names the kind (`balance`, `created`, ...), its CloudEvents type, the topic setting that
holds its topic (and that setting's default), the pydantic model of its data, the customer fields
it tracks (tracked groups only) and the fields it adds to the common event data (balance: `delta`
and `currency`). The settings (default groups, topic defaults), topic creation, the event builder,
the Kafka contract and its AsyncAPI document, `amili-sync tail` and the tests' exactly-once oracle
all read this registry, so a new kind is one entry here plus its model in `event_models.py`.

A group configured in `AMILI_SYNC_SYNC__GROUPS` that is not built in (say `email:
["emailAddressDocument"]`) gets an entry derived from its name: type
`amili.customer.email_changed.v1`, topic `{prefix}.email-changed`, a data model whose `before` and
`after` hold its fields. The built-in group kinds follow the same naming rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from service.sync import event_models as em

TYPE_PREFIX = "amili.customer."
TYPE_VERSION = ".v1"
LIFECYCLE = "lifecycle"  # the topic group of created / removed / baseline events
CREATED, REMOVED, BASELINE = "created", "removed", "baseline"
GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,48}$")

# The kind-specific fields of an event's data, from the group's before/after values and the
# customer's newest full state (`accountNo`, `currency`, ...).
Extras = Callable[[Mapping[str, Any] | None, Mapping[str, Any] | None, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class EventKind:
    name: str  # the change's kind: a tracked group's name, or created / removed / baseline
    ce_type: str
    topic_setting: str | None  # the `TopicSettings` field holding the topic suffix (None: derived)
    default_topic: str  # that field's default (the suffix after the prefix)
    model: type[BaseModel]  # the event's `data`
    description: str  # of its publication in the Kafka contract (AsyncAPI)
    fields: tuple[str, ...] = ()  # the tracked customer fields (groups only)
    extras: Extras | None = None

    @property
    def is_group(self) -> bool:
        return self.name not in LIFECYCLE_NAMES

    @property
    def topic_group(self) -> str:
        """What `TopicSettings.event_topic` takes: the group's name, or `lifecycle`."""
        return self.name if self.is_group else LIFECYCLE


def group_type(name: str) -> str:
    """`balance` -> `amili.customer.balance_changed.v1`."""
    return f"{TYPE_PREFIX}{name}_changed{TYPE_VERSION}"


def group_topic(name: str) -> str:
    """`registration_status` -> `registration-status-changed` (after the prefix)."""
    return name.replace("_", "-") + "-changed"


def balance_extras(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, context: Mapping[str, Any]
) -> dict[str, Any]:
    """`delta` (after - before, a missing side counted as 0) and the customer's `currency`."""
    old = (before or {}).get("balanceTotal")
    new = (after or {}).get("balanceTotal")
    return {"delta": _delta(old, new), "currency": context.get("currency")}


def _delta(before: Any, after: Any) -> float | int | None:
    if not isinstance(after, int | float) and not isinstance(before, int | float):
        return None
    b = before if isinstance(before, int | float) else 0
    a = after if isinstance(after, int | float) else 0
    delta = a - b
    return round(delta, 6) if isinstance(delta, float) else delta


BALANCE = EventKind(
    "balance",
    group_type("balance"),
    "balance_changed",
    group_topic("balance"),
    em.BalanceChanged,
    "Balance changed (CloudEvents binary mode, ce_* headers).",
    ("balanceTotal",),
    balance_extras,
)
ADDRESS = EventKind(
    "address",
    group_type("address"),
    "address_changed",
    group_topic("address"),
    em.AddressChanged,
    "Postal address changed (CloudEvents binary mode).",
    ("postalAddress",),
)
REGISTRATION_STATUS = EventKind(
    "registration_status",
    group_type("registration_status"),
    "registration_status_changed",
    group_topic("registration_status"),
    em.RegistrationStatusChanged,
    "Registration status changed (CloudEvents binary mode).",
    ("registrationStatusCode", "registrationStatusDate"),
)
CREATED_KIND = EventKind(
    CREATED,
    f"{TYPE_PREFIX}created{TYPE_VERSION}",
    LIFECYCLE,
    LIFECYCLE,
    em.CustomerCreated,
    "Customer created (ce_type amili.customer.created.v1).",
)
REMOVED_KIND = EventKind(
    REMOVED,
    f"{TYPE_PREFIX}removed{TYPE_VERSION}",
    LIFECYCLE,
    LIFECYCLE,
    em.CustomerRemoved,
    "Customer removed (ce_type amili.customer.removed.v1).",
)
BASELINE_KIND = EventKind(
    BASELINE,
    f"{TYPE_PREFIX}baseline{TYPE_VERSION}",
    LIFECYCLE,
    LIFECYCLE,
    em.CustomerBaseline,
    "Baseline of a client's first run (amili.customer.baseline.v1).",
)

BUILTIN_GROUPS: tuple[EventKind, ...] = (BALANCE, ADDRESS, REGISTRATION_STATUS)
LIFECYCLE_KINDS: tuple[EventKind, ...] = (CREATED_KIND, REMOVED_KIND, BASELINE_KIND)
LIFECYCLE_NAMES = frozenset(k.name for k in LIFECYCLE_KINDS)
BUILTIN: dict[str, EventKind] = {k.name: k for k in (*BUILTIN_GROUPS, *LIFECYCLE_KINDS)}
RESERVED_NAMES = LIFECYCLE_NAMES | {LIFECYCLE}


# ce_type -> data model of every built-in kind: the JSON Schema files (`schemas/events/`) are these
EVENT_MODELS: dict[str, type[BaseModel]] = {k.ce_type: k.model for k in BUILTIN.values()}


def json_schema(event_type: str) -> dict[str, object]:
    schema = EVENT_MODELS[event_type].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{event_type}.json"
    return schema


def default_groups() -> dict[str, list[str]]:
    """The tracked groups of the default settings: group -> customer fields."""
    return {k.name: list(k.fields) for k in BUILTIN_GROUPS}


def check_group(name: str, fields: Sequence[str]) -> None:
    """Raise ValueError when a configured group cannot become an event kind."""
    if not GROUP_NAME.match(name):
        raise ValueError(
            f"group {name!r}: a group name is lower-case letters, digits and _ (it names a topic and a type)"
        )
    if name in RESERVED_NAMES:
        raise ValueError(f"group {name!r}: the name is reserved for lifecycle events")
    if not fields:
        raise ValueError(f"group {name!r}: a group tracks at least one customer field")


def kind(name: str) -> EventKind:
    """The entry of a change kind: built in, or derived from a custom group's name (fields unknown)."""
    return BUILTIN.get(name) or custom_group(name, ())


def topic_kind(topic_group: str) -> EventKind:
    """An entry published on this topic group's topic (`lifecycle`: any lifecycle kind)."""
    return CREATED_KIND if topic_group == LIFECYCLE else kind(topic_group)


def group_kind(name: str, fields: Sequence[str]) -> EventKind:
    """The entry of a configured group: the built-in one of that name, or a derived one."""
    builtin = BUILTIN.get(name)
    return builtin if builtin is not None and builtin.is_group else custom_group(name, tuple(fields))


def group_kinds(groups: Mapping[str, Sequence[str]]) -> list[EventKind]:
    """The kinds of the configured groups, in configuration order."""
    return [group_kind(name, fields) for name, fields in groups.items()]


def all_kinds(groups: Mapping[str, Sequence[str]]) -> list[EventKind]:
    """Every kind a worker with these groups publishes: its groups, then the lifecycle kinds."""
    return [*group_kinds(groups), *LIFECYCLE_KINDS]


def topic_groups(groups: Iterable[str]) -> list[str]:
    """The topic groups of the configured groups plus `lifecycle`, each once, in order."""
    return list(dict.fromkeys([*(kind(g).topic_group for g in groups), LIFECYCLE]))


@cache
def custom_group(name: str, fields: tuple[str, ...]) -> EventKind:
    return EventKind(
        name,
        group_type(name),
        None,
        group_topic(name),
        _group_model(name, fields),
        f"{name} changed (a configured group; CloudEvents binary mode).",
        fields,
    )


class _CustomState(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _group_model(name: str, fields: tuple[str, ...]) -> type[BaseModel]:
    """The data model of a configured group: the common fields, `before`/`after` with its fields."""
    title = "".join(part.capitalize() for part in name.split("_"))
    definitions: dict[str, Any] = {f: (Any, None) for f in fields}
    state = create_model(f"{title}State", __base__=_CustomState, **definitions)
    event: type[BaseModel] = create_model(
        f"{title}Changed",
        __base__=em.EventBase,
        __doc__=f"`{group_type(name)}` on `…{group_topic(name)}`.",
        before=(state, ...),
        after=(state, ...),
    )
    return event
