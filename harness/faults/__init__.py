"""Fault families. ``build_fault`` turns a scenario's fault spec into a :class:`Fault`;
``undo_fault`` reverts one from its journaled ``undo`` record (crash recovery)."""

from __future__ import annotations

import json
import os
import signal
from typing import assert_never

from harness.errors import FaultError, ScenarioError
from harness.faults.base import Fault, FaultContext, Onset
from harness.faults.gpu import gpu_fault
from harness.faults.http import http_fault, undo_http
from harness.faults.network import network_fault
from harness.faults.process import process_fault
from harness.faults.quota import quota_fault
from harness.rundir.undo import (
    ContainerUndo,
    GpuHookUndo,
    HttpFaultUndo,
    KubeNodeUndo,
    KubePodsDeletedUndo,
    KubeQuotaUndo,
    KubeScaleUndo,
    ProcessPausedUndo,
    ProcessUndo,
    ProxyCreatedUndo,
    ProxyDisabledUndo,
    QuotaHookUndo,
    ToxicUndo,
    Undo,
    UnknownUndo,
)
from harness.runtime.kinds import is_compose, is_kubernetes, is_local
from harness.scenario.fault_specs import (
    BandwidthSpec,
    BlackholeSpec,
    DownSpec,
    EndpointKillSpec,
    FaultSpec,
    FirstTokenDelaySpec,
    GpuNodeLossSpec,
    HttpErrorSpec,
    JitterSpec,
    KubeNodeLossSpec,
    KubePodKillSpec,
    KubeQuotaDenialSpec,
    KubeScaleDownSpec,
    LatencySpec,
    MalformedSpec,
    NetworkFaultSpec,
    RegionQuotaDenialSpec,
    ResetSpec,
    StreamCutSpec,
    StreamStallSpec,
)

__all__ = ["Fault", "FaultContext", "Onset", "build_fault", "undo_fault"]


def build_fault(spec: FaultSpec, ctx: FaultContext) -> Fault:
    """Build (not apply) a fault: one builder per spec model. Selectors are resolved here so bad
    ones fail before any apply. A new family's model without a case here is a mypy error
    (``assert_never``)."""
    match spec:
        case LatencySpec() | JitterSpec() | BandwidthSpec() | BlackholeSpec() | ResetSpec() | DownSpec():
            return _network(spec, ctx)
        case EndpointKillSpec():
            return _endpoint_kill(spec, ctx)
        case GpuNodeLossSpec():
            return gpu_fault(spec, ctx)
        case RegionQuotaDenialSpec():
            return quota_fault(spec, ctx)
        case HttpErrorSpec() | FirstTokenDelaySpec() | StreamCutSpec() | StreamStallSpec() | MalformedSpec():
            if ctx.http_faults is None:
                raise ScenarioError(
                    f"fault {spec.name!r} ({spec.type}) needs the HTTP fault proxy: set "
                    "`http_fault_proxy: {url: ...}` in the scenario or use a stack that starts one"
                )
            return http_fault(spec, ctx.http_faults)
        case KubePodKillSpec() | KubeNodeLossSpec() | KubeQuotaDenialSpec() | KubeScaleDownSpec():
            if ctx.runtime is None or not is_kubernetes(ctx.runtime):
                raise ScenarioError(f"fault {spec.name!r} ({spec.type}) acts through the Kubernetes API: "
                                    "it needs stack.runtime: kubernetes")
            # Imported here: the kubernetes client is only loaded for cluster stacks.
            from harness.faults.kubernetes import kube_fault

            return kube_fault(spec, ctx.runtime, ctx.journal)
        case _:
            assert_never(spec)


def _network(spec: NetworkFaultSpec, ctx: FaultContext) -> Fault:
    if ctx.toxiproxy is None:
        raise ScenarioError(
            f"fault {spec.name!r} ({spec.type}) needs Toxiproxy: set `toxiproxy: {{url: ...}}` "
            "in the scenario or use a stack that starts one"
        )
    return network_fault(spec, ctx.toxiproxy)


def _endpoint_kill(spec: EndpointKillSpec, ctx: FaultContext) -> Fault:
    runtime = ctx.runtime
    if runtime is not None and is_local(runtime):
        return process_fault(
            spec.name, spec.mode, spec.target.service, spec.target.labels, spec.max_targets, runtime,
        )
    if runtime is not None and is_compose(runtime):
        # Imported here: the docker SDK is only loaded for compose stacks.
        from harness.faults.container import container_fault

        return container_fault(
            spec.name, spec.mode, spec.target.service or "", spec.target.labels, spec.max_targets,
            runtime.project, runtime.client,
        )
    raise ScenarioError(
        f"fault {spec.name!r}: endpoint_kill needs a stack the harness manages "
        "(stack.runtime: compose, or local with stack.file)"
    )


def undo_fault(undo: Undo) -> None:
    """Revert a fault from its journaled undo record alone (idempotent). A new record without a
    case here is a mypy error (``assert_never``)."""
    match undo:
        case ToxicUndo() | ProxyDisabledUndo():
            from harness.faults.network import undo_network
            from harness.toxiproxy import ToxiproxyClient

            with ToxiproxyClient(undo.toxiproxy_url) as client:
                undo_network(undo, client)
        case ProxyCreatedUndo():
            from harness.toxiproxy import ToxiproxyClient

            with ToxiproxyClient(undo.toxiproxy_url) as client:
                client.delete_proxy(undo.proxy, missing_ok=True)
        case ContainerUndo():
            from harness.faults.container import undo_container

            undo_container(undo, None)
        case ProcessUndo():
            from harness.faults.process import undo_process

            undo_process(undo)
        case ProcessPausedUndo():
            _continue_group(undo)
        case GpuHookUndo():
            from harness.faults.gpu import undo_gpu

            undo_gpu(undo)
        case QuotaHookUndo():
            from harness.faults.quota import undo_quota

            undo_quota(undo)
        case HttpFaultUndo():
            undo_http(undo)
        case KubeNodeUndo() | KubeQuotaUndo() | KubeScaleUndo() | KubePodsDeletedUndo():
            from harness.faults.kubernetes import undo_kube

            undo_kube(undo)
        case UnknownUndo():
            raise FaultError(f"do not know how to revert a fault recorded as {json.dumps(undo.document())}")
        case _:
            assert_never(undo)


def _continue_group(undo: ProcessPausedUndo) -> None:
    """A local process group left stopped (SIGSTOP): let it run again."""
    try:
        os.killpg(undo.pgid, signal.SIGCONT)
    except ProcessLookupError:
        pass
