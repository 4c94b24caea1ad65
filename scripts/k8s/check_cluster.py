"""Check the kwok cluster of `scripts/k8s-setup --start` with the official Python client.

Usage: .venv/bin/python scripts/k8s/check_cluster.py [--kubeconfig .k8s/drill.kubeconfig]

Asserts that the GPU pool's nodes (label drill.dev/pool=gpu) are Ready in two regions, then
creates a Deployment asking one `nvidia.com/gpu` per pod, waits until every replica is Ready,
prints where each pod landed, and deletes the namespace. Exit 0 when all holds, 1 otherwise.
Every wait is bounded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from kubernetes import client, config

NAMESPACE = "drill-check"
POOL = "drill.dev/pool=gpu"
REGION = "topology.kubernetes.io/region"


def ready(node: client.V1Node) -> bool:
    conditions = node.status.conditions or [] if node.status else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def deployment(replicas: int) -> client.V1Deployment:
    labels = {"app": "gpu-check"}
    container = client.V1Container(
        name="serve",
        image="drill.local/fake:0",  # kwok never pulls: no kubelet, no image
        resources=client.V1ResourceRequirements(
            requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "1"}
        ),
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="gpu-check", labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[container], node_selector={"drill.dev/pool": "gpu"}
                ),
            ),
        ),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[2]
    parser.add_argument("--kubeconfig", default=str(root / ".k8s" / "drill.kubeconfig"))
    parser.add_argument("--replicas", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    config.load_kube_config(config_file=args.kubeconfig)
    core = client.CoreV1Api()
    apps = client.AppsV1Api()
    version = client.VersionApi().get_code()
    print(f"server {version.git_version} at {core.api_client.configuration.host}")

    deadline = time.monotonic() + args.timeout
    while True:
        nodes = core.list_node(label_selector=POOL).items
        if nodes and all(ready(n) for n in nodes):
            break
        if time.monotonic() > deadline:
            print(f"FAIL: GPU nodes not Ready: {[n.metadata.name for n in nodes if not ready(n)]}")
            return 1
        time.sleep(1)
    regions = sorted({n.metadata.labels[REGION] for n in nodes})
    gpus = {n.metadata.name: n.status.allocatable.get("nvidia.com/gpu") for n in nodes}
    print(f"{len(nodes)} GPU nodes Ready in {regions}; allocatable nvidia.com/gpu {gpus}")
    if len(regions) < 2:
        print("FAIL: the GPU pool must span two regions")
        return 1

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    try:
        t0 = time.monotonic()
        apps.create_namespaced_deployment(NAMESPACE, deployment(args.replicas))
        while True:
            dep = apps.read_namespaced_deployment(name="gpu-check", namespace=NAMESPACE)
            if (dep.status.ready_replicas or 0) == args.replicas:
                break
            if time.monotonic() > deadline + args.timeout:
                print(f"FAIL: {dep.status.ready_replicas or 0}/{args.replicas} replicas Ready")
                return 1
            time.sleep(0.5)
        print(f"Deployment gpu-check: {args.replicas}/{args.replicas} Ready "
              f"in {time.monotonic() - t0:.1f} s")
        pods = core.list_namespaced_pod(NAMESPACE, label_selector="app=gpu-check").items
        for pod in sorted(pods, key=lambda p: p.spec.node_name or ""):
            print(f"  {pod.metadata.name} on {pod.spec.node_name} phase {pod.status.phase}")
        if any(p.spec.node_name not in gpus for p in pods):
            print("FAIL: a pod landed outside the GPU pool")
            return 1
    finally:
        core.delete_namespace(NAMESPACE)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
