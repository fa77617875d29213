"""The sandbox's modes are StrEnums: the strings the CLI, the switches JSON and tests pass still work."""

from __future__ import annotations

import pytest

from service.sandbox.__main__ import build_parser
from service.sandbox.app import SandboxConfig
from service.sandbox.config import (
    CustomerNoFilter,
    ListOrder,
    NameMix,
    NextPageOnLast,
    OverCap,
    TotalCount,
)
from service.sandbox.names import NAME_MIXES


def test_plain_strings_become_members() -> None:
    config = SandboxConfig(
        clients={1: 10},
        total_count="capped",  # type: ignore[arg-type]
        next_page_on_last="absent",  # type: ignore[arg-type]
        over_cap="error",  # type: ignore[arg-type]
        list_order="name",  # type: ignore[arg-type]
        customer_no_filter="prefix",  # type: ignore[arg-type]
        name_mix="dense",  # type: ignore[arg-type]
        client_name_mix={2: "stuck"},  # type: ignore[dict-item]
    )
    assert config.total_count is TotalCount.CAPPED
    assert config.next_page_on_last is NextPageOnLast.ABSENT
    assert config.over_cap is OverCap.ERROR
    assert config.list_order is ListOrder.NAME
    assert config.customer_no_filter is CustomerNoFilter.PREFIX
    assert config.name_mix is NameMix.DENSE
    assert config.client_name_mix == {2: NameMix.STUCK}
    assert config.switches() == {"totalCount": "capped", "listOrder": "name", "customerNoFilter": "prefix"}


def test_an_unknown_mode_fails_at_start() -> None:
    with pytest.raises(ValueError, match="sideways"):
        SandboxConfig(clients={1: 10}, list_order="sideways")  # type: ignore[arg-type]


def test_name_mixes_match_the_generator() -> None:
    assert tuple(NameMix) == NAME_MIXES


@pytest.mark.parametrize(
    ("option", "mode"),
    [
        ("--total-count", TotalCount),
        ("--next-page-on-last", NextPageOnLast),
        ("--over-cap", OverCap),
        ("--list-order", ListOrder),
        ("--customerno-filter", CustomerNoFilter),
    ],
)
def test_cli_choices_are_the_modes(option: str, mode: type[TotalCount]) -> None:
    action = next(a for a in build_parser()._actions if option in a.option_strings)
    assert action.choices is not None
    assert list(action.choices) == [m.value for m in mode]
