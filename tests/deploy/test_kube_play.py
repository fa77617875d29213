"""scripts/lib/kube_play.py: the chart's manifests as scripts/test-image plays them with podman, and
the chart's probes evaluated the way the kubelet does."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import kube_play
import pytest

from tests.deploy.conftest import CI_VALUES, Helm, by_kind, workload


def test_statefulset_becomes_its_first_pod_with_the_claims(helm: Helm) -> None:
    docs = helm.scenario("all-on")  # persistence.enabled
    played = kube_play.play_documents(docs)
    sts = workload(docs)
    assert [d["kind"] for d in played] == ["ConfigMap", "Secret", "PersistentVolumeClaim", "Pod"]
    pod = played[-1]
    assert pod["metadata"]["name"] == f"{sts['metadata']['name']}-0", (
        "the name a StatefulSet gives its first pod"
    )
    assert pod["metadata"]["labels"] == sts["spec"]["template"]["metadata"]["labels"]
    template_spec = sts["spec"]["template"]["spec"]
    assert {k: v for k, v in pod["spec"].items() if k != "volumes"} == {
        k: v for k, v in template_spec.items() if k != "volumes"
    }, "containers, probes, env and security context are the chart's, unchanged"
    claim = played[2]
    assert claim["metadata"]["name"] == f"state-{pod['metadata']['name']}"
    assert {"name": "state", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}} in pod[
        "spec"
    ]["volumes"]
    assert not [d for d in played if d["metadata"]["name"].endswith("-dashboard")]


def test_deployment_template_becomes_a_pod(helm: Helm) -> None:
    docs = helm.scenario("hpa")
    played = kube_play.play_documents(docs)
    assert [d["kind"] for d in played] == ["ConfigMap", "Secret", "Pod"]
    assert (
        by_kind(played, "Pod")[0]["spec"]["containers"]
        == workload(docs)["spec"]["template"]["spec"]["containers"]
    )


class _Health(http.server.BaseHTTPRequestHandler):
    ready_after = 0.0  # monotonic time from which /readyz answers 200

    def do_GET(self) -> None:
        ready = self.path == "/healthz" or time.monotonic() >= self.ready_after
        code = 200 if ready else 503
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def _pod(helm: Helm, port: int) -> dict[str, Any]:
    sets = [
        f"config.health_port={port}",
        "probes.readiness.periodSeconds=1",
        "probes.startup.periodSeconds=1",
    ]
    docs = helm.template(CI_VALUES / "defaults-values.yaml", sets=sets).docs
    return kube_play.play_documents(docs)[-1]


def test_wait_follows_the_chart_probes_until_ready(helm: Helm, health_port: int) -> None:
    _Health.ready_after = time.monotonic() + 2.5
    ready, detail = kube_play.wait_ready(_pod(helm, health_port), time.monotonic() + 30)
    assert ready, detail
    assert time.monotonic() >= _Health.ready_after, "ready only once /readyz answered 200"


def test_wait_reports_a_pod_that_never_gets_ready(helm: Helm, health_port: int) -> None:
    _Health.ready_after = time.monotonic() + 3600
    ready, detail = kube_play.wait_ready(_pod(helm, health_port), time.monotonic() + 3)
    assert not ready
    assert "/readyz" in detail and "503" in detail


def test_podman_adaptations_touch_only_what_podman_refuses(helm: Helm) -> None:
    documents = kube_play.play_documents(helm.scenario("all-on"))
    played = kube_play.for_podman(documents)
    assert [d["kind"] for d in played] == ["ConfigMap", "PersistentVolumeClaim", "Pod"], (
        "Secrets go separately"
    )
    before, after = documents[-1], played[-1]
    assert after["spec"]["hostNetwork"] is True
    assert all("ports" not in c for c in after["spec"]["containers"])
    assert [{k: v for k, v in c.items() if k != "ports"} for c in before["spec"]["containers"]] == after[
        "spec"
    ]["containers"], "env, probes, volume mounts and security context unchanged"
    assert {k: v for k, v in after["spec"].items() if k != "containers" and k != "hostNetwork"} == {
        k: v for k, v in before["spec"].items() if k != "containers"
    }
    kept = after["metadata"].get("annotations", {})
    assert "checksum/config" not in kept and all(len(v) <= 63 for v in kept.values())
    assert kept == {k: v for k, v in before["metadata"]["annotations"].items() if len(v) <= 63}
