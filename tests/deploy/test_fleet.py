"""The chart's fleet defaults, rendered by a real helm: stable membership (StatefulSet), autoscaling
that matches one run per pod (KEDA on lag 1, a preStop that waits for the run), Strimzi topics with
the worker verifying them, and the validations that refuse combinations that would break those.

Required Secret keys and the one-container CronJob are in test_chart.py beside the other secret and
CronJob checks.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from service.config import TopicSettings
from service.sync.kinds import default_groups
from tests.deploy.conftest import CHART, CI_VALUES, Helm, by_kind, one, workload

DEFAULTS = CI_VALUES / "defaults-values.yaml"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = workload(docs)["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def configmap_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if not d["metadata"]["name"].endswith("-dashboard")]
    return dict(cm["data"])


def failure(helm: Helm, *sets: str, values: Any = DEFAULTS) -> str:
    out = helm.template(values, sets=sets)
    assert out.returncode != 0, f"rendering with {sets} should fail"
    return out.stderr


# --- 1. StatefulSet: stable group.instance.id -------------------------------------------------------


def test_default_workload_is_a_statefulset_whose_pod_name_is_the_instance_id(helm: Helm) -> None:
    docs = helm.scenario("defaults")
    sts = workload(docs)
    assert sts["kind"] == "StatefulSet"
    assert not by_kind(docs, "Deployment")
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate"}
    assert "strategy" not in sts["spec"], "maxSurge would put two pods on one instance id"
    instance = env_of(container(docs))["AMILI_SYNC_KAFKA__GROUP_INSTANCE_ID"]
    assert instance["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    headless = one(docs, "Service", "-headless")
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()


def test_cache_on_an_emptydir_by_default_and_a_claim_per_pod_with_persistence(helm: Helm) -> None:
    default = workload(helm.scenario("defaults"))
    assert "volumeClaimTemplates" not in default["spec"]
    volumes = {v["name"]: v for v in default["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["state"]

    docs = helm.scenario("all-on")  # persistence.enabled, storageClassName fast-ssd, 5Gi
    sts = workload(docs)
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    pod_volumes = {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "state" not in pod_volumes, "the claim, not an emptyDir, backs the cache"
    mounts = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert mounts["state"] == configmap_env(docs)["AMILI_SYNC_STATE_DIR"]


def test_deployment_option_without_static_membership(helm: Helm) -> None:
    docs = helm.scenario("hpa")  # workload.kind Deployment, staticGroupMembership false
    dep = workload(docs)
    assert dep["kind"] == "Deployment"
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "AMILI_SYNC_KAFKA__GROUP_INSTANCE_ID" not in env_of(container(docs))
    assert not [s for s in by_kind(docs, "Service") if s["metadata"]["name"].endswith("-headless")]
    assert one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == "Deployment"


def test_static_membership_with_a_deployment_is_refused(helm: Helm) -> None:
    err = failure(helm, "workload.kind=Deployment")  # staticGroupMembership is on by default
    assert "staticGroupMembership needs workload.kind StatefulSet" in err


def test_persistence_with_a_deployment_is_refused(helm: Helm) -> None:
    err = failure(helm, "workload.kind=Deployment", "staticGroupMembership=false", "persistence.enabled=true")
    assert "persistence.enabled needs workload.kind StatefulSet" in err


def test_a_fixed_instance_id_for_several_pods_is_refused(helm: Helm) -> None:
    err = failure(helm, "staticGroupMembership=false", "config.kafka.group_instance_id=w", "replicaCount=2")
    assert "would be shared by several pods" in err


# --- 2. autoscaling: one run per pod, scale-down never interrupts a run --------------------------


def test_keda_defaults_wake_on_one_request_and_count_a_running_request(helm: Helm) -> None:
    docs = helm.scenario("keda")  # only enabled/min/max/authenticationRef set: the rest are defaults
    so = one(docs, "ScaledObject")
    (trigger,) = so["spec"]["triggers"]
    meta = trigger["metadata"]
    assert meta["lagThreshold"] == "1", "a running request is lag 1 until its run commits: one pod each"
    assert meta["activationLagThreshold"] == "0", "active when lag > 0: one waiting request wakes it"
    assert meta["limitToPartitionsWithLag"] == "true"
    assert meta["allowIdleConsumers"] == "false"
    assert so["spec"]["minReplicaCount"] == 0
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": workload(docs)["metadata"]["name"],
    }
    scale_down = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 600
    assert scale_down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]


def test_cpu_hpa_is_not_a_default(helm: Helm) -> None:
    assert VALUES["autoscaling"]["enabled"] is False
    assert VALUES["autoscaling"]["targetCPUUtilizationPercentage"] == 0
    err = failure(helm, "autoscaling.enabled=true")
    assert "needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" in err


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["keda.enabled=true", "keda.maxReplicaCount=7"],
            "keda.maxReplicaCount (7) is above the request topic's partitions",
        ),
        (
            ["keda.enabled=true", "keda.maxReplicaCount=4", "config.topics.partitions=3"],
            "keda.maxReplicaCount (4) is above the request topic's partitions (config.topics.partitions = 3)",
        ),
        (
            [
                "autoscaling.enabled=true",
                "autoscaling.targetMemoryUtilizationPercentage=80",
                "autoscaling.maxReplicas=9",
            ],
            "autoscaling.maxReplicas (9) is above the request topic's partitions",
        ),
    ],
)
def test_more_replicas_than_partitions_is_refused(helm: Helm, sets: list[str], message: str) -> None:
    assert message in failure(helm, *sets)


def test_max_replicas_equal_to_partitions_is_accepted(helm: Helm) -> None:
    out = helm.template(
        DEFAULTS, sets=["keda.enabled=true", "keda.maxReplicaCount=3", "config.topics.partitions=3"]
    )
    assert out.returncode == 0, out.stderr


def test_prestop_waits_for_the_run_within_the_grace_period(helm: Helm) -> None:
    docs = helm.scenario("defaults")
    spec = workload(docs)["spec"]["template"]["spec"]
    hook = container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[:2] == ["python3", "-c"]
    assert f"time.monotonic() + {VALUES['drainOnStop']['maxSeconds']}" in hook[2]
    assert spec["terminationGracePeriodSeconds"] >= VALUES["drainOnStop"]["maxSeconds"] + 30
    err = failure(helm, "terminationGracePeriodSeconds=600", "drainOnStop.maxSeconds=900")
    assert "terminationGracePeriodSeconds (600) must be at least drainOnStop.maxSeconds + 30 (930)" in err
    off = helm.template(DEFAULTS, sets=["drainOnStop.enabled=false", "terminationGracePeriodSeconds=120"])
    (c,) = workload(off.docs)["spec"]["template"]["spec"]["containers"]
    assert "lifecycle" not in c


class _Metrics(http.server.BaseHTTPRequestHandler):
    """/metrics of a worker whose run is in progress until `busy_until` (monotonic seconds)."""

    busy_until = 0.0
    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        busy = 1.0 if time.monotonic() < self.busy_until else 0.0
        body = (
            "# TYPE amili_sync_run_in_progress gauge\n"
            f'amili_sync_run_in_progress{{client_no="2218"}} {busy}\n'
            'amili_sync_run_in_progress{client_no="3300"} 0.0\n'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def metrics_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def _prestop_script(helm: Helm, port: int, max_seconds: int) -> list[str]:
    sets = [
        f"config.health_port={port}",
        f"drainOnStop.maxSeconds={max_seconds}",
        "drainOnStop.pollSeconds=1",
    ]
    (c,) = workload(helm.template(DEFAULTS, sets=sets).docs)["spec"]["template"]["spec"]["containers"]
    command: list[str] = c["lifecycle"]["preStop"]["exec"]["command"]
    return [sys.executable, *command[1:]]


def test_prestop_script_returns_once_the_run_ends(helm: Helm, metrics_port: int) -> None:
    """The chart's own preStop command, run against a /metrics whose run ends after 3 s."""
    command = _prestop_script(helm, metrics_port, max_seconds=60)
    _Metrics.requests = 0
    _Metrics.busy_until = time.monotonic() + 3
    subprocess.run(command, check=True, timeout=60)
    assert time.monotonic() >= _Metrics.busy_until, "returned while the run was still in progress"
    assert _Metrics.requests >= 2, "it polled until the gauge went to 0"


def test_prestop_script_gives_up_at_its_limit_and_without_a_server(helm: Helm, metrics_port: int) -> None:
    command = _prestop_script(helm, metrics_port, max_seconds=2)
    _Metrics.busy_until = time.monotonic() + 3600  # a run that never ends
    started = time.monotonic()
    subprocess.run(command, check=True, timeout=60)
    assert time.monotonic() - started < 30, "the wait is bounded by drainOnStop.maxSeconds"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    subprocess.run(_prestop_script(helm, closed, max_seconds=60), check=True, timeout=30)


# --- 3. topics managed by Strimzi, verified by the worker -----------------------------------------


def test_kafka_topics_rendered_for_every_topic_of_the_worker(helm: Helm) -> None:
    docs = helm.scenario("all-on")  # kafkaTopics.enabled, cluster main, namespace kafka
    topics = by_kind(docs, "KafkaTopic")
    settings = TopicSettings()  # the all-on values keep the default prefix and names
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(settings.all_topics(default_groups()))
    env = configmap_env(docs)
    for t in topics:
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == "main"
        assert t["metadata"]["namespace"] == "kafka"
        assert t["spec"]["partitions"] == int(env["AMILI_SYNC_TOPICS__PARTITIONS"]), "co-partitioned"
        assert t["spec"]["replicas"] == 3
        assert t["spec"]["config"]["min.insync.replicas"] == "2"
        compact = t["spec"]["topicName"] == settings.snapshot_topic
        assert t["spec"]["config"]["cleanup.policy"] == ("compact" if compact else "delete")
    assert env["AMILI_SYNC_TOPICS__MANAGE"] == "verify", "the worker must not create what Strimzi owns"


def test_no_kafka_topics_by_default_and_the_worker_creates_them(helm: Helm) -> None:
    docs = helm.scenario("defaults")
    assert not by_kind(docs, "KafkaTopic")
    assert configmap_env(docs).get("AMILI_SYNC_TOPICS__MANAGE", "create") == "create"


def test_kafka_topics_follow_the_topic_settings(helm: Helm) -> None:
    sets = [
        "kafkaTopics.enabled=true",
        "kafkaTopics.cluster=c",
        "config.topics.prefix=",
        "config.topics.partitions=12",
    ]
    topics = by_kind(helm.template(DEFAULTS, sets=sets).docs, "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(
        TopicSettings(prefix="").all_topics(default_groups())
    )
    assert {t["spec"]["partitions"] for t in topics} == {12}
    assert {t["metadata"]["namespace"] for t in topics} == {"ns"}, "the release's namespace by default"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["kafkaTopics.enabled=true"], "kafkaTopics.enabled needs kafkaTopics.cluster"),
        (
            ["kafkaTopics.enabled=true", "kafkaTopics.cluster=c", "kafkaTopics.replicas=1"],
            "kafkaTopics.minInsyncReplicas cannot be above kafkaTopics.replicas",
        ),
    ],
)
def test_kafka_topics_misconfiguration_is_refused(helm: Helm, sets: list[str], message: str) -> None:
    assert message in failure(helm, *sets)
