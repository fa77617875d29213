"""The product end to end: real broker, real sandbox over HTTP, the worker as a separate process."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from service.sandbox.testing import SandboxHandle
from service.sync.state import normalize
from testkit.kafka import TopicReader, request_payload, send_raw, send_request
from testkit.oracle import KIND_TO_TYPE
from testkit.sandbox import sandbox_changes, sandbox_customers
from testkit.worker import WorkerProcess
from tests.conftest import KafkaBroker


def prefix_of(worker: WorkerProcess) -> str:
    return worker.env["AMILI_SYNC_TOPICS__PREFIX"]


def assert_events_match_changes(events: list[dict[str, Any]], changes: list[dict[str, Any]]) -> None:
    """Exactly one event per true change, each with the right before/after/changedFields/delta."""
    got = Counter((e["type"], e["customerNo"]) for e in events)
    want = Counter((KIND_TO_TYPE[c["kind"]], c["customerNo"]) for c in changes)
    assert got == want, f"missing {want - got}, unexpected {got - want}"
    by_key = {(e["type"], e["customerNo"]): e for e in events}
    for c in changes:
        e = by_key[(KIND_TO_TYPE[c["kind"]], c["customerNo"])]
        before, after = c["before"], c["after"]
        if c["kind"] == "balance":
            assert e["before"]["balanceTotal"] == normalize(before.get("balanceTotal"))
            assert e["after"]["balanceTotal"] == normalize(after.get("balanceTotal"))
            assert e["changedFields"] == ["balanceTotal"]
            expected = (after.get("balanceTotal") or 0) - (before.get("balanceTotal") or 0)
            assert abs(e["delta"] - expected) < 1e-6
            assert e["currency"] == normalize(after.get("currency"))
        elif c["kind"] == "address":
            assert e["before"]["postalAddress"] == normalize(before.get("postalAddress"))
            assert e["after"]["postalAddress"] == normalize(after.get("postalAddress"))
            assert e["changedFields"]
            assert all(f.startswith("postalAddress.") for f in e["changedFields"])
        elif c["kind"] == "registration_status":
            for f in ("registrationStatusCode", "registrationStatusDate"):
                assert e["before"][f] == normalize(before.get(f))
                assert e["after"][f] == normalize(after.get(f))
        elif c["kind"] == "created":
            assert e["before"] is None
            assert e["after"].get("balanceTotal") == normalize(after.get("balanceTotal"))
        elif c["kind"] == "deleted":
            assert e["after"] is None
            assert e["before"]["accountNo"] == before["accountNo"]
    assert len({e["id"] for e in events}) == len(events), "event ids must be unique"


async def test_baseline_then_exactly_the_changes_then_nothing(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, worker: WorkerProcess
) -> None:
    bootstrap, prefix, client = kafka_broker.bootstrap_servers, prefix_of(worker), 2218
    async with TopicReader(bootstrap, prefix) as reader:
        first = await send_request(bootstrap, prefix, client)
        result = (await reader.wait_results([first], timeout=240))[first]
        assert result["status"] == "succeeded", result
        assert result["counts"] == {"baseline": 25_000}
        assert result["slices"] > 1, "25,000 customers under a 10,000 cap must be read in slices"
        assert result["coverage"] == "proven"
        baseline = reader.events_of(first)
        assert len(baseline) == 25_000
        numbers = {e["customerNo"] for e in baseline}
        assert numbers == {c["customerNo"] for c in await sandbox_customers(sandbox, client)}

        changes = await sandbox_changes(
            sandbox,
            clientNo=client,
            seed=11,
            balance=0.01,
            address=0.01,
            registrationStatus=0.005,
            created=10,
            deleted=10,
        )
        assert Counter(c["kind"] for c in changes) == {
            "balance": 250,
            "address": 250,
            "registration_status": 125,
            "created": 10,
            "deleted": 10,
        }
        second = await send_request(bootstrap, prefix, client)
        result = (await reader.wait_results([second], timeout=240))[second]
        assert result["status"] == "succeeded", result
        assert_events_match_changes(reader.events_of(second), changes)
        # The counts written out again (kept): an expected value is spelled out, not derived from the changes.
        assert result["counts"] == {
            "balance": 250,
            "address": 250,
            "registration_status": 125,
            "created": 10,
            "removed": 10,
        }

        third = await send_request(bootstrap, prefix, client)
        result = (await reader.wait_results([third], timeout=240))[third]
        assert result["status"] == "succeeded"
        assert result["counts"] == {}
        assert reader.events_of(third) == []


async def test_filtered_request_infers_no_removals_and_mass_deletion_is_held(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, worker: WorkerProcess
) -> None:
    bootstrap, prefix, client = kafka_broker.bootstrap_servers, prefix_of(worker), 3000
    async with TopicReader(bootstrap, prefix) as reader:
        rid = await send_request(bootstrap, prefix, client)
        assert (await reader.wait_results([rid]))[rid]["counts"] == {"baseline": 500}
        deleted = await sandbox_changes(sandbox, clientNo=client, seed=5, deleted=150)  # 30%
        assert len(deleted) == 150
        filtered = await send_request(bootstrap, prefix, client, filters={"name": "a"})
        result = (await reader.wait_results([filtered]))[filtered]
        assert result["status"] == "succeeded"
        assert result["filters"] == {"name": "a"}
        assert "removed" not in result["counts"]
        full = await send_request(bootstrap, prefix, client)
        result = (await reader.wait_results([full]))[full]
        assert result["status"] == "removals_held"
        assert result["removalsHeld"] == 150
        assert [e for e in reader.data.events if e["type"] == "amili.customer.removed.v1"] == []


async def test_deleted_cache_is_restored_from_the_changelog_without_spurious_changes(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, worker: WorkerProcess
) -> None:
    bootstrap, prefix, client = kafka_broker.bootstrap_servers, prefix_of(worker), 3100
    async with TopicReader(bootstrap, prefix) as reader:
        rid = await send_request(bootstrap, prefix, client)
        assert (await reader.wait_results([rid]))[rid]["counts"] == {"baseline": 400}
        changes = await sandbox_changes(sandbox, clientNo=client, seed=3, balance=0.05)
        rid = await send_request(bootstrap, prefix, client)
        await reader.wait_results([rid])
        assert_events_match_changes(reader.events_of(rid), changes)

        assert worker.stop() == 0
        shutil.rmtree(worker.env["AMILI_SYNC_STATE_DIR"])
        # the restore of this small changelog writes from a child process, as a big one does
        worker.env["AMILI_SYNC_SYNC__RESTORE_PROCESS_FROM"] = "1"
        worker.start()
        rid = await send_request(bootstrap, prefix, client)
        result = (await reader.wait_results([rid]))[rid]
        assert result["status"] == "succeeded"
        assert result["counts"] == {}, "a restored cache must not produce changes"
        assert '"writer": "process"' in worker.log_path.read_text(), "the restore did not write from a child"
        assert reader.events_of(rid) == []


async def test_malformed_requests_go_to_the_dlq_and_valid_ones_are_processed(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, worker: WorkerProcess
) -> None:
    bootstrap, prefix = kafka_broker.bootstrap_servers, prefix_of(worker)
    kinds = [
        lambda i: (b"3200", b"{broken json " + str(i).encode()),
        lambda i: (b"3200", json.dumps({"requestId": "x", "clientNo": 3200, "requestedAt": "now"}).encode()),
        lambda i: (b"3200", json.dumps({**json.loads(request_payload(3200)[1]), "colour": i}).encode()),
        lambda i: (None, request_payload(3200)[1]),
        lambda i: (b"3200", b'{"pad": "' + b"x" * 70_000 + b'"}'),
        lambda i: (b"777", request_payload(3200)[1]),
        lambda i: (b"3200", json.dumps({**json.loads(request_payload(3200)[1]), "clientNo": -1}).encode()),
    ]
    records: list[tuple[bytes | None, bytes]] = []
    valid: list[str] = []
    for i in range(100):
        records.append(kinds[i % len(kinds)](i))
        if i % 10 == 0:
            rid, payload = request_payload(3200, requested_at=datetime.now(UTC) + timedelta(hours=1))
            valid.append(rid)
            records.append((b"3200", payload))
    # a client the API refuses (unknown: 404) goes to the DLQ too
    refused, payload = request_payload(999_999)
    records.append((b"999999", payload))
    async with TopicReader(bootstrap, prefix) as reader:
        await send_raw(bootstrap, f"{prefix}.fetch-requests", records)
        results = await reader.wait_results([*valid, refused], timeout=180)
        await reader.drain()
        assert all(results[r]["status"] in ("succeeded",) for r in valid), [results[r] for r in valid]
        assert results[refused]["status"] == "failed"
        assert "999999" in results[refused]["error"]
        dlq = reader.data.dlq
        assert len(dlq) == 101
        codes = Counter(dict(r.headers)["dlq-error-code"].decode() for r in dlq)
        api_code = next(c for c in codes if c.startswith("api_"))
        assert api_code in ("api_403", "api_404")
        assert codes == {
            "bad_json": 15,
            "invalid": 15,
            "out_of_range": 14,  # clientNo -1
            "unknown_field": 14,
            "no_key": 14,
            "oversize": 14,
            "key_mismatch": 14,
            api_code: 1,
        }
        for r in dlq:
            h = dict(r.headers)
            assert h["dlq-source-topic"] == f"{prefix}.fetch-requests".encode()
            assert int(h["dlq-source-offset"]) >= 0
            assert h["dlq-error"]


async def test_two_requests_back_to_back_make_one_run_and_one_superseded(
    kafka_broker: KafkaBroker, sandbox: SandboxHandle, worker: WorkerProcess
) -> None:
    bootstrap, prefix, client = kafka_broker.bootstrap_servers, prefix_of(worker), 3300
    now = datetime.now(UTC)
    a, pa = request_payload(client, requested_at=now - timedelta(seconds=2))
    b, pb = request_payload(client, requested_at=now - timedelta(seconds=1))
    async with TopicReader(bootstrap, prefix) as reader:
        await send_raw(bootstrap, f"{prefix}.fetch-requests", [(b"3300", pa), (b"3300", pb)])
        results = await reader.wait_results([a, b])
        assert results[a]["status"] == "succeeded"
        assert results[a]["counts"] == {"baseline": 200}
        assert results[b]["status"] == "superseded"
        assert results[b]["customersRead"] == 0
        assert reader.events_of(b) == []
        await asyncio.sleep(0)
