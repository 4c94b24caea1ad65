"""The ``Runtime`` protocol: how the harness reaches a stack, whatever runs it.

Three runtimes implement it with the same types:

    kind        class                          the stack is
    local       harness.runtime.local.LocalRuntime     processes on 127.0.0.1 the harness supervises
    compose     harness.runtime.compose.ComposeRuntime a docker compose project (Docker Engine API)
    external    harness.runtime.ExternalRuntime        the user's own, already running: drill
                                                       starts, stops and kills nothing of it

The engine, the faults, ``drill recover`` and the CLI call these methods and nothing else; they
never probe a runtime for optional methods. Where a fault family needs what only one runtime has
(sending a signal to a local process group, a Docker container), it dispatches on ``kind`` through
:func:`~harness.runtime.kinds.is_local` / :func:`~harness.runtime.kinds.is_compose`, which
narrow the type for the checker (they live apart, in ``kinds.py``, so that this protocol imports
neither runtime that implements it).

Every method's docstring names how a **Kubernetes** runtime (docs/scaling.md, section 1) would
implement it with the official ``kubernetes`` Python client: a context and a namespace from the
scenario's ``stack:`` block, pods selected by label selectors, readiness from pod status, the pod
watch as onset source, logs read into the run directory, and undo records that name stable
cluster coordinates rather than a forwarded 127.0.0.1 port.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

__all__ = ["Fingerprint", "JsonValue", "Runtime", "RuntimeKind", "Target", "TargetKind"]

RuntimeKind = Literal["local", "compose", "external", "kubernetes"]
TargetKind = Literal["process", "container", "pod", "node"]
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


@dataclass(frozen=True)
class Target:
    """One member of a stack, as a fault selects it and as status shows it.

    ``name`` is unique within ``scope`` (the local stack's name, the compose project; a pod name
    within its namespace on Kubernetes). ``uid`` survives nothing but this instance: a container
    id, a pod uid, a process group id as text. ``address`` is the member's HTTP base URL on
    127.0.0.1 when it has one (where its fault hook answers), ``node`` the machine it runs on
    when that is not this one.
    """

    kind: TargetKind
    name: str
    service: str
    scope: str
    uid: str
    state: str  # running | paused | exited | dead | created | restarting | stopped
    healthy: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    address: str | None = None
    pid: int | None = None
    node: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    def as_dict(self) -> dict[str, JsonValue]:
        """JSON-able, for ``drill stack status --json``."""
        return {
            "name": self.name, "kind": self.kind, "service": self.service, "state": self.state,
            "healthy": self.healthy, "pid": self.pid, "address": self.address, "labels": dict(self.labels),
        }


@dataclass(frozen=True)
class Fingerprint:
    """What a stack is made of, for results.json ``environment``: ``details`` are merged into it
    as they are, ``tools`` (name -> version) into ``environment.tools``."""

    details: dict[str, JsonValue]
    tools: dict[str, str] = field(default_factory=dict)


class Runtime(Protocol):
    """How the engine, the faults, ``drill recover`` and ``drill stack`` reach a stack.

    ``kind`` says which runtime this is (``local``, ``compose``, ``external``; a Kubernetes runtime
    would be ``kubernetes``); ``log_dir`` is where the runtime writes what its members print (a
    run's ``stack-logs/``).
    """

    kind: RuntimeKind
    log_dir: Path

    @property
    def toxiproxy_url(self) -> str | None:
        """The Toxiproxy API the stack's links pass through, or None (a scenario may name one).

        Known before :meth:`start`. Kubernetes: the ``toxiproxy`` Service in the namespace,
        reached through a ``kubectl port-forward svc/toxiproxy`` child started here; the URL is
        ephemeral, so undo records name ``{namespace, service, port}``, never this URL."""
        ...

    @property
    def prometheus_url(self) -> str | None:
        """The Prometheus that scrapes the stack's own metrics, or None (a scenario may name one
        with ``prometheus: {url}``). Known before :meth:`start`. Kubernetes: the cluster's
        Prometheus (e.g. the kube-prometheus ``prometheus-operated`` Service) through a
        ``kubectl port-forward`` child started here, as for Toxiproxy."""
        ...

    @property
    def http_fault_proxy_url(self) -> str | None:
        """The HTTP fault proxy (mitmdump with drill's addon) in front of the stack's provider
        routes, or None; the engine uses it when the scenario names none with
        ``http_fault_proxy: {url}``. Known before :meth:`start`. Kubernetes: a mitmdump sidecar
        or Deployment with the addon in a ConfigMap, its ``http-fault-proxy`` Service reached
        through a ``kubectl port-forward`` child started here, as for Toxiproxy; undo records
        name ``{namespace, service, port, fault_id}``, never this URL."""
        ...

    def start(self) -> dict[str, str]:
        """Bring the stack up (or find it up) and wait until every member is healthy; return its
        endpoints (name -> address). Raises StackError, with nothing of its own left running,
        when it cannot. Kubernetes: deploy nothing; wait until each named Deployment/StatefulSet
        has ``status.ready_replicas == spec.replicas`` (``AppsV1Api.read_namespaced_deployment``),
        open the port-forwards and return them."""
        ...

    def stop(self) -> None:
        """Release what this drill opened; never tear down a stack others share (compose leaves
        the project up, as it found it). Idempotent. Kubernetes: stop the port-forward children,
        read every pod's log into :attr:`log_dir`
        (``CoreV1Api.read_namespaced_pod_log(name, namespace, container=..., timestamps=True)``,
        and with ``previous=True`` for each container that restarted); touch nothing in the
        cluster."""
        ...

    def down(self) -> None:
        """``drill stack down``: remove the stack itself (compose: ``down -v``; local: stop every
        process). External: nothing. Kubernetes: nothing — the cluster's workloads are not
        drill's; only the port-forwards are closed."""
        ...

    def find(self, service: str | None = None, labels: Mapping[str, str] | None = None) -> list[Target]:
        """Members of ``service`` (any state) carrying every label in ``labels``; ``service=None``
        selects by labels alone. Sorted by name. Kubernetes:
        ``CoreV1Api.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=<service>,k=v")``
        (the scenario's ``services:`` map overrides the selector); ``uid`` is
        ``metadata.uid``, ``node`` is ``spec.node_name``, ``state`` from ``status.phase`` and
        ``container_statuses[].state``."""
        ...

    def members(self) -> list[Target]:
        """Every member, the Toxiproxy the runtime started included, for ``drill stack status``.
        Kubernetes: every pod the ``services:`` selectors match, plus the GPU pool's nodes."""
        ...

    def unhealthy(self) -> list[str]:
        """Members not running and healthy, one readable line each (empty when all are).
        Checked before any fault is applied. Kubernetes: pods whose ``Ready`` condition is not
        True, workloads with fewer ready than desired replicas, and for a ``gpu_pool`` nodes not
        ``Ready`` or carrying a ``drill.dev/*`` taint."""
        ...

    def not_running(self) -> list[str]:
        """Names of members that are not running (stopped, exited, paused), checked once a second
        during a drill and after the rollback. Kubernetes: pods whose containers are not all in
        ``state.running``, and workloads below their desired replicas (a deleted pod is gone,
        so the owner's shortfall is what shows it)."""
        ...

    def process_groups(self) -> dict[str, int]:
        """Helper processes this runtime started (name -> process group id), journaled at
        ``stack.started`` so ``drill recover`` can stop them after a ``kill -9``. Local: the
        stack's processes; compose and external: none. Kubernetes: the port-forward children
        (and a Locust worker Job is journaled with its namespace/name beside them)."""
        ...

    def fingerprint(self) -> Fingerprint:
        """What the stack is made of (results.json ``environment``). Kubernetes: the context
        name and API server URL, ``VersionApi().get_code().git_version`` and the client's
        version as ``tools``, each pod's ``container_statuses[].image_id`` (digest), the nodes'
        ``node_info.kubelet_version`` and ``container_runtime_version``."""
        ...
