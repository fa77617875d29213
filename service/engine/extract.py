"""The tracked state of a customer, read straight from its decoded struct: the hot path of every run.

`customer_state(c, names, declared)` equals `tracked_state(customer_fields(c, names), rules)` (the
reference in the pure core; a test checks both agree) without building the intermediate dict. The
struct's attributes are the decoded values themselves (str, int, float, bool, lists of str, nested
structs), so a scalar is taken as it is and only lists and nested objects are normalized.
"""

from __future__ import annotations

from typing import Any

from service.amili.models import DECLARED_FIELDS, Customer, Distribution, PostalAddress, as_json
from service.sync.state import SCALARS, normalize

__all__ = ["customer_fields", "customer_state"]


def customer_fields(customer: Customer, names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of a customer as plain JSON values (declared or unknown fields)."""
    extra = customer.model_extra or {}
    return {
        name: as_json(getattr(customer, name)) if name in DECLARED_FIELDS else extra.get(name)
        for name in names
    }


def _struct_state(value: PostalAddress | Distribution) -> Any:
    """`normalize(as_json(value))` of a nested struct. Its declared fields hold scalars only (their
    types say so), so without unknown fields the state is its non-empty values as they are."""
    if value.model_extra:
        return normalize(as_json(value))
    out: dict[str, Any] = {}
    for key in _NESTED_FIELDS[type(value)]:  # a plain loop: faster here than a comprehension
        item = getattr(value, key)
        if item is not None and item != "":
            out[key] = item
    return out or None


_NESTED = (PostalAddress, Distribution)
_NESTED_FIELDS = {cls: tuple(f for f in cls.__struct_fields__ if f != "model_extra") for cls in _NESTED}


def customer_state(customer: Customer, names: tuple[str, ...], declared: frozenset[str]) -> dict[str, Any]:
    """The tracked state of `customer`: the fields `names`, empty values left out."""
    extra = customer.model_extra
    state: dict[str, Any] = {}
    for name in names:
        value = getattr(customer, name) if name in declared else (extra.get(name) if extra else None)
        if value is None or value == "":
            continue
        if type(value) not in SCALARS:
            value = _struct_state(value) if isinstance(value, _NESTED) else normalize(value)
            if value is None:
                continue
        state[name] = value
    return state
