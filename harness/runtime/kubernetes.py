"""The ``kubernetes`` runtime (docs/kubernetes.md, docs/scaling.md section 1): a stack that runs
on a Kubernetes cluster, reached with the official ``kubernetes`` Python client.

The scenario names the cluster exactly: ``stack.context`` and ``stack.namespace`` are required
(never "whatever the shell points at"), ``stack.file`` is the kubeconfig (default: the client's
own search, ``$KUBECONFIG`` then ``~/.kube/config``). Members are pods found by label selectors
(``stack.services``: name -> labels and owning Deployment) and, with ``stack.gpu_pool``, the GPU
nodes by their labels. Health comes from the pods' ``Ready`` condition, the Deployments' ready
replicas and the nodes' ``Ready`` condition, ``spec.unschedulable`` and ``drill.dev/*`` marks.

drill deploys nothing and leaves the cluster as it found it. The one process it starts is an
optional ``kubectl proxy`` on ``stack.api_proxy_port`` (127.0.0.1), the plain-HTTP path the load
probes when the stack has no HTTP path of its own (stage 1's kwok nodes run no containers):
its process group is journaled so ``drill recover`` stops it after a ``kill -9``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ScenarioError, StackError
from harness.runtime.base import Fingerprint, JsonValue, RuntimeKind, Target

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api, V1Node, V1Pod

    from harness.scenario.model import StackRef

__all__ = ["DRILL_MARK", "KubeCluster", "KubernetesRuntime", "kubectl_binary", "node_ready", "pod_ready"]

DRILL_MARK = "drill.dev/"
"""Prefix of every taint, annotation and label drill puts on a cluster object."""
READY_WAIT_S = 60.0
PROXY_WAIT_S = 15.0


@dataclass(frozen=True)
class KubeCluster:
    """Stable coordinates of a cluster: what undo records keep, so ``drill recover`` reconnects
    without the scenario. ``kubeconfig`` None: the client's default search."""

    kubeconfig: str | None
    context: str

    def api(self) -> ApiClient:
        """A client for exactly this context; ScenarioError (exit 2) when it does not exist."""
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        try:
            return config.new_client_from_config(config_file=self.kubeconfig, context=self.context)
        except (ConfigException, OSError) as exc:
            where = self.kubeconfig or "the default kubeconfig"
            raise ScenarioError(f"kubernetes context {self.context!r} not usable from {where}: {exc}") from None


def kubectl_binary() -> str | None:
    """``$KUBECTL``, ``kubectl`` on PATH, or the one scripts/k8s-setup built (``.k8s/``)."""
    given = os.environ.get("KUBECTL")
    if given:
        return given
    found = shutil.which("kubectl")
    if found:
        return found
    root = Path(os.environ.get("K8S_CACHE", Path(__file__).resolve().parents[2] / ".k8s"))
    built = sorted(root.glob("kubernetes-*/bin/kubectl"))
    return str(built[-1]) if built else None


def node_ready(node: V1Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def pod_ready(pod: V1Pod) -> bool:
    conditions = pod.status.conditions if pod.status else None
    return any(c.type == "Ready" and c.status == "True" for c in (conditions or []))


def _pod_state(pod: V1Pod) -> str:
    if pod.metadata.deletion_timestamp is not None:
        return "stopping"
    phase = pod.status.phase if pod.status else None
    if phase == "Running":
        statuses = pod.status.container_statuses or []
        return "running" if all(s.state is not None and s.state.running is not None for s in statuses) else "restarting"
    if phase in ("Succeeded", "Failed"):
        return "exited"
    return "created"  # Pending (unscheduled or starting)


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class KubernetesRuntime:
    """A stack on a Kubernetes cluster; see the module's docstring."""

    kind: RuntimeKind = "kubernetes"

    def __init__(self, ref: StackRef, log_dir: Path) -> None:
        if not ref.context or not ref.namespace:
            raise ScenarioError("the kubernetes runtime needs stack.context and stack.namespace")
        from kubernetes import client

        self.cluster = KubeCluster(str(ref.file) if ref.file else None, ref.context)
        self.namespace = ref.namespace
        self.services = {name: (dict(s.labels) or {"app.kubernetes.io/name": name}, s.deployment or name)
                         for name, s in ref.services.items()}
        self.node_labels = dict(ref.gpu_pool.node_labels) if ref.gpu_pool else {}
        self.api_proxy_port = ref.api_proxy_port
        self.log_dir = log_dir
        self.api_client = self.cluster.api()
        self.core: CoreV1Api = client.CoreV1Api(self.api_client)
        self.apps: AppsV1Api = client.AppsV1Api(self.api_client)
        self._proxy: subprocess.Popen[bytes] | None = None
        self.applied_faults: set[str] = set()  # Kubernetes faults applied and not yet reverted
        if not self.services:
            self.services = self._discover()

    def _discover(self) -> dict[str, tuple[dict[str, str], str]]:
        """Without ``stack.services``: every Deployment of the namespace, by its own selector."""
        try:
            deployments = self.apps.list_namespaced_deployment(self.namespace).items
        except Exception as exc:
            raise StackError(f"kubernetes: listing deployments in {self.namespace} "
                             f"({self.cluster.context}): {getattr(exc, 'reason', None) or exc}") from None
        return {str(d.metadata.name): (dict(d.spec.selector.match_labels or {}), str(d.metadata.name))
                for d in deployments}

    # --- what the stack exposes -----------------------------------------------------------
    @property
    def toxiproxy_url(self) -> str | None:
        return None  # stage 1: no Toxiproxy Service in the namespace (docs/kubernetes.md)

    @property
    def prometheus_url(self) -> str | None:
        return None

    @property
    def http_fault_proxy_url(self) -> str | None:
        return None

    @property
    def api_proxy_url(self) -> str | None:
        return f"http://127.0.0.1:{self.api_proxy_port}" if self.api_proxy_port else None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> dict[str, str]:
        """Deploy nothing: wait (bounded) until every service's Deployment has its replicas
        ready, then open the ``kubectl proxy`` when asked for. StackError when it cannot."""
        deadline = time.monotonic() + READY_WAIT_S
        while True:
            short = self.not_running()
            if not short:
                break
            if time.monotonic() > deadline:
                raise StackError(f"kubernetes: not ready after {READY_WAIT_S:g} s: {', '.join(short)}")
            time.sleep(0.5)
        endpoints: dict[str, str] = {"kubernetes": f"{self.cluster.context}/{self.namespace}"}
        if self.api_proxy_port:
            # Named as its process group, so `drill recover` can say which port it stopped.
            endpoints["kubectl-proxy"] = self._start_proxy(self.api_proxy_port)
        return endpoints

    def _start_proxy(self, port: int) -> str:
        kubectl = kubectl_binary()
        if kubectl is None:
            raise StackError("stack.api_proxy_port needs kubectl (on PATH, $KUBECTL, or scripts/k8s-setup)")
        cmd = [kubectl, "proxy", f"--port={port}", "--address=127.0.0.1", f"--context={self.cluster.context}"]
        if self.cluster.kubeconfig:
            cmd.append(f"--kubeconfig={self.cluster.kubeconfig}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "kubectl-proxy.log", "ab") as log:
            self._proxy = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + PROXY_WAIT_S
        while time.monotonic() < deadline:
            if self._proxy.poll() is not None:
                self._proxy = None
                raise StackError(f"kubectl proxy on 127.0.0.1:{port} exited (see {self.log_dir}/kubectl-proxy.log)")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return f"http://127.0.0.1:{port}"
            time.sleep(0.1)
        self.stop()
        raise StackError(f"kubectl proxy did not listen on 127.0.0.1:{port} within {PROXY_WAIT_S:g} s")

    def stop(self) -> None:
        """Stop the ``kubectl proxy`` (if any); touch nothing in the cluster. Idempotent."""
        proxy, self._proxy = self._proxy, None
        if proxy is None or proxy.poll() is not None:
            return
        try:
            os.killpg(proxy.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proxy.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proxy.pid, signal.SIGKILL)
            proxy.wait(timeout=5)

    def down(self) -> None:
        self.stop()  # the cluster's workloads are not drill's

    # --- members ---------------------------------------------------------------------------
    def _pods(self, labels: Mapping[str, str]) -> list[V1Pod]:
        pods: list[V1Pod] = self.core.list_namespaced_pod(self.namespace, label_selector=_selector(labels)).items
        return pods

    def _pod_target(self, pod: V1Pod, service: str) -> Target:
        return Target(
            kind="pod", name=pod.metadata.name, service=service, scope=self.namespace, uid=pod.metadata.uid,
            state=_pod_state(pod), healthy=pod_ready(pod), labels=dict(pod.metadata.labels or {}),
            node=pod.spec.node_name,
        )

    def find(self, service: str | None = None, labels: Mapping[str, str] | None = None) -> list[Target]:
        chosen = {service: self.services.get(service, ({"app.kubernetes.io/name": service}, service))} \
            if service else self.services
        found: dict[str, Target] = {}
        for name, (selector, _) in chosen.items():
            for pod in self._pods({**selector, **(labels or {})}):
                found[pod.metadata.name] = self._pod_target(pod, name)
        if service is None and not self.services and labels:
            for pod in self._pods(labels):
                found[pod.metadata.name] = self._pod_target(pod, pod.metadata.labels.get("app", ""))
        return sorted(found.values(), key=lambda t: t.name)

    def nodes(self) -> list[V1Node]:
        """The GPU pool's nodes (``stack.gpu_pool``), sorted by name; empty without a pool."""
        if not self.node_labels:
            return []
        nodes: list[V1Node] = self.core.list_node(label_selector=_selector(self.node_labels)).items
        return sorted(nodes, key=lambda n: str(n.metadata.name))

    def members(self) -> list[Target]:
        members = self.find()
        for node in self.nodes():
            marks = _node_marks(node)
            members.append(Target(
                kind="node", name=node.metadata.name, service="gpu_pool", scope=self.cluster.context,
                uid=node.metadata.uid, state="running" if node_ready(node) else "stopped",
                healthy=node_ready(node) and not marks, labels=dict(node.metadata.labels or {}),
            ))
        return members

    def _short(self) -> list[tuple[str, int, int]]:
        """(service, ready, desired) for each service whose Deployment is short of replicas."""
        from kubernetes.client.exceptions import ApiException

        short: list[tuple[str, int, int]] = []
        for name, (_, deployment) in self.services.items():
            try:
                dep = self.apps.read_namespaced_deployment(deployment, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    short.append((name, 0, -1))
                    continue
                raise StackError(f"kubernetes: reading deployment {deployment}: {exc.reason}") from None
            desired = int(dep.spec.replicas if dep.spec.replicas is not None else 1)
            ready = int(dep.status.ready_replicas or 0)
            if ready < desired:
                short.append((name, ready, desired))
        return short

    def not_running(self) -> list[str]:
        """Services whose Deployment has fewer ready replicas than desired (a deleted pod is
        gone: its owner's shortfall is what shows it)."""
        return [name for name, _, _ in self._short()]

    def unhealthy(self) -> list[str]:
        lines = [f"{self.namespace}/{name}: deployment missing" if desired < 0
                 else f"{self.namespace}/{name}: {ready}/{desired} replicas ready"
                 for name, ready, desired in self._short()]
        lines += [f"{self.namespace}/{t.name}: pod not Ready ({t.state})" for t in self.find()
                  if not t.healthy and t.state != "stopping"]
        for node in self.nodes():
            if not node_ready(node):
                lines.append(f"node {node.metadata.name}: not Ready")
            lines += [f"node {node.metadata.name}: {mark}" for mark in _node_marks(node)]
        return lines

    def process_groups(self) -> dict[str, int]:
        proxy = self._proxy
        return {"kubectl-proxy": proxy.pid} if proxy is not None and proxy.poll() is None else {}

    def fingerprint(self) -> Fingerprint:
        from kubernetes import __version__ as client_version
        from kubernetes.client import VersionApi

        server = VersionApi(self.api_client).get_code().git_version
        nodes = {str(n.metadata.name): {"kubelet": n.status.node_info.kubelet_version,
                                        "runtime": n.status.node_info.container_runtime_version}
                 for n in self.nodes()}
        details: dict[str, JsonValue] = {
            "runtime": "kubernetes", "context": self.cluster.context, "namespace": self.namespace,
            "api_server": self.api_client.configuration.host, "nodes": dict(nodes),
        }
        return Fingerprint(details, {"kubernetes": str(server), "kubernetes-python-client": str(client_version)})


def _node_marks(node: V1Node) -> list[str]:
    """What drill (or an operator) left on a node: cordoned, drill taints and annotations."""
    marks: list[str] = []
    if node.spec.unschedulable:
        marks.append("cordoned (spec.unschedulable)")
    marks += [f"taint {t.key}:{t.effect}" for t in node.spec.taints or [] if t.key.startswith(DRILL_MARK)]
    marks += [f"annotation {k}" for k in (node.metadata.annotations or {}) if k.startswith(DRILL_MARK)]
    return marks
