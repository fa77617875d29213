"""A tracked group added through settings alone: the worker creates its topic and publishes its
events exactly once, with the type and data model the event-kind registry derives for it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from service.sandbox.testing import SandboxHandle
from service.sync.kinds import default_groups
from testkit.kafka import TopicReader, send_request
from testkit.oracle import change_identity, event_identity
from testkit.sandbox import sandbox_customers, sandbox_update
from testkit.worker import WorkerProcess
from tests.conftest import KafkaBroker
from tests.e2e.conftest import WorkerEnv

CLIENT = 4300
GROUPS = {**default_groups(), "credit_limit": ["limitAmount"]}
CUSTOM_TYPE = "amili.customer.credit_limit_changed.v1"


async def test_a_custom_group_gets_its_topic_and_its_events(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, topic_prefix: str, tmp_path: Path, e2e_env: WorkerEnv
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    env = e2e_env(AMILI_SYNC_SYNC__GROUPS=json.dumps(GROUPS))
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            assert f"{topic_prefix}.credit-limit-changed" in await admin.list_topics()
        finally:
            await admin.close()

        async with TopicReader(bootstrap, topic_prefix, GROUPS) as reader:
            assert f"{topic_prefix}.credit-limit-changed" in reader.topics
            first = await send_request(bootstrap, topic_prefix, CLIENT)
            baseline = (await reader.wait_results([first]))[first]
            assert baseline["status"] == "succeeded", baseline
            assert baseline["counts"] == {"baseline": 200}
            # the baseline state carries the custom group's field
            customers = await sandbox_customers(sandbox, CLIENT)
            with_limit = [c for c in customers if c.get("limitAmount") is not None]
            assert with_limit, "the sandbox generates limitAmount for some customers"
            target = with_limit[0]
            no = str(target["customerNo"])
            [base_event] = [e for e in reader.events_of(first) if e["customerNo"] == no]
            assert base_event["after"]["limitAmount"] == target["limitAmount"]

            new_limit = float(target["limitAmount"]) + 1234.0
            await sandbox_update(sandbox, CLIENT, {"customerNo": no, "limitAmount": new_limit})
            second = await send_request(bootstrap, topic_prefix, CLIENT)
            result = (await reader.wait_results([second]))[second]
            assert result["status"] == "succeeded", result
            assert result["counts"] == {"credit_limit": 1}

            [event] = reader.events_of(second)  # validated against the derived model on reading
            assert event["type"] == CUSTOM_TYPE
            assert event["_topic"] == f"{topic_prefix}.credit-limit-changed"
            assert event["customerNo"] == no
            assert event["before"] == {"limitAmount": target["limitAmount"]}
            assert event["after"] == {"limitAmount": new_limit}
            assert event["changedFields"] == ["limitAmount"]
            assert "delta" not in event  # the balance kind's extras are not a custom group's
            # the shared oracle judges the custom kind like a built-in one
            change = {"kind": "credit_limit", "customerNo": no, "after": {"limitAmount": new_limit}}
            assert Counter([event_identity(event, GROUPS)]) == Counter([change_identity(change, GROUPS)])
    finally:
        worker.stop()
