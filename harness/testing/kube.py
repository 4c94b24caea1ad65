"""A throwaway Kubernetes cluster for tests of the ``kubernetes`` runtime: the real control plane
scripts/k8s-setup builds (kube-apiserver, etcd, scheduler, controller-manager; kwok nodes), a
GPU Deployment on it, and scenarios that drill it.

    with kube_cluster("drill-test") as cluster:
        gpu_deployment(cluster, "serving", "gpu-serve", replicas=4)
        ...

A missing part (the binaries, the ``kubernetes`` client) fails under ``CI=true`` and skips
elsewhere (:func:`harness.testing.require`). The cluster listens on random 127.0.0.1 ports and
is deleted on every exit path.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.testing.parts import REPO, free_port, require

__all__ = ["KubeTestCluster", "gpu_deployment", "kube_cluster", "kube_scenario", "wait_until"]

SETUP = REPO / "scripts" / "k8s-setup"
WAIT_S = 120.0


@dataclass(frozen=True)
class KubeTestCluster:
    name: str
    kubeconfig: Path
    cache: Path

    @property
    def context(self) -> str:
        return f"kwok-{self.name}"

    def api(self) -> Any:
        """An admin client (``kubernetes.client.ApiClient``) for the cluster."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig), context=self.context)

    @property
    def kubectl(self) -> str:
        built = sorted(self.cache.glob("kubernetes-*/bin/kubectl"))
        return str(built[-1])


def _env(name: str, cache: Path) -> dict[str, str]:
    return {**os.environ, "K8S_CACHE": str(cache), "K8S_CLUSTER": name}


@contextlib.contextmanager
def kube_cluster(name: str) -> Iterator[KubeTestCluster]:
    """Start cluster ``name`` (four Ready GPU nodes, two regions) and delete it afterwards."""
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        require(False, "the Kubernetes Python client", "pip install '.[kubernetes]'")
    cache = Path(os.environ.get("K8S_CACHE", REPO / ".k8s"))
    status = subprocess.run([str(SETUP), "--status"], capture_output=True, text=True, env=_env(name, cache),
                            timeout=60, check=False)
    require(status.returncode == 0 and "missing" not in status.stdout, "the Kubernetes control plane",
            "run scripts/k8s-setup to build it")
    try:
        subprocess.run([str(SETUP), "--start"], env=_env(name, cache), check=True, timeout=300)
        cluster = KubeTestCluster(name, cache / f"{name}.kubeconfig", cache)
        from kubernetes import client

        core = client.CoreV1Api(cluster.api())
        wait_until("the GPU nodes Ready", lambda: len([
            n for n in core.list_node(label_selector="drill.dev/pool=gpu").items
            if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])]) == 4)
        yield cluster
    finally:
        subprocess.run([str(SETUP), "--stop"], env=_env(name, cache), check=False, timeout=120)


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = WAIT_S) -> float:
    """Poll ``check`` every 0.2 s until true (returns the seconds it took); fail in time."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout_s, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.2)
    return time.monotonic() - start


def gpu_deployment(cluster: KubeTestCluster, namespace: str, name: str, replicas: int, *,
                   toleration_s: int = 2, region: str | None = None) -> None:
    """Namespace (if new) + a Deployment of ``replicas`` pods asking one ``nvidia.com/gpu`` each
    on the GPU pool (``region``: only there), tolerating the not-ready / unreachable NoExecute
    taints ``toleration_s`` (default 300 s on a real cluster), and wait until all are Ready.

    A Deployment of that name already there (a first try of the same test that failed) is
    replaced. When the pods are not Ready in time, the failure names each pod's phase, node and
    the reason it gives (the scheduler's, e.g. insufficient ``nvidia.com/gpu``)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = cluster.api()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    if namespace not in {n.metadata.name for n in core.list_namespace().items}:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    labels = {"app.kubernetes.io/name": name}
    selector = {"drill.dev/pool": "gpu", **({"topology.kubernetes.io/region": region} if region else {})}
    tolerations = [client.V1Toleration(key=key, operator="Exists", effect="NoExecute", toleration_seconds=toleration_s)
                   for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
    container = client.V1Container(name="serve", image="drill.local/fake:0", resources=client.V1ResourceRequirements(
        requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "1"}))
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container], node_selector=selector, tolerations=tolerations)),
        ))
    try:
        apps.create_namespaced_deployment(namespace, deployment)
    except ApiException as exc:
        if exc.status != 409:
            raise
        apps.replace_namespaced_deployment(name, namespace, deployment)

    def ready() -> bool:
        dep = apps.read_namespaced_deployment(name, namespace)
        return int(dep.status.ready_replicas or 0) == replicas

    try:
        wait_until(f"{namespace}/{name} Ready", ready)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; pods: {_pods_said(core, namespace, name)}") from None


def _pods_said(core: Any, namespace: str, name: str) -> str:
    """Each pod of Deployment ``name``: phase, node and the reason of each condition not met."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/name={name}").items
    return "; ".join(
        f"{pod.metadata.name} {pod.status.phase} on {pod.spec.node_name or 'no node'}"
        + "".join(f" ({c.type}: {' '.join(filter(None, (c.reason, c.message)))})"
                  for c in pod.status.conditions or [] if c.status != "True")
        for pod in pods
    ) or "none"


def kube_scenario(path: Path, cluster: KubeTestCluster, namespace: str, faults: str, *, name: str = "k8s-drill",
                  phases: str = "{baseline: 3s, fault: 40s, recovery: 3s}", objectives: str = "{}",
                  kubeconfig: Path | None = None, context: str | None = None) -> Path:
    """A drill of ``namespace`` on ``cluster``; its load probes the API server's ``/readyz``
    through the runtime's ``kubectl proxy`` (stage 1's kwok pods serve no HTTP). ``faults`` is
    the YAML list's text."""
    port = free_port()
    path.write_text(f"""apiVersion: drill/v1
kind: Scenario
name: {name}
stack:
  runtime: kubernetes
  file: {kubeconfig or cluster.kubeconfig}
  context: {context or cluster.context}
  namespace: {namespace}
  gpu_pool: {{node_labels: {{drill.dev/pool: gpu}}}}
  api_proxy_port: {port}
load:
  host: http://127.0.0.1:{port}
  users: 0
  request: {{method: GET, path: /readyz}}
  probe_rate_hz: 5
phases: {phases}
faults:
{faults}
objectives: {objectives}
""", encoding="utf-8")
    return path
