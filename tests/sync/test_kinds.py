"""The event-kind registry: the contract's names, and everything that derives from it (settings,
topics, event building, the Kafka contract), for the built-in kinds and for a group added through
settings alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from service.config import Settings, SettingsError, TopicSettings, load_settings
from service.entrypoints.contract import publications
from service.sync import kinds
from service.sync.diff import StoredState, diff_customer
from service.sync.events import EventContext, build_event
from service.sync.state import DEFAULT_GROUPS, TrackingRules, tracked_state

CUSTOM_GROUPS = '{"balance":["balanceTotal"],"credit_limit":["limitAmount","dueDays"]}'


def context() -> EventContext:
    return EventContext(2218, uuid.uuid4(), datetime(2026, 11, 24, tzinfo=UTC), "urn:amili:arm", "https://s")


def test_the_built_in_kinds_are_the_published_contract() -> None:
    contract = {
        "balance": ("amili.customer.balance_changed.v1", "balance-changed"),
        "address": ("amili.customer.address_changed.v1", "address-changed"),
        "registration_status": (
            "amili.customer.registration_status_changed.v1",
            "registration-status-changed",
        ),
        "created": ("amili.customer.created.v1", "lifecycle"),
        "removed": ("amili.customer.removed.v1", "lifecycle"),
        "baseline": ("amili.customer.baseline.v1", "lifecycle"),
    }
    assert {k.name: (k.ce_type, k.default_topic) for k in kinds.BUILTIN.values()} == contract
    topics = TopicSettings()
    assert {k.name: topics.kind_topic(k) for k in kinds.BUILTIN.values()} == {
        name: f"amili.customers.{topic}" for name, (_, topic) in contract.items()
    }


def test_every_topic_setting_of_the_registry_exists_with_the_registrys_default() -> None:
    fields = TopicSettings.model_fields
    for kind in kinds.BUILTIN.values():
        assert kind.topic_setting in fields, kind.name
        assert fields[kind.topic_setting].default == kind.default_topic


def test_default_groups_are_the_registrys_in_settings_and_in_the_core() -> None:
    expected = {k.name: list(k.fields) for k in kinds.BUILTIN_GROUPS}
    assert Settings().sync.groups == expected
    assert {g: list(f) for g, f in DEFAULT_GROUPS.items()} == expected
    assert TrackingRules().groups == DEFAULT_GROUPS


def test_topic_settings_still_rename_a_kinds_topic() -> None:
    topics = TopicSettings(prefix="p", balance_changed="saldo", lifecycle="life")
    assert topics.event_topic("balance") == "p.saldo"
    assert topics.event_topic("lifecycle") == "p.life"


def test_only_the_balance_kind_adds_fields_to_its_data() -> None:
    old = StoredState({"balanceTotal": 100, "currency": "NOK", "postalAddress": {"cityName": "Oslo"}}, 3)
    new = {"balanceTotal": 250.5, "currency": "NOK", "postalAddress": {"cityName": "Bergen"}}
    changes = diff_customer("42", old, new, TrackingRules(), baseline=False)
    data = {c.kind: orjson.loads(build_event(c, context()).value) for c in changes}
    assert data["balance"]["delta"] == 150.5
    assert data["balance"]["currency"] == "NOK"
    assert "delta" not in data["address"]
    assert "currency" not in data["address"]


def test_a_group_added_through_settings_alone_gets_a_topic_a_type_and_a_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMILI_SYNC_SYNC__GROUPS", CUSTOM_GROUPS)
    monkeypatch.setenv("AMILI_SYNC_TOPICS__PREFIX", "acme")
    settings = load_settings(_env_file=None)
    groups = settings.sync.groups
    assert settings.topics.all_topics(groups) == [
        "acme.fetch-requests",
        "acme.fetch-requests.dlq",
        "acme.snapshot",
        "acme.balance-changed",
        "acme.credit-limit-changed",
        "acme.lifecycle",
        "acme.sync-results",
    ]
    published = {topic: model for topic, model, _ in publications(settings)}
    model = published["acme.credit-limit-changed"]
    assert "acme.address-changed" not in published  # not tracked in this configuration

    rules = TrackingRules.from_config(groups, include_personal=False)
    old = StoredState(tracked_state({"limitAmount": 2000, "dueDays": 14, "accountNo": 7}, rules), 0)
    new = tracked_state({"limitAmount": 5000, "dueDays": 14, "accountNo": 7}, rules)
    [change] = diff_customer("42", old, new, rules, baseline=False)
    event = build_event(change, context())
    headers = dict(event.headers)
    assert headers["ce_type"] == b"amili.customer.credit_limit_changed.v1"
    assert settings.topics.event_topic(event.topic_kind) == "acme.credit-limit-changed"
    data = orjson.loads(event.value)
    assert data["before"] == {"limitAmount": 2000, "dueDays": 14}
    assert data["after"] == {"limitAmount": 5000, "dueDays": 14}
    assert data["changedFields"] == ["limitAmount"]
    model.model_validate(data)  # the contract's model of the derived kind accepts the event


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ('{"Credit-Limit":["limitAmount"]}', "lower-case letters"),
        ('{"lifecycle":["limitAmount"]}', "reserved"),
        ('{"created":["limitAmount"]}', "reserved"),
        ('{"credit":[]}', "at least one customer field"),
    ],
)
def test_a_group_that_cannot_be_an_event_kind_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, groups: str, message: str
) -> None:
    monkeypatch.setenv("AMILI_SYNC_SYNC__GROUPS", groups)
    with pytest.raises(SettingsError, match=message) as info:
        load_settings(_env_file=None)
    assert "AMILI_SYNC_SYNC__GROUPS" in str(info.value)
