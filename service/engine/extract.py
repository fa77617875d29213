"""The tracked state of a customer, read straight from its API model: the hot path of every run.

`customer_state(c, names, declared)` equals `tracked_state(customer_fields(c, names), rules)` (the
reference in the pure core; a test checks both agree) without building the intermediate dict.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from service.amili.models import Customer
from service.sync.state import SCALARS, normalize

__all__ = ["customer_fields", "customer_state"]


def customer_fields(customer: Customer, names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of a customer model as plain JSON values (declared or unknown fields)."""
    extra = customer.model_extra or {}
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(customer, name, None) if name in type(customer).model_fields else extra.get(name)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        out[name] = value
    return out


def _model_state(model: BaseModel) -> Any:
    """`normalize(model.model_dump(mode="json"))`, read straight from the model when every value is
    a plain scalar (nothing to convert; the API models declare no custom serializers)."""
    extra = model.__pydantic_extra__
    items = {**model.__dict__, **extra}.items() if extra else model.__dict__.items()
    out: dict[str, Any] = {}
    for key, value in items:
        if value is None or value == "":
            continue
        if type(value) not in SCALARS:
            return normalize(model.model_dump(mode="json"))
        out[key] = value
    return out or None


def customer_state(customer: Customer, names: tuple[str, ...], declared: frozenset[str]) -> dict[str, Any]:
    """The tracked state of `customer`: the fields `names`, empty values left out."""
    values = customer.__dict__
    extra = customer.__pydantic_extra__
    state: dict[str, Any] = {}
    for name in names:
        value = values.get(name) if name in declared else (extra.get(name) if extra else None)
        if value is None or value == "":
            continue
        if type(value) not in SCALARS:
            value = _model_state(value) if isinstance(value, BaseModel) else normalize(value)
            if value is None:
                continue
        state[name] = value
    return state
