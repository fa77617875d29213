"""Tracked state: which customer fields are watched, and how values are normalized before comparing.

Normalization: a missing key, `null`, `""`, `[]` and an object whose fields are all empty are the
same empty value (`None`); everything else compares exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.sync.kinds import default_groups

PERSONAL_FIELDS = ("ssn", "dateOfBirth")
# Carried in every state for context (event data, keys); a change of these alone is not an event.
CONTEXT_FIELDS = ("accountNo", "currency", "name")

# the built-in groups of the event-kind registry (`kinds.py`)
DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {g: tuple(f) for g, f in default_groups().items()}


@dataclass(frozen=True)
class TrackingRules:
    """The group → fields mapping (configuration) and whether personal fields are kept."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_GROUPS))
    include_personal: bool = False

    @classmethod
    def from_config(cls, groups: Mapping[str, Sequence[str]], include_personal: bool) -> TrackingRules:
        return cls({g: tuple(f) for g, f in groups.items()}, include_personal)

    def state_fields(self) -> tuple[str, ...]:
        fields: list[str] = list(CONTEXT_FIELDS)
        for names in self.groups.values():
            fields += [n for n in names if n not in fields]
        if self.include_personal:
            fields += [n for n in PERSONAL_FIELDS if n not in fields]
        return tuple(fields)


# JSON scalars: normalized to themselves unless empty (checked by exact type, the hot path of a run)
SCALARS = frozenset({str, int, float, bool})


def normalize(value: Any) -> Any:
    if value is None or value == "":
        return None
    if type(value) in SCALARS:
        return value
    if isinstance(value, Mapping):
        inner = {k: v for k, v in ((k, normalize(v)) for k, v in value.items()) if v is not None}
        return inner or None
    if isinstance(value, list | tuple):
        items = [normalize(v) for v in value]
        return items or None
    return value


def tracked_state(customer: Mapping[str, Any], rules: TrackingRules) -> dict[str, Any]:
    """The normalized state kept in the snapshot (empty values dropped)."""
    state: dict[str, Any] = {}
    for name in rules.state_fields():
        value = normalize(customer.get(name))
        if value is not None:
            state[name] = value
    return state


def group_values(state: Mapping[str, Any] | None, fields: Sequence[str]) -> dict[str, Any]:
    """The group's fields of a state, with empty ones as explicit nulls (consumers see every key)."""
    if state is None:
        return dict.fromkeys(fields)
    return {name: state.get(name) for name in fields}


def changed_paths(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Dotted paths of the fields that differ; objects are compared field by field."""
    paths: list[str] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if isinstance(old, Mapping) or isinstance(new, Mapping):
            old_map = old if isinstance(old, Mapping) else {}
            new_map = new if isinstance(new, Mapping) else {}
            sub = [
                f"{name}.{k}" for k in sorted(set(old_map) | set(new_map)) if old_map.get(k) != new_map.get(k)
            ]
            paths += sub or [name]
        else:
            paths.append(name)
    return paths
