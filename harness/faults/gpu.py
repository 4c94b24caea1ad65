"""The ``gpu_node_loss`` fault: a GPU node dies, falls off the bus, or hangs.

Modes:

- ``kill``: the node's container (compose runtime) or process (local runtime) is killed with
  SIGKILL, and started again at revert. This reuses ``endpoint_kill``'s machinery, so its undo
  record has kind ``container`` or ``process``.
- ``xid``: through the node's own fault hook (``POST /fault {"mode": "xid"}``) completions and
  health answer 500 with an XID-style error while the process stays up; revert is
  ``DELETE /fault``. Undo kind ``gpu_hook``.
- ``hang``: the same hook with ``{"mode": "hang"}``: requests and health stall until revert.

Targets are chosen by ``service`` and/or ``labels`` (e.g. ``drill.gpu: "true"``,
``drill.region: region-a``; the local reference stack carries the same label keys), then cut to
``count`` nodes or ``percent`` of the matches (rounded up), first by name. When the scenario
samples the pool (``capacity.pool_url``), only nodes serving in the pool (healthy members) match. Everything is resolved
when the fault is built — before any fault is applied — and a selection of no node, or of more
than ``max_targets`` (default: the number selected when ``count``/``percent`` is given, else 1),
is refused with ScenarioError (exit 2).

The hook is called on the node's published 127.0.0.1 port, never through a proxy: the local
process spec's ``port``, or the container's published port on compose. The hook contract is in
docs/hooks.md.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import httpx

from harness.errors import FaultError, ScenarioError
from harness.faults.base import Fault, FaultContext, FaultDescription, Onset
from harness.faults.process import ProcessFault
from harness.rundir.undo import GpuHookUndo
from harness.runtime.base import Runtime, Target
from harness.runtime.kinds import is_compose, is_local
from harness.scenario.fault_specs import GpuNodeLossSpec, ParamValue

if TYPE_CHECKING:  # the docker SDK is only loaded for compose stacks
    from harness.faults.container import ContainerFault
HOOK_MODES = ("xid", "hang")
HOOK_TIMEOUT_S = 5.0
LOOPBACK = ("127.0.0.1", "localhost")


def select(names: list[str], count: int | None, percent: float | None) -> list[str]:
    """The first ``count`` names (sorted), or ``percent`` of them rounded up; all without either."""
    ordered = sorted(names)
    if count is not None:
        return ordered[:count]
    if percent is not None:
        return ordered[: max(1, math.ceil(len(ordered) * percent / 100.0))] if ordered else []
    return ordered


def _check_selection(name: str, selector: str, matched: list[str], chosen: list[str], max_targets: int) -> None:
    if not chosen:
        raise ScenarioError(
            f"fault {name!r}: target {selector} matches no GPU node; is the stack up, and do its "
            "nodes carry these labels (drill.gpu, drill.region)?"
        )
    if len(chosen) > max_targets:
        raise ScenarioError(
            f"fault {name!r}: target {selector} selects {len(chosen)} nodes ({', '.join(chosen)}; "
            f"matched {len(matched)}) but max_targets is {max_targets}; narrow the selector, "
            "lower count/percent or raise max_targets"
        )


def _selector_text(spec: GpuNodeLossSpec) -> str:
    parts = [f"service={spec.target.service}"] if spec.target.service else []
    parts += [f"{k}={v}" for k, v in sorted(spec.target.labels.items())]
    return "(" + (" ".join(parts) or "everything") + ")"


class HookFault:
    """``xid`` / ``hang`` through each node's model-server fault hook (see module docstring)."""

    type = "gpu_node_loss"

    def __init__(self, name: str, mode: str, nodes: dict[str, str], params: dict[str, Any]) -> None:
        self.name = name
        self.mode = mode
        self.nodes = dict(nodes)  # node name -> hook URL (http://127.0.0.1:PORT/fault)
        self.params = dict(params)
        self._applied = False

    def describe(self) -> FaultDescription:
        return {
            "targets": sorted(self.nodes),
            "params": self.params,
            "undo": GpuHookUndo(hooks=[self.nodes[n] for n in sorted(self.nodes)], mode=self.mode),
        }

    def apply(self) -> Onset:
        # The client is built before the bracket opens: building one loads the TLS trust store
        # (20-50 ms here), which would widen the stated onset uncertainty for nothing.
        with httpx.Client(timeout=HOOK_TIMEOUT_S, trust_env=False) as client:
            before = time.time()
            for node in sorted(self.nodes):
                url = self.nodes[node]
                self._applied = True  # a partial apply must be reverted too
                try:
                    reply = client.post(url, json={"mode": self.mode})
                except httpx.HTTPError as exc:
                    raise FaultError(f"fault {self.name}: hook {url} unreachable: {exc}", target=node) from exc
                if reply.status_code >= 300:
                    raise FaultError(
                        f"fault {self.name}: hook {url} refused mode {self.mode!r}: HTTP {reply.status_code} "
                        f"{reply.text[:200]}",
                        target=node,
                    )
            after = time.time()
        # The hook answers once the fault is in force: the true onset lies inside the bracket.
        return Onset(at=(before + after) / 2, source="hook-response", uncertainty_s=(after - before) / 2)

    def revert(self) -> float:
        if not self._applied:
            return time.time()
        _delete_hooks(list(self.nodes.values()))
        return time.time()

    def verify(self) -> list[str]:
        """After revert: every node's hook must report no fault (``mode`` null)."""
        problems: list[str] = []
        with httpx.Client(timeout=HOOK_TIMEOUT_S, trust_env=False) as client:
            for node, url in sorted(self.nodes.items()):
                try:
                    mode = client.get(url).json().get("mode")
                except (httpx.HTTPError, ValueError, AttributeError) as exc:
                    problems.append(f"{node}: cannot check its fault hook {url}: {exc}")
                    continue
                if mode is not None:
                    problems.append(f"{node}: fault hook still in mode {mode!r}")
        return problems


class KillFault:
    """``kill`` mode: wraps endpoint_kill's container or process fault, typed ``gpu_node_loss``."""

    type = "gpu_node_loss"

    def __init__(self, name: str, inner: ProcessFault | ContainerFault, params: dict[str, Any]) -> None:
        self.name = name
        self.inner = inner
        self.params = dict(params)

    def describe(self) -> FaultDescription:
        described = self.inner.describe()
        return {**described, "params": {**described["params"], **self.params}}

    def apply(self) -> Onset:
        return self.inner.apply()

    def revert(self) -> float:
        return self.inner.revert()

    def verify(self) -> list[str]:
        return self.inner.verify()


def _delete_hooks(urls: list[str]) -> None:
    problems: list[str] = []
    with httpx.Client(timeout=HOOK_TIMEOUT_S, trust_env=False) as client:
        for url in urls:
            try:
                reply = client.delete(url)
                if reply.status_code >= 300:
                    problems.append(f"{url}: HTTP {reply.status_code}")
            except httpx.HTTPError as exc:
                problems.append(f"{url}: {exc}")
    if problems:
        raise FaultError("could not clear GPU fault hooks: " + "; ".join(problems))


def gpu_fault(spec: GpuNodeLossSpec, ctx: FaultContext) -> Fault:
    """Build (not apply) a ``gpu_node_loss`` fault; targets are resolved and checked here (the
    spec model has checked mode, count/percent and the selector)."""
    mode, count, percent = spec.mode, spec.count, spec.percent
    runtime = ctx.runtime
    if runtime is None or not (is_local(runtime) or is_compose(runtime)):
        raise ScenarioError(
            f"fault {spec.name!r}: gpu_node_loss needs a stack the harness manages "
            "(stack.runtime: compose, or local with stack.file)"
        )
    nodes = _serving(_nodes(runtime, spec), ctx.extra.get("pool_url"))
    matched = sorted(nodes)
    chosen = select(matched, count, percent)
    default_max = len(chosen) if (count is not None or percent is not None) else 1
    max_targets = spec.max_targets if spec.max_targets is not None else default_max
    _check_selection(spec.name, _selector_text(spec), matched, chosen, max_targets)
    shown: dict[str, ParamValue | list[str]] = {"mode": mode, "matched": matched, "max_targets": max_targets}
    if count is not None:
        shown["count"] = count
    if percent is not None:
        shown["percent"] = percent
    if mode in HOOK_MODES:
        hooks = {n: _hook(nodes[n]) for n in chosen}
        missing = [n for n, hook in hooks.items() if hook is None]
        if missing:
            raise ScenarioError(
                f"fault {spec.name!r}: mode {mode} needs each node's fault hook on a 127.0.0.1 port, "
                f"but {', '.join(missing)} publish none; publish the hook port (127.0.0.1:PORT:PORT)"
            )
        return HookFault(spec.name, mode, {n: hook for n, hook in hooks.items() if hook is not None}, shown)
    return KillFault(spec.name, _kill_fault(spec.name, runtime, [nodes[n] for n in sorted(chosen)]), shown)


def _hook(node: Target) -> str | None:
    """The node's fault hook: ``/fault`` on its HTTP address on 127.0.0.1."""
    return f"{node.address}/fault" if node.address else None


def _serving(nodes: dict[str, Target], pool_url: str | None) -> dict[str, Target]:
    """With a pool to ask (the scenario's ``capacity.pool_url``), keep the nodes that are in the
    pool and healthy: losing a standby node rehearses nothing, and after an earlier drill the
    serving nodes may not be the ones the stack started with."""
    if not pool_url:
        return nodes
    try:
        pool = httpx.get(pool_url, timeout=HOOK_TIMEOUT_S, trust_env=False).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ScenarioError(f"cannot read the GPU pool at {pool_url} to choose serving nodes: {exc}") from None
    serving = {n.get("name") for n in pool.get("nodes", []) if n.get("healthy")}
    return {name: info for name, info in nodes.items() if name in serving}


def _kill_fault(name: str, runtime: Runtime, chosen: list[Target]) -> ProcessFault | ContainerFault:
    if is_local(runtime):
        return ProcessFault(name, "kill", [t.name for t in chosen], runtime)
    assert is_compose(runtime)  # gpu_fault refused every other runtime
    # Imported here: the docker SDK is only loaded for compose stacks.
    from harness.faults.container import ContainerFault

    fault = ContainerFault(name, "kill", "", {"drill.gpu": "true"}, max(1, len(chosen)), runtime.project,
                           runtime.client)
    # The selection (count/percent) is ours; hand the container fault its resolved targets.
    by_id = {c.id: c for c in runtime.containers()}
    fault._targets = [by_id[t.uid] for t in chosen if t.uid in by_id]
    return fault


def _nodes(runtime: Runtime, spec: GpuNodeLossSpec) -> dict[str, Target]:
    """The members the selector matches, by node name: a local process by its name, a compose
    container by its service (only running ones: a stopped container cannot be lost again)."""
    found = runtime.find(spec.target.service or None, spec.target.labels)
    if is_compose(runtime):
        return {t.service: t for t in found if t.running}
    return {t.name: t for t in found}


def undo_gpu(undo: GpuHookUndo) -> None:
    """Revert a journaled hook-mode ``gpu_node_loss`` (``drill recover``): DELETE every hook."""
    _delete_hooks(list(undo.hooks))


__all__ = ["HookFault", "KillFault", "gpu_fault", "select", "undo_gpu"]
