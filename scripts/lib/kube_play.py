"""Turn the chart's rendered manifests into what `podman kube play` runs, and wait on the chart's probes.

    python3 scripts/lib/kube_play.py pod RENDERED.yaml OUT.yaml       # ConfigMap, PVCs, one Pod; Secrets
                                                                    # as OUT.yaml.secrets/<name>.json
    python3 scripts/lib/kube_play.py wait RENDERED.yaml [--timeout 300] # startup, then readiness probe

`pod`: podman plays Pods, Deployments, ConfigMaps, Secrets and PersistentVolumeClaims, not
StatefulSets. The worker's StatefulSet becomes the Pod its controller would create first: named
`<statefulset>-0` (so `metadata.name`, the worker's Kafka group.instance.id, is what it is in a
cluster), with the template's labels, annotations and spec unchanged, and each volumeClaimTemplate a
PersistentVolumeClaim `<template>-<pod>` mounted the way the StatefulSet controller mounts it. A
Deployment's template becomes a Pod the same way. Nothing else of the spec is changed: env, envFrom,
probes, volumes and securityContext are the chart's. What podman 4.3 cannot take is adapted, for
podman only: annotation values longer than 63 characters are left out (it applies the label limit;
annotations change nothing in how containers run), and the pod runs on the host network
(`hostNetwork: true`, to reach the local broker and sandbox on 127.0.0.1) without the containers'
`ports` list, which podman 4.3 turns into host port mappings that host networking refuses; on the
host network the container's port is the host's port anyway. Secrets are not played: podman 4.3
stores a played Secret as the YAML it read and then parses it as JSON when a container uses it
(`secret ... is not valid JSON`), so `pod` writes each Secret's `data` as the JSON object podman
expects (key -> base64 value), for `podman secret create <name> <file>` before the play.

`wait`: podman runs no readiness probes, so the chart's own probes are evaluated here, the way the
kubelet does: the startupProbe until it succeeds (at most failureThreshold x periodSeconds), then
the readinessProbe until it succeeds successThreshold times in a row. Named ports are resolved
through the container's ports. The pod runs on the host network, so the probe's port is on
127.0.0.1. Exit 0 when ready; 1 with the last answer otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

WORKLOADS = ("StatefulSet", "Deployment")


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def play_documents(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ConfigMap(s) (the dashboard's left out), Secret(s), PVCs and the worker Pod."""
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    if len(workloads) != 1:
        raise SystemExit(f"expected one StatefulSet or Deployment, got {[d['kind'] for d in workloads]}")
    (workload,) = workloads
    out = [d for d in docs if d["kind"] == "ConfigMap" and not d["metadata"]["name"].endswith("-dashboard")]
    out += [d for d in docs if d["kind"] == "Secret"]
    template = workload["spec"]["template"]
    pod_name = f"{workload['metadata']['name']}-0"
    spec = dict(template["spec"])
    volumes = list(spec.get("volumes", []))
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        claim_name = f"{claim['metadata']['name']}-{pod_name}"
        out.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim_name, "labels": claim["metadata"].get("labels", {})},
                "spec": claim["spec"],
            }
        )
        volumes.append(
            {"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name}}
        )
    spec["volumes"] = volumes
    metadata = {"name": pod_name, "labels": template["metadata"].get("labels", {})}
    if template["metadata"].get("annotations"):
        metadata["annotations"] = template["metadata"]["annotations"]
    out.append({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    return out


def for_podman(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same documents with what podman 4.3 refuses adapted (see the module's docstring);
    Secrets left out (they go through `podman secret create`)."""
    out = []
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        if doc["kind"] == "Pod":
            metadata = dict(doc["metadata"])
            annotations = {k: v for k, v in metadata.pop("annotations", {}).items() if len(v) <= 63}
            if annotations:
                metadata["annotations"] = annotations
            spec = dict(doc["spec"], hostNetwork=True)
            spec["containers"] = [{k: v for k, v in c.items() if k != "ports"} for c in spec["containers"]]
            doc = dict(doc, metadata=metadata, spec=spec)
        out.append(doc)
    return out


def _probe_url(probe: dict[str, Any], container: dict[str, Any]) -> str:
    get = probe["httpGet"]
    port = get["port"]
    if isinstance(port, str):
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
        port = ports[port]
    return f"{get.get('scheme', 'HTTP').lower()}://127.0.0.1:{port}{get.get('path', '/')}"


def _check(url: str, timeout: float) -> tuple[bool, str]:
    """The kubelet's rule: any status from 200 to 399 is a success."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - the probe's http(s) URL
            return 200 <= r.status < 400, f"{r.status}"
    except urllib.error.HTTPError as e:
        return False, f"{e.code} {e.read()[:200].decode(errors='replace')}"
    except OSError as e:
        return False, str(e)


def wait_ready(pod: dict[str, Any], deadline: float) -> tuple[bool, str]:
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "worker"]
    startup = container.get("startupProbe")
    if startup:
        url = _probe_url(startup, container)
        failures, period = 0, startup.get("periodSeconds", 10)
        while True:
            ok, last = _check(url, startup.get("timeoutSeconds", 1))
            if ok:
                print(f"startupProbe {url}: {last}", file=sys.stderr)
                break
            failures += 1
            if failures >= startup.get("failureThreshold", 3) or time.monotonic() > deadline:
                return False, f"startupProbe {url} failed {failures} times, last: {last}"
            time.sleep(period)
    readiness = container["readinessProbe"]
    url = _probe_url(readiness, container)
    period, need, successes, last = (
        readiness.get("periodSeconds", 10),
        readiness.get("successThreshold", 1),
        0,
        "",
    )
    while time.monotonic() < deadline:
        ok, last = _check(url, readiness.get("timeoutSeconds", 1))
        successes = successes + 1 if ok else 0
        if successes >= need:
            print(f"readinessProbe {url}: {last}", file=sys.stderr)
            return True, last
        time.sleep(period)
    return False, f"readinessProbe {url} not ready in time, last: {last}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pod = sub.add_parser("pod")
    pod.add_argument("rendered", type=Path)
    pod.add_argument("out", type=Path)
    wait = sub.add_parser("wait")
    wait.add_argument("rendered", type=Path)
    wait.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    if args.command == "pod":
        documents = play_documents(_load(args.rendered))
        played = for_podman(documents)
        args.out.write_text(yaml.safe_dump_all(played, sort_keys=False), encoding="utf-8")
        secrets = args.out.with_name(args.out.name + ".secrets")
        secrets.mkdir(exist_ok=True)
        for doc in documents:
            if doc["kind"] == "Secret":
                (secrets / f"{doc['metadata']['name']}.json").write_text(
                    json.dumps(doc["data"]), encoding="utf-8"
                )
        print(" ".join(f"{d['kind']}/{d['metadata']['name']}" for d in documents))
        return 0
    (the_pod,) = [d for d in play_documents(_load(args.rendered)) if d["kind"] == "Pod"]
    ready, detail = wait_ready(the_pod, time.monotonic() + args.timeout)
    if not ready:
        print(detail, file=sys.stderr)
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
