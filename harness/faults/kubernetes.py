"""Faults through the Kubernetes API (``runtime: kubernetes``; docs/kubernetes.md):

=====================  =========================================================  ==================
type                   apply                                                      undo record
=====================  =========================================================  ==================
``k8s_pod_kill``       delete the selected pods (grace 0: a crash)                ``k8s_pods_deleted``
``k8s_node_loss``      ``not_ready``: kwok stops managing the node, which then     ``k8s_node``
                       reports ``Ready=False``; ``drain``: cordon, then evict its
                       pods through the Eviction API (PodDisruptionBudgets hold);
                       ``cordon``: the cordon alone (new pods go elsewhere)
``k8s_quota_denial``   a ResourceQuota ``drill-<fault>`` on ``requests.<resource>``  ``k8s_quota``
                       in the region's namespace
``k8s_scale_down``     the service's Deployment scaled to ``replicas``            ``k8s_scale``
=====================  =========================================================  ==================

Every fault's undo record is built before the apply (the engine journals it first), names
stable cluster coordinates (kubeconfig, context, namespace, object names) and is replayed by
:func:`undo_kube` from ``drill recover`` alone. Every object drill changes carries a
``drill.dev/`` mark (annotation, label or the quota's name) so ``drill stack status`` finds it
without a journal (:func:`cluster_faults`).

**Onset** comes from the API's own record: a watch opened *before* the call shows the effect
(the node's ``Ready=False``, the pod's deletion, the quota's ``ADDED``, the Deployment's new
``spec.replicas``); the onset is the middle of [call sent, watch event arrived] and its
uncertainty half that bracket. The API's object timestamps (whole seconds) are kept beside.

**The repair chain**: while a fault is applied, :class:`ChainWatch` follows the pods,
Deployments, ReplicaSets and events of the stack's namespace and of the namespace the fault
names (the quota's, the killed pods'), and the selected nodes, and journals each link as it
arrives (``k8s.chain_link``: node_not_ready, cordoned, taint_added, evicted, eviction_refused,
scheduled, unschedulable with the scheduler's message from its FailedScheduling event or the
pod's PodScheduled condition, create_refused with the quota's message from the ReplicaSet's
ReplicaFailure condition or its FailedCreate event, ready; with the node's region, its
``topology.kubernetes.io/region`` label) and each change of a service's ready replicas
(``k8s.replicas``); harness/measure/repair_chain.py turns them into figures.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from harness.errors import FaultError, ScenarioError
from harness.faults.base import FaultDescription, Onset
from harness.rundir.events import KubeChainLink, KubeReplicas
from harness.rundir.journal import Journal
from harness.rundir.undo import KubeNodeUndo, KubePodsDeletedUndo, KubeQuotaUndo, KubeScaleUndo, KubeUndo
from harness.runtime.kubernetes import DRILL_MARK, KubeCluster, KubernetesRuntime, node_ready, pod_ready
from harness.scenario.fault_specs import (
    KubeApiFaultSpec,
    KubeNodeLossSpec,
    KubePodKillSpec,
    KubeQuotaDenialSpec,
    KubeScaleDownSpec,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, V1Node, V1Pod

__all__ = ["ChainWatch", "KubeFault", "cluster_faults", "kube_fault", "undo_kube"]

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
LOST_ANNOTATION = DRILL_MARK + "lost-by"
CORDON_ANNOTATION = DRILL_MARK + "cordoned-by"
SCALED_ANNOTATION = DRILL_MARK + "scaled-from"
QUOTA_LABEL = DRILL_MARK + "fault"
REGION_LABEL = "topology.kubernetes.io/region"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"  # the node lifecycle controller's, on a cordon
ONSET_WAIT_S = 15.0
REVERT_WAIT_S = 30.0
WATCH_POLL_S = 2  # a watch is reopened this often, so a stop request is seen within it


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _epoch(stamp: datetime | None) -> float | None:
    return stamp.timestamp() if stamp is not None else None


def _dns_name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return cleaned[:50] or "fault"


def _status(exc: BaseException) -> int | None:
    from kubernetes.client.exceptions import ApiException

    return exc.status if isinstance(exc, ApiException) else None


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise FaultError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.2)


# --- watching -------------------------------------------------------------------------------


def _stream(list_call: Callable[..., Any], stop: threading.Event, synced: threading.Event,
            **kwargs: Any) -> Iterator[tuple[str, Any]]:
    """(type, object) of what exists (as ADDED, from one list) then of every change after that
    list's resourceVersion, the watch reopened every few seconds from the last version seen (a
    410 Gone lists again) until ``stop`` is set. Watching from the list's own version, never
    from an item's, is what keeps old history from being replayed. ``synced`` is set once the
    first list's items are handed on (or the identity may not list them: 403): a change made
    after that is one the watch shows."""
    from kubernetes import watch

    version: str | None = None
    while not stop.is_set():
        if version is None:
            try:
                listed = list_call(**kwargs)
            except Exception as exc:
                if _status(exc) == 403:
                    synced.set()  # nothing to wait for: this watch sees nothing (deploy/k8s/rbac.yaml)
                if stop.wait(0.5):
                    return
                continue
            version = listed.metadata.resource_version
            for obj in listed.items:
                yield "ADDED", obj
            synced.set()
        w = watch.Watch()
        try:
            for event in w.stream(list_call, resource_version=version, timeout_seconds=WATCH_POLL_S, **kwargs):
                obj = event["object"]
                meta = getattr(obj, "metadata", None)
                if meta is not None and meta.resource_version:
                    version = meta.resource_version
                yield str(event["type"]), obj
                if stop.is_set():
                    break
        except Exception as exc:
            if _status(exc) == 410:
                version = None
                continue
            if stop.wait(0.5):
                return
        finally:
            w.stop()


class ChainWatch:
    """Follows a fault's effect and the cluster's repair, journaling each link once, from the
    moment it is started (before the fault's call) to :meth:`stop` (after the revert)."""

    def __init__(self, runtime: KubernetesRuntime, fault: str, journal: Journal | None,
                 nodes: list[str], namespaces: list[str]) -> None:
        self.runtime = runtime
        self.fault = fault
        self.journal = journal
        self.nodes = set(nodes)
        self.namespaces = namespaces
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.seen: set[tuple[str, str]] = set()
        self.before: set[str] = set()  # pods that existed when the watch started
        self.on: dict[str, str] = {}  # pod -> node, as last seen
        self.links: list[KubeChainLink] = []
        self.replicas: dict[str, tuple[int, int]] = {}
        self.regions: dict[str, str] = {}  # node -> its topology.kubernetes.io/region label
        self.started_at = 0.0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def start(self) -> None:
        core = self.runtime.core
        self.started_at = time.time()
        for node in core.list_node().items:
            self.regions[str(node.metadata.name)] = str((node.metadata.labels or {}).get(REGION_LABEL, ""))
        for ns in self.namespaces:
            self.before |= {f"{ns}/{p.metadata.name}" for p in core.list_namespaced_pod(ns).items}
        jobs: list[Callable[[threading.Event], None]] = [self._watch_nodes]
        for ns in self.namespaces:
            jobs += [partial(self._watch_pods, ns), partial(self._watch_deployments, ns),
                     partial(self._watch_replicasets, ns), partial(self._watch_events, ns)]
        synced = [threading.Event() for _ in jobs]
        for job, done in zip(jobs, synced, strict=True):
            thread = threading.Thread(target=job, args=(done,), daemon=True, name=f"k8s-chain-{self.fault}")
            thread.start()
            self.threads.append(thread)
        # The fault's call waits for every watch's first list: a pod deleted before its watch has
        # listed is in neither the list nor the watch after it, and the kill would show no eviction
        # (a busy host's drills aborted so, when the call went as soon as the threads started).
        deadline = time.monotonic() + ONSET_WAIT_S
        for done in synced:
            done.wait(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=WATCH_POLL_S + 3)

    def link(self, link: str, obj: str, key: str | None = None, *, api_at: float | None = None,
             node: str | None = None, detail: str | None = None) -> None:
        """Journal ``link`` of ``obj`` once (``key`` says what makes it the same link)."""
        with self.lock:
            mark = (link, key or obj)
            if mark in self.seen:
                return
            self.seen.add(mark)
            event = KubeChainLink(fault=self.fault, link=link, seen_at=time.time(), object=obj, api_at=api_at,
                                  node=node, region=(self.regions.get(node) or None) if node else None,
                                  detail=detail)
            self.links.append(event)
            self.changed.notify_all()
        if self.journal is not None:
            self.journal.write(event)

    def wait_for(self, link: str, timeout_s: float, objects: set[str] | None = None) -> KubeChainLink | None:
        """The first ``link`` seen (of one of ``objects``, when given), waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while True:
                found = next((e for e in self.links if e.link == link and (objects is None or e.object in objects)),
                             None)
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                self.changed.wait(left)

    # the watches ------------------------------------------------------------------------
    def _watch_nodes(self, synced: threading.Event) -> None:
        if not self.nodes:
            synced.set()
            return
        for _, node in _stream(self.runtime.core.list_node, self.stop_event, synced):
            name = str(node.metadata.name)
            self.regions[name] = str((node.metadata.labels or {}).get(REGION_LABEL, ""))
            if name not in self.nodes:
                continue
            for c in node.status.conditions or []:
                if c.type == "Ready" and c.status != "True":
                    self.link("node_not_ready", f"node/{name}", api_at=_epoch(c.last_transition_time), node=name,
                              detail=c.reason)
            if node.spec.unschedulable:
                self.link("cordoned", f"node/{name}", node=name)
            for t in node.spec.taints or []:
                if t.effect == "NoExecute" and t.key.startswith("node.kubernetes.io/"):
                    self.link("taint_added", f"node/{name}", api_at=_epoch(t.time_added), node=name, detail=t.key)

    def _watch_pods(self, ns: str, synced: threading.Event) -> None:
        for kind, pod in _stream(self.runtime.core.list_namespaced_pod, self.stop_event, synced, namespace=ns):
            name = f"{ns}/{pod.metadata.name}"
            node = pod.spec.node_name
            if node:
                self.on[name] = node
                if node not in self.regions:
                    self._learn_region(node)
            if name in self.before:
                if pod.metadata.deletion_timestamp is not None or kind == "DELETED":
                    # deletionTimestamp is when the grace period ends: the request came that much earlier.
                    deadline = _epoch(pod.metadata.deletion_timestamp)
                    grace = pod.metadata.deletion_grace_period_seconds or 0
                    self.link("evicted", f"pod/{name}", api_at=None if deadline is None else deadline - grace,
                              node=self.on.get(name))
                continue
            scheduled = next((c for c in (pod.status.conditions or []) if c.type == "PodScheduled"), None)
            if scheduled is not None and scheduled.status == "False" and scheduled.reason == "Unschedulable":
                self.link("unschedulable", f"pod/{name}", api_at=_epoch(scheduled.last_transition_time),
                          detail=scheduled.message)
            if node:
                self.link("scheduled", f"pod/{name}", node=node,
                          api_at=_epoch(scheduled.last_transition_time if scheduled is not None else None))
            if pod_ready(pod):
                ready = next(c for c in pod.status.conditions if c.type == "Ready")
                self.link("ready", f"pod/{name}", api_at=_epoch(ready.last_transition_time), node=node)

    def _watch_deployments(self, ns: str, synced: threading.Event) -> None:
        services = {deployment: name for name, (_, deployment) in self.runtime.services.items()}
        for _, dep in _stream(self.runtime.apps.list_namespaced_deployment, self.stop_event, synced, namespace=ns):
            name = str(dep.metadata.name)
            service = services.get(name, name) if ns == self.runtime.namespace else f"{ns}/{name}"
            now = (int(dep.status.ready_replicas or 0), int(dep.spec.replicas if dep.spec.replicas is not None else 1))
            if self.replicas.get(service) == now:
                continue
            self.replicas[service] = now
            if self.journal is not None:
                self.journal.write(KubeReplicas(fault=self.fault, service=service, ready=now[0], desired=now[1],
                                                seen_at=time.time()))

    def _learn_region(self, node: str) -> None:
        """A node the start's list did not have (one added since): read its region once."""
        try:
            labels = self.runtime.core.read_node(node).metadata.labels or {}
        except Exception:
            labels = {}
        self.regions[node] = str(labels.get(REGION_LABEL, ""))

    def _since_start(self, stamp: float | None) -> bool:
        """An API stamp of this fault's window; an older one is an earlier run's or fault's (API
        stamps are whole seconds, hence the 1 s)."""
        return stamp is not None and stamp >= self.started_at - 1.0

    def _watch_replicasets(self, ns: str, synced: threading.Event) -> None:
        """A refused create as the ReplicaSet controller records it on the ReplicaSet itself: its
        ``ReplicaFailure`` condition (reason ``FailedCreate``, the quota admission's error), set at
        the first refusal and removed at the next successful sync. The ``FailedCreate`` event says
        the same, but the controller-manager's event recorder drops an object's Warning events past
        a burst of 25 (one more every 5 minutes): a ReplicaSet refused in a drill minutes before has
        no event left to show, its condition still comes (docs/kubernetes.md "Refusals past the
        event recorder's budget")."""
        for _, rs in _stream(self.runtime.apps.list_namespaced_replica_set, self.stop_event, synced,
                             namespace=ns):
            for c in rs.status.conditions or []:
                if c.type != "ReplicaFailure" or c.status != "True" or c.reason != "FailedCreate" \
                        or "exceeded quota" not in (c.message or ""):
                    continue
                stamp = _epoch(c.last_transition_time)
                if self._since_start(stamp):
                    self.link("create_refused", f"replicaset/{ns}/{rs.metadata.name}", api_at=stamp,
                              detail=c.message)

    def _watch_events(self, ns: str, synced: threading.Event) -> None:
        for _, event in _stream(self.runtime.core.list_namespaced_event, self.stop_event, synced, namespace=ns):
            stamp = _epoch(event.last_timestamp or event.event_time or event.first_timestamp)
            # The list replays the namespace's kept events (an hour of them).
            if not self._since_start(stamp):
                continue
            involved = event.involved_object
            if event.reason == "FailedCreate" and "exceeded quota" in (event.message or ""):
                obj = f"{(involved.kind or '').lower()}/{ns}/{involved.name}"
                # One link per refusing owner: the first refusal is the fact, the repeats are retries
                # (its ReplicaFailure condition, when it came first, made the link).
                self.link("create_refused", obj, api_at=stamp, detail=event.message)
            elif event.reason == "FailedScheduling" and involved.kind == "Pod" \
                    and f"{ns}/{involved.name}" not in self.before:
                # The scheduler's own reason; the pod watch may bring the same message first (the
                # scheduler writes it to the pod's PodScheduled condition too): one link per pod.
                self.link("unschedulable", f"pod/{ns}/{involved.name}", api_at=stamp, detail=event.message)


# --- the faults -----------------------------------------------------------------------------


class KubeFault:
    """One fault through the Kubernetes API (the module's table). Built (selectors resolved)
    before any fault is applied; apply, revert and verify read the cluster back."""

    def __init__(self, spec: KubeApiFaultSpec, runtime: KubernetesRuntime, journal: Journal | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.type: str = spec.type
        self.runtime = runtime
        self.journal = journal
        self.cluster = runtime.cluster
        self.namespace = runtime.namespace
        self.watch: ChainWatch | None = None
        self.nodes: list[str] = []
        self.cordoned: list[str] = []
        self.replicas_before = 0
        self.deployment = ""
        self.selector = ""
        self.pods_namespace = runtime.namespace  # k8s_pod_kill: the namespace of the pods it kills
        self.quota = f"drill-{_dns_name(spec.name)}"
        self.applied = False
        self.reverted = False
        match spec:
            case KubeNodeLossSpec():
                self._select_nodes(spec)
            case KubeScaleDownSpec():
                self._select_deployment(spec.target.service or "")
            case KubePodKillSpec():
                self.pods_namespace = spec.namespace or runtime.namespace
                service = spec.target.service or ""
                own = runtime.services.get(service) if self.pods_namespace == runtime.namespace else None
                labels = own[0] if own else ({"app.kubernetes.io/name": service} if service else {})
                self.selector = ",".join(f"{k}={v}" for k, v in sorted({**labels, **spec.target.labels}.items()))
                try:
                    found = self._kill_candidates()
                except ScenarioError:
                    raise
                except Exception as exc:
                    raise ScenarioError(f"fault {spec.name!r}: listing pods in namespace {self.pods_namespace}: "
                                        f"{getattr(exc, 'reason', None) or exc}") from None
                if not found:
                    where = f" on nodes {spec.on_nodes}" if spec.on_nodes else ""
                    raise ScenarioError(f"fault {spec.name!r}: no pod matches {spec.target.describe()}{where} "
                                        f"in namespace {self.pods_namespace}")
            case KubeQuotaDenialSpec():
                pass

    def _select_nodes(self, spec: KubeNodeLossSpec) -> None:
        selector = ",".join(f"{k}={v}" for k, v in sorted(spec.target.labels.items()))
        nodes: list[V1Node] = self.runtime.core.list_node(label_selector=selector).items
        usable = sorted(str(n.metadata.name) for n in nodes if node_ready(n) and not n.spec.unschedulable)
        if len(usable) < spec.count:
            raise ScenarioError(f"fault {spec.name!r}: {len(usable)} Ready schedulable node(s) match {selector}, "
                                f"{spec.count} asked for")
        self.nodes = usable[: spec.count]
        if spec.mode == "not_ready":
            unmanaged = [n.metadata.name for n in nodes if n.metadata.name in self.nodes
                         and (n.metadata.annotations or {}).get(KWOK_ANNOTATION) != "fake"]
            if unmanaged:
                raise ScenarioError(f"fault {spec.name!r}: mode not_ready needs kwok nodes "
                                    f"({KWOK_ANNOTATION}=fake); {', '.join(unmanaged)} is not one: use mode drain")
        self.cordoned = list(self.nodes) if spec.mode in ("drain", "cordon") else []

    def _kill_candidates(self) -> list[V1Pod]:
        """The pods ``k8s_pod_kill`` may delete, by name: its selector in its namespace, and with
        ``on_nodes`` only those bound to a node matching that node label selector."""
        assert isinstance(self.spec, KubePodKillSpec)
        pods: list[V1Pod] = self.runtime.core.list_namespaced_pod(self.pods_namespace,
                                                                  label_selector=self.selector).items
        pods = [p for p in pods if p.metadata.deletion_timestamp is None]
        if self.spec.on_nodes:
            from kubernetes.client.exceptions import ApiException

            try:
                listed = self.runtime.core.list_node(label_selector=self.spec.on_nodes).items
                nodes = {str(n.metadata.name) for n in listed}
            except ApiException as exc:
                raise ScenarioError(f"fault {self.name!r}: on_nodes {self.spec.on_nodes!r}: {exc.reason}") from None
            pods = [p for p in pods if p.spec.node_name in nodes]
        return sorted(pods, key=lambda p: str(p.metadata.name))

    def _select_deployment(self, service: str) -> None:
        _, deployment = self.runtime.services.get(service, ({}, service))
        self.deployment = deployment
        try:
            scale = self.runtime.apps.read_namespaced_deployment_scale(deployment, self.namespace)
        except Exception as exc:
            raise ScenarioError(f"fault {self.name!r}: no deployment {deployment} in namespace "
                                f"{self.namespace}: {exc}") from None
        self.replicas_before = int(scale.spec.replicas or 0)

    # --- the Fault protocol ---------------------------------------------------------------
    def undo(self) -> KubeUndo:
        where = {"kubeconfig": self.cluster.kubeconfig, "context": self.cluster.context}
        match self.spec:
            case KubeNodeLossSpec():
                return KubeNodeUndo(**where, nodes=self.nodes, mode=self.spec.mode, cordoned=self.cordoned)
            case KubeQuotaDenialSpec():
                return KubeQuotaUndo(**where, namespace=self.spec.namespace, name=self.quota)
            case KubeScaleDownSpec():
                return KubeScaleUndo(**where, namespace=self.namespace, deployment=self.deployment,
                                     replicas_before=self.replicas_before)
            case KubePodKillSpec():
                return KubePodsDeletedUndo(**where, namespace=self.pods_namespace, selector=self.selector)

    def describe(self) -> FaultDescription:
        services = [f"service:{name}" for name in self.runtime.services]
        match self.spec:
            case KubeNodeLossSpec():
                targets = [f"node:{n}" for n in self.nodes] + services
            case KubeQuotaDenialSpec():
                targets = [f"resourcequota:{self.spec.namespace}/{self.quota}"] + services
            case KubeScaleDownSpec():
                targets = [f"deployment:{self.namespace}/{self.deployment}"] + services
            case KubePodKillSpec():
                on = f" on {self.spec.on_nodes}" if self.spec.on_nodes else ""
                targets = [f"pods:{self.pods_namespace}/{self.selector}{on}"] + services
        return {"targets": targets, "params": dict(self.spec.parameters()), "undo": self.undo()}

    def apply(self) -> Onset:
        namespaces = [self.namespace]
        named = self.spec.namespace if isinstance(self.spec, KubeQuotaDenialSpec) else self.pods_namespace
        if named != self.namespace:
            namespaces.append(named)  # the quota's, the killed pods': the chain follows them too
        self.watch = ChainWatch(self.runtime, self.name, self.journal, self.nodes, namespaces)
        self.watch.start()
        self.applied = True
        self.runtime.applied_faults.add(self.name)
        sent = time.time()
        match self.spec:
            case KubeNodeLossSpec() if self.spec.mode == "not_ready":
                for node in self.nodes:
                    _node_not_ready(self.runtime, node, self.name)
                return self._onset(sent, "node_not_ready", "k8s-watch:node-not-ready")
            case KubeNodeLossSpec() if self.spec.mode == "cordon":
                for node in self.nodes:
                    self._cordon(node)
                return self._onset(sent, "cordoned", "k8s-watch:node-cordoned")
            case KubeNodeLossSpec():
                for node in self.nodes:
                    self._drain(node)
                return self._onset(sent, "cordoned", "k8s-watch:node-cordoned")
            case KubeQuotaDenialSpec():
                self._create_quota(self.spec)
                return Onset(at=(sent + time.time()) / 2, source="k8s-api:resourcequota-created",
                             uncertainty_s=(time.time() - sent) / 2)
            case KubeScaleDownSpec():
                self._scale(self.spec.replicas, annotate=True)
                return self._onset(sent, "evicted", "k8s-watch:pod-deleted")
            case KubePodKillSpec():
                killed: set[str] = set()
                for pod in self._kill_candidates()[: self.spec.max_targets]:
                    self.runtime.core.delete_namespaced_pod(pod.metadata.name, self.pods_namespace,
                                                            grace_period_seconds=self.spec.grace_period_s)
                    killed.add(f"pod/{self.pods_namespace}/{pod.metadata.name}")
                if not killed:
                    where = f" on nodes {self.spec.on_nodes}" if self.spec.on_nodes else ""
                    raise FaultError(f"fault {self.name!r}: no pod matched {self.selector}{where} in namespace "
                                     f"{self.pods_namespace} when it was applied")
                # Its own pods' deletion: another kill's, seen by the same watch, is not this onset.
                return self._onset(sent, "evicted", "k8s-watch:pod-deleted", killed)

    def _onset(self, sent: float, link: str, source: str, objects: set[str] | None = None) -> Onset:
        assert self.watch is not None
        seen = self.watch.wait_for(link, ONSET_WAIT_S, objects)
        if seen is None:
            raise FaultError(f"fault {self.name!r}: applied, but no watch event showed {link} within "
                             f"{ONSET_WAIT_S:g} s")
        return Onset(at=(sent + seen.seen_at) / 2, source=source, uncertainty_s=max(0.0, (seen.seen_at - sent) / 2))

    def _cordon(self, node: str) -> None:
        """The node takes no new pod (``spec.unschedulable``; the scheduler filters it out), its
        running pods stay; the annotation names the fault for ``drill stack status``."""
        self.runtime.core.patch_node(node, {"spec": {"unschedulable": True},
                                            "metadata": {"annotations": {CORDON_ANNOTATION: self.name}}})

    def _drain(self, node: str) -> None:
        from kubernetes import client

        core = self.runtime.core
        self._cordon(node)
        # Only the stack's own pods: drill's Role grants eviction in its namespace alone (least
        # privilege); the cordon keeps every new pod off the node whatever its namespace.
        pods: list[V1Pod] = core.list_namespaced_pod(self.namespace, field_selector=f"spec.nodeName={node}").items
        for pod in pods:
            owners = pod.metadata.owner_references or []
            if any(o.kind == "DaemonSet" for o in owners):
                continue
            body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name,
                                                                  namespace=pod.metadata.namespace))
            try:
                core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body)
            except Exception as exc:
                if _status(exc) == 429:  # a PodDisruptionBudget refuses: the drain is blocked, as designed
                    if self.watch is not None:
                        self.watch.link("eviction_refused", f"pod/{pod.metadata.namespace}/{pod.metadata.name}",
                                        node=node, detail="PodDisruptionBudget")
                    continue
                if _status(exc) != 404:
                    raise

    def _create_quota(self, spec: KubeQuotaDenialSpec) -> None:
        from kubernetes import client

        body = client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name=self.quota, labels={QUOTA_LABEL: _dns_name(self.name)}),
            spec=client.V1ResourceQuotaSpec(hard={f"requests.{spec.resource}": str(spec.limit)}),
        )
        self.runtime.core.create_namespaced_resource_quota(spec.namespace, body)
        # The quota admission refuses pods only once the quota controller has computed its status.
        _wait(f"the quota controller to compute {spec.namespace}/{self.quota}",
              lambda: bool(self.runtime.core.read_namespaced_resource_quota(
                  self.quota, spec.namespace).status.hard), ONSET_WAIT_S)

    def _scale(self, replicas: int, annotate: bool) -> None:
        apps = self.runtime.apps
        apps.patch_namespaced_deployment(self.deployment, self.namespace, {"metadata": {"annotations": {
            SCALED_ANNOTATION: str(self.replicas_before) if annotate else None}}})
        apps.patch_namespaced_deployment_scale(self.deployment, self.namespace, {"spec": {"replicas": replicas}})

    def revert(self) -> float:
        """Undo through the same record ``drill recover`` uses; the last of the runtime's faults
        to go then waits (bounded) until every service has its replicas ready again, so the
        rollback's check sees the repaired stack (a ReplicaSet refused by a quota retries with
        its own backoff). The chain watch runs until then, so the repair is on record."""
        reverted_at = time.time()
        try:
            if self.applied and not self.reverted:
                undo_kube(self.undo(), self.runtime.api_client)
                reverted_at = time.time()
                self.reverted = True
                self.runtime.applied_faults.discard(self.name)
                if not self.runtime.applied_faults:
                    with contextlib.suppress(FaultError):
                        _wait("every service ready again", lambda: not self.runtime.not_running(), REVERT_WAIT_S)
        finally:
            if self.watch is not None:
                self.watch.stop()
        return reverted_at

    def verify(self) -> list[str]:
        """What of this fault is still on the cluster, read back (empty when clean)."""
        if not self.applied:
            return []
        return [f"{self.name}: {line}" for line in left_on_cluster(self.undo(), self.runtime.api_client)]


def kube_fault(spec: KubeApiFaultSpec, runtime: KubernetesRuntime, journal: Journal | None) -> KubeFault:
    return KubeFault(spec, runtime, journal)


def _node_not_ready(runtime: KubernetesRuntime, node: str, fault: str) -> None:
    """kwok stops playing the node's kubelet, then the node reports Ready=False as a kubelet that
    lost its GPU would; the node lifecycle controller takes it from there."""
    core = runtime.core
    core.patch_node(node, {"metadata": {"annotations": {KWOK_ANNOTATION: None, LOST_ANNOTATION: fault}}})
    now = _now_iso()
    core.patch_node_status(node, {"status": {"conditions": [{
        "type": "Ready", "status": "False", "reason": "DrillGpuNodeLost", "message": f"drill fault {fault}",
        "lastHeartbeatTime": now, "lastTransitionTime": now}]}})


# --- undo (also from `drill recover`) ----------------------------------------------------------


def _clients(undo: KubeUndo, api: ApiClient | None) -> tuple[Any, Any]:
    from kubernetes import client

    api = api or KubeCluster(undo.kubeconfig, undo.context).api()
    return client.CoreV1Api(api), client.AppsV1Api(api)


def undo_kube(undo: KubeUndo, api: ApiClient | None = None) -> None:
    """Revert a Kubernetes fault from its undo record alone (idempotent), and wait (bounded)
    until the cluster shows it reverted."""
    core, apps = _clients(undo, api)
    match undo:
        case KubeNodeUndo():
            for node in undo.nodes:
                annotations: dict[str, str | None] = {LOST_ANNOTATION: None, CORDON_ANNOTATION: None}
                patch: dict[str, Any] = {"metadata": {"annotations": annotations}}
                if undo.mode == "not_ready":
                    annotations[KWOK_ANNOTATION] = "fake"  # kwok plays its kubelet again: Ready
                if node in undo.cordoned:
                    patch["spec"] = {"unschedulable": False}
                try:
                    core.patch_node(node, patch)
                except Exception as exc:
                    if _status(exc) != 404:
                        raise
            _wait("the nodes Ready and schedulable again",
                  lambda: not [line for line in left_on_cluster(undo, core.api_client) if "node" in line],
                  REVERT_WAIT_S)
        case KubeQuotaUndo():
            try:
                core.delete_namespaced_resource_quota(undo.name, undo.namespace)
            except Exception as exc:
                if _status(exc) != 404:
                    raise
        case KubeScaleUndo():
            try:
                apps.patch_namespaced_deployment_scale(undo.deployment, undo.namespace,
                                                       {"spec": {"replicas": undo.replicas_before}})
                apps.patch_namespaced_deployment(undo.deployment, undo.namespace,
                                                 {"metadata": {"annotations": {SCALED_ANNOTATION: None}}})
            except Exception as exc:
                if _status(exc) != 404:
                    raise
        case KubePodsDeletedUndo():
            pass  # nothing to undo: the owner replaces the pods (the chain watch times it)


def left_on_cluster(undo: KubeUndo, api: ApiClient | None = None) -> list[str]:
    """What the fault of ``undo`` still shows on the cluster (empty when reverted)."""
    core, apps = _clients(undo, api)
    left: list[str] = []
    match undo:
        case KubeNodeUndo():
            for name in undo.nodes:
                try:
                    node = core.read_node(name)
                except Exception as exc:
                    if _status(exc) == 404:
                        continue
                    raise
                annotations = node.metadata.annotations or {}
                if undo.mode == "not_ready" and annotations.get(KWOK_ANNOTATION) != "fake":
                    left.append(f"node {name} not handed back to kwok")
                if not node_ready(node):
                    left.append(f"node {name} not Ready")
                if name in undo.cordoned and node.spec.unschedulable:
                    left.append(f"node {name} still cordoned")
                elif name in undo.cordoned and any(t.key == UNSCHEDULABLE_TAINT for t in node.spec.taints or []):
                    # uncordoned; the node lifecycle controller has yet to take its NoSchedule taint off
                    left.append(f"node {name} still tainted {UNSCHEDULABLE_TAINT}")
                left += [f"node {name} annotation {k}" for k in (LOST_ANNOTATION, CORDON_ANNOTATION)
                         if k in annotations]
        case KubeQuotaUndo():
            try:
                core.read_namespaced_resource_quota(undo.name, undo.namespace)
                left.append(f"resourcequota {undo.namespace}/{undo.name} still there")
            except Exception as exc:
                if _status(exc) != 404:
                    raise
        case KubeScaleUndo():
            try:
                scale = apps.read_namespaced_deployment_scale(undo.deployment, undo.namespace)
            except Exception as exc:
                if _status(exc) == 404:
                    return left
                raise
            if int(scale.spec.replicas or 0) != undo.replicas_before:
                left.append(f"deployment {undo.namespace}/{undo.deployment} at {scale.spec.replicas} replicas, "
                            f"not {undo.replicas_before}")
        case KubePodsDeletedUndo():
            pass
    return left


def cluster_faults(runtime: KubernetesRuntime) -> list[tuple[str, str, str, KubeUndo]]:
    """Faults drill's marks show on the cluster, no journal needed: (kind, target, detail, undo)
    for ``drill stack status`` and the stray scan."""
    where = {"kubeconfig": runtime.cluster.kubeconfig, "context": runtime.cluster.context}
    found: list[tuple[str, str, str, KubeUndo]] = []
    for node in runtime.core.list_node().items:
        name = str(node.metadata.name)
        annotations = node.metadata.annotations or {}
        if LOST_ANNOTATION in annotations:
            found.append(("k8s_node", f"node:{name}", f"lost by drill fault {annotations[LOST_ANNOTATION]}",
                          KubeNodeUndo(**where, nodes=[name], mode="not_ready")))
        if CORDON_ANNOTATION in annotations:
            found.append(("k8s_node", f"node:{name}", f"cordoned by drill fault {annotations[CORDON_ANNOTATION]}",
                          KubeNodeUndo(**where, nodes=[name], mode="drain",
                                       cordoned=[name] if node.spec.unschedulable else [])))
    for quota in _drill_quotas(runtime):
        ns, name = str(quota.metadata.namespace), str(quota.metadata.name)
        found.append(("k8s_quota", f"resourcequota:{ns}/{name}", f"quota {dict(quota.spec.hard or {})}",
                      KubeQuotaUndo(**where, namespace=ns, name=name)))
    for dep in runtime.apps.list_namespaced_deployment(runtime.namespace).items:
        before = (dep.metadata.annotations or {}).get(SCALED_ANNOTATION)
        if before is not None and before.isdigit():
            found.append(("k8s_scale", f"deployment:{runtime.namespace}/{dep.metadata.name}",
                          f"scaled down by drill from {before} to {dep.spec.replicas}",
                          KubeScaleUndo(**where, namespace=runtime.namespace, deployment=str(dep.metadata.name),
                                        replicas_before=int(before))))
    return found


def _drill_quotas(runtime: KubernetesRuntime) -> list[Any]:
    """drill's ResourceQuotas in every namespace the identity may list them in (a region's quota
    sits in the region's namespace, not always the stack's); the stack's namespace alone when
    listing across namespaces is refused (the least-privilege Role of deploy/k8s/rbac.yaml)."""
    try:
        found: list[Any] = runtime.core.list_resource_quota_for_all_namespaces(label_selector=QUOTA_LABEL).items
        return found
    except Exception as exc:
        if _status(exc) != 403:
            raise
    own: list[Any] = runtime.core.list_namespaced_resource_quota(runtime.namespace, label_selector=QUOTA_LABEL).items
    return own
