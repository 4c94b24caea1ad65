"""The real control plane of scripts/k8s-setup (kube-apiserver, etcd, scheduler,
controller-manager built from the Go module proxy; kwok simulating the GPU nodes): a GPU node
goes NotReady and the cluster's own repair chain is read back from watch events.

Needs the binaries (`scripts/k8s-setup`) and the `kubernetes` extra: fails under CI=true when
either is missing, skips elsewhere. Starts its own throwaway cluster on random 127.0.0.1 ports
and deletes it on every exit path; run it under the heavy lock:
    heavy .venv/bin/pytest -m kubernetes tests/test_kubernetes_cluster.py
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from harness.testing import REPO, require

SETUP = REPO / "scripts" / "k8s-setup"
CACHE = Path(os.environ.get("K8S_CACHE", REPO / ".k8s"))
CLUSTER = "drill-test"
NAMESPACE = "serving"
APP = "gpu-serve"
REPLICAS = 4
# NoExecute toleration of the not-ready / unreachable taints: 2 s instead of the default 300 s,
# so the eviction follows the taint at once. The chain's order and completeness, which is what
# the test asserts, hold at any toleration.
TOLERATION_S = 2
WAIT_S = 120.0

pytestmark = [pytest.mark.slow, pytest.mark.kubernetes, pytest.mark.beside_drills]  # tests/conftest.py


def binaries_present() -> bool:
    status = subprocess.run(
        [str(SETUP), "--status"], capture_output=True, text=True, env=setup_env(), timeout=60
    )
    return status.returncode == 0 and "missing" not in status.stdout


def setup_env() -> dict[str, str]:
    return {**os.environ, "K8S_CACHE": str(CACHE), "K8S_CLUSTER": CLUSTER}


@pytest.fixture(scope="module")
def kubeconfig() -> Iterator[Path]:
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        require(False, "the Kubernetes Python client", "pip install '.[kubernetes]'")
    require(binaries_present(), "the Kubernetes control plane", "run scripts/k8s-setup to build it")
    try:
        subprocess.run([str(SETUP), "--start"], env=setup_env(), check=True, timeout=300)
        yield CACHE / f"{CLUSTER}.kubeconfig"
    finally:
        subprocess.run([str(SETUP), "--stop"], env=setup_env(), check=False, timeout=120)


@dataclass
class Chain:
    """Instants of the repair chain: (API timestamp, local time the watch event arrived)."""

    node_not_ready: tuple[datetime, float] | None = None
    taint_added: float | None = None
    evicted: dict[str, tuple[datetime, float]] = field(default_factory=dict)
    created: dict[str, datetime] = field(default_factory=dict)
    scheduled: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    ready: dict[str, tuple[datetime, float]] = field(default_factory=dict)


def condition(obj: Any, kind: str) -> Any:
    for c in (obj.status.conditions or []) if obj.status else []:
        if c.type == kind:
            return c
    return None


def gpu_deployment(client: Any) -> Any:
    labels = {"app": APP}
    tolerations = [
        client.V1Toleration(
            key=key, operator="Exists", effect="NoExecute", toleration_seconds=TOLERATION_S
        )
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
    ]
    container = client.V1Container(
        name="serve",
        image="drill.local/fake:0",  # kwok runs no container: nothing is pulled
        resources=client.V1ResourceRequirements(
            requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "1"}
        ),
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=APP, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=REPLICAS,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[container],
                    node_selector={"drill.dev/pool": "gpu"},
                    tolerations=tolerations,
                ),
            ),
        ),
    )


def wait_until(what: str, check: Any, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.5)


def test_gpu_node_not_ready_chain_from_watch_events(kubeconfig: Path) -> None:
    from kubernetes import client, config, watch

    config.load_kube_config(config_file=str(kubeconfig))
    core = client.CoreV1Api()
    apps = client.AppsV1Api()

    nodes = core.list_node(label_selector="drill.dev/pool=gpu").items
    assert len(nodes) == 4
    assert {n.metadata.labels["topology.kubernetes.io/region"] for n in nodes} == {
        "region-a",
        "region-b",
    }
    assert all(n.status.allocatable["nvidia.com/gpu"] == "8" for n in nodes)
    wait_until(
        "the GPU nodes to be Ready",
        lambda: all(
            condition(n, "Ready") and condition(n, "Ready").status == "True"
            for n in core.list_node(label_selector="drill.dev/pool=gpu").items
        ),
    )

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    apps.create_namespaced_deployment(NAMESPACE, gpu_deployment(client))

    def ready_replicas() -> int:
        dep = apps.read_namespaced_deployment(name=APP, namespace=NAMESPACE)
        return int(dep.status.ready_replicas or 0)

    wait_until("the Deployment's replicas to be Ready", lambda: ready_replicas() == REPLICAS)
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"app={APP}")
    placed = {p.metadata.name: p.spec.node_name for p in pods.items}
    assert all(node.startswith("gpu-") for node in placed.values()), placed
    victim = sorted(placed.values())[0]
    victims = {name for name, node in placed.items() if node == victim}

    chain = Chain()
    stop = threading.Event()

    def watch_nodes() -> None:
        w = watch.Watch()
        for event in w.stream(
            core.list_node, field_selector=f"metadata.name={victim}", timeout_seconds=int(WAIT_S)
        ):
            node = event["object"]
            ready = condition(node, "Ready")
            if chain.node_not_ready is None and ready is not None and ready.status != "True":
                chain.node_not_ready = (ready.last_transition_time, time.monotonic())
            taints = node.spec.taints or []
            if chain.taint_added is None and any(
                t.effect == "NoExecute" and t.key.startswith("node.kubernetes.io/") for t in taints
            ):
                chain.taint_added = time.monotonic()
            if stop.is_set():
                w.stop()

    def watch_pods() -> None:
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_pod,
            NAMESPACE,
            label_selector=f"app={APP}",
            resource_version=pods.metadata.resource_version,
            timeout_seconds=int(WAIT_S),
        ):
            pod = event["object"]
            name = pod.metadata.name
            now = time.monotonic()
            if name in victims:
                if pod.metadata.deletion_timestamp and name not in chain.evicted:
                    chain.evicted[name] = (pod.metadata.deletion_timestamp, now)
            else:
                chain.created.setdefault(name, pod.metadata.creation_timestamp)
                if pod.spec.node_name and name not in chain.scheduled:
                    sched = condition(pod, "PodScheduled")
                    stamp = sched.last_transition_time if sched else pod.metadata.creation_timestamp
                    chain.scheduled[name] = (pod.spec.node_name, stamp)
                ready = condition(pod, "Ready")
                if ready is not None and ready.status == "True" and name not in chain.ready:
                    chain.ready[name] = (ready.last_transition_time, now)
            if stop.is_set():
                w.stop()

    errors: list[BaseException] = []

    def guarded(watcher: Any) -> Any:
        def run() -> None:
            try:
                watcher()
            except Exception as exc:  # the stream ends when the cluster goes: only earlier counts
                if not stop.is_set():
                    errors.append(exc)

        return run

    threads = [
        threading.Thread(target=guarded(f), daemon=True) for f in (watch_nodes, watch_pods)
    ]
    for t in threads:
        t.start()
    time.sleep(1)  # both watches open before the fault

    # The fault: kwok stops managing the node (its annotation goes), then the node reports
    # Ready=False as a kubelet would; the node lifecycle controller takes it from there.
    onset = time.monotonic()
    core.patch_node(victim, {"metadata": {"annotations": {"kwok.x-k8s.io/node": None}}})
    core.patch_node_status(
        victim,
        {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "DrillGpuNodeLost",
                        "message": "drill: GPU node lost",
                        "lastHeartbeatTime": datetime.now().astimezone().isoformat(),
                        "lastTransitionTime": datetime.now().astimezone().isoformat(),
                    }
                ]
            }
        },
    )

    wait_until(
        "replacements Ready on other nodes",
        lambda: len(chain.evicted) == len(victims)
        and sum(1 for n in list(chain.ready) if n not in placed) >= len(victims),
    )
    stop.set()
    assert not errors, f"a watch failed: {errors}"

    assert chain.node_not_ready is not None, "no watch event showed the node NotReady"
    assert chain.taint_added is not None, "no watch event showed the NoExecute taint"
    assert set(chain.evicted) == victims
    replacements = {n for n in chain.ready if n not in placed}
    assert len(replacements) >= len(victims)
    assert all(chain.scheduled[n][0] != victim for n in replacements), chain.scheduled
    last_ready = max(chain.ready[n][1] for n in replacements)
    first_evicted = min(t for _, t in chain.evicted.values())
    # The chain's order as the watches saw it (local arrival instants, one clock).
    assert onset <= chain.node_not_ready[1] <= chain.taint_added <= first_evicted <= last_ready
    print(
        f"\nrepair chain for {victim} ({len(victims)} pods), seconds after the fault:"
        f"\n  node NotReady    {chain.node_not_ready[1] - onset:6.2f}"
        f"\n  taint NoExecute  {chain.taint_added - onset:6.2f}"
        f"\n  pods evicted     {first_evicted - onset:6.2f}"
        f"\n  replacements Ready {last_ready - onset:6.2f}"
    )
