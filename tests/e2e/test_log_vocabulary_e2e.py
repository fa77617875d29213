"""One log vocabulary: every line a run logs (engine, API reader, publisher) carries the request id
and the client as `requestId` and `clientNo`, bound once for the run; no line spells the client
another way; lines after the run carry neither."""

from __future__ import annotations

import json

from testkit.kafka import TopicReader, send_request
from testkit.worker import WorkerProcess
from tests.conftest import KafkaBroker

CLIENT = 3200  # read only: a baseline run is enough


async def test_every_line_of_a_run_carries_its_request_id_and_client(
    kafka_broker: KafkaBroker, worker: WorkerProcess, topic_prefix: str
) -> None:
    async with TopicReader(kafka_broker.bootstrap_servers, topic_prefix) as reader:
        rid = await send_request(kafka_broker.bootstrap_servers, topic_prefix, CLIENT)
        assert (await reader.wait_results([rid]))[rid]["status"] == "succeeded"
    worker.stop()
    lines = [json.loads(line) for line in worker.log_path.read_text().splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    start = events.index("run started")
    end = events.index("run finished")
    run_lines = lines[start : end + 1]
    # the API reader's lines are among them, logged from its own tasks
    assert any(line["event"] == "amili.read_started" for line in run_lines)
    assert any(line["event"] == "amili.read_done" for line in run_lines)
    for line in run_lines:
        assert line.get("requestId") == rid, line
        assert line.get("clientNo") == CLIENT, line
    assert not [line for line in lines if "client_no" in line or "client" in line]
    # the binding ends with the run
    assert all("requestId" not in line for line in lines[end + 1 :]), lines[end + 1 :]
