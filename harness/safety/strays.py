"""Stray faults: faults applied to a stack right now that no run's ledger knows about.

``drill recover`` reverts what a journal says is applied; this module looks at the stack itself,
so it also finds what a lost journal, a hand-made toxic or another tool left behind:

    kind            found by                                       removed by (``remove_stray``)
    toxic           a toxic named ``drill-...`` on any proxy        DELETE the toxic (then /reset)
    proxy_disabled  a disabled Toxiproxy proxy                     re-enable it (then /reset)
    container       a paused / exited / dead container of the      unpause / start it, wait ready
                    compose project
    process_paused  a SIGSTOPped process of a local stack          SIGCONT its process group
    gpu_hook        a model server whose ``GET /fault`` has a mode DELETE /fault
    quota_hook      a cloud-api denial in ``GET /fault``           DELETE /fault {mode, region, ...}
    http_fault      a fault named ``drill-...`` on the HTTP fault   DELETE /__drill/faults/<id>
                    proxy (``GET /__drill/faults``)

Each stray is a dict ``{"kind", "target", "detail", "undo"}``: ``target`` and ``detail`` are for
people, ``undo`` is what :func:`remove_stray` needs, in the shape of the journal's ``undo``
records of the same kind (so ``harness.faults.undo_fault`` could revert it too).

The HTTP fault proxy asked is the one passed (a scenario's ``http_fault_proxy.url``) or the
runtime's own (``Runtime.http_fault_proxy_url``); :func:`http_faults` lists every fault on it,
drill-made or not, for ``drill stack status --json``.

Members come from the :class:`~harness.runtime.base.Runtime` (``members()``): a container not
running, a process paused. Hook URLs come from the stack too: every HTTP endpoint a local stack
declares or a running container of a compose project publishes (Toxiproxy's aside) is asked
``GET /fault``; an endpoint without that route has no hook. Pass
``hooks`` for hook URLs the stack does not publish (e.g. a scenario's ``target.hook``).

Only loopback addresses are ever contacted: the stack's published ports are bound to 127.0.0.1.
A part that does not answer (Toxiproxy down, a service stopped) is not a fault by itself; it is
listed in :attr:`Scan.unchecked` so a caller can say the picture is incomplete.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import assert_never
from urllib.parse import urlparse

import httpx
from pydantic import JsonValue

from harness.errors import DrillError, FaultError
from harness.faults.http import undo_http
from harness.faults.network import disabled_proxies, stray_toxics, undo_network
from harness.httpfaults.client import ActiveHttpFault, HttpFaultClient
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
from harness.runtime.base import Runtime
from harness.runtime.kinds import is_compose, is_kubernetes
from harness.toxiproxy import ToxiproxyClient

__all__ = ["Scan", "scan", "active_faults", "hook_urls", "http_faults", "remove_stray", "recover_strays"]

HOOK_TIMEOUT_S = 2.0
STRAY_KINDS = ("toxic", "proxy_disabled", "container", "process_paused", "gpu_hook", "quota_hook", "http_fault")
DRILL_PREFIX = "drill-"  # what drill names its faults (toxics, HTTP faults); others are not drill's to remove
HTTP_FAULT_PROXY_MEMBER = "http-fault-proxy"  # its member/service name on every runtime


@dataclass(frozen=True)
class Stray:
    """One fault found applied on the stack: its ``kind``, ``target`` and ``detail`` (for people)
    and the undo record that removes it (the shape the journal keeps for a fault of that kind)."""

    kind: str
    target: str
    detail: str
    undo: Undo

    def document(self) -> dict[str, JsonValue]:
        """As ``drill stack status --json`` lists it under ``active_faults``."""
        return {"kind": self.kind, "target": self.target, "detail": self.detail, "undo": self.undo.document()}


@dataclass
class Scan:
    """What :func:`scan` found: the stray ``faults`` and the parts it could not ask (``unchecked``,
    one human-readable line each)."""

    faults: list[Stray] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def active_faults(
    toxiproxy_url: str | None, runtime: Runtime | None, hooks: Sequence[str] = (),
    http_fault_proxy_url: str | None = None,
) -> list[Stray]:
    """Every fault applied right now on the stack, each ``{kind, target, detail, undo}``; ``[]``
    when clean. ``toxiproxy_url`` and ``http_fault_proxy_url`` default to the runtime's own. See
    :func:`scan` for what could not be checked."""
    return scan(toxiproxy_url, runtime, hooks, http_fault_proxy_url).faults


def scan(
    toxiproxy_url: str | None, runtime: Runtime | None, hooks: Sequence[str] = (),
    http_fault_proxy_url: str | None = None,
) -> Scan:
    """Look at Toxiproxy, the HTTP fault proxy, the runtime's containers or processes, and every
    fault hook."""
    result = Scan()
    url = toxiproxy_url or (runtime.toxiproxy_url if runtime is not None else None)
    if url:
        _scan_toxiproxy(url, result)
    http_url = http_fault_proxy_url or (runtime.http_fault_proxy_url if runtime is not None else None)
    if http_url:
        _scan_http_fault_proxy(http_url, result)
    if runtime is not None:
        _scan_members(runtime, result)
    for hook in _unique([*hook_urls(runtime), *(_fault_url(h) for h in hooks)]):
        _scan_hook(hook, result)
    return result


# --- Toxiproxy ---------------------------------------------------------------------------------


def _scan_toxiproxy(url: str, result: Scan) -> None:
    try:
        with ToxiproxyClient(url) as client:
            toxics = stray_toxics(client)
            disabled = disabled_proxies(client)
    except DrillError as exc:
        result.unchecked.append(f"toxiproxy at {url}: {exc}")
        return
    for proxy_name, toxic in toxics:
        attributes = ", ".join(f"{k}={v}" for k, v in sorted(toxic.attributes.items()))
        result.faults.append(Stray(
            kind="toxic",
            target=f"toxiproxy:{proxy_name}",
            detail=f"toxic {toxic.name} ({toxic.type} {toxic.stream}{', ' + attributes if attributes else ''})",
            undo=ToxicUndo(toxiproxy_url=url, proxy=proxy_name, toxic=toxic.name),
        ))
    for proxy in disabled:
        result.faults.append(Stray(
            kind="proxy_disabled",
            target=f"toxiproxy:{proxy.name}",
            detail=f"proxy {proxy.name} is disabled (listen {proxy.listen}, upstream {proxy.upstream})",
            undo=ProxyDisabledUndo(toxiproxy_url=url, proxy=proxy.name),
        ))


# --- the HTTP fault proxy ----------------------------------------------------------------------


def http_faults(url: str) -> list[ActiveHttpFault]:
    """Every fault active on the HTTP fault proxy at ``url`` (drill's or not), with its hits.
    Raises HttpFaultProxyError (a FaultError) when the proxy does not answer."""
    with HttpFaultClient(url, timeout_s=HOOK_TIMEOUT_S) as client:
        return client.faults()


def _scan_http_fault_proxy(url: str, result: Scan) -> None:
    try:
        found = http_faults(url)
    except DrillError as exc:
        result.unchecked.append(f"HTTP fault proxy at {url}: {exc}")
        return
    for fault in found:
        if not fault.id.startswith(DRILL_PREFIX):
            continue  # someone's own fault (e.g. made by hand with curl): theirs to remove
        params = ", ".join(f"{k}={v}" for k, v in sorted(fault.params.items()))
        result.faults.append(Stray(
            kind="http_fault",
            target=f"http-route:{fault.proxy}",
            detail=f"{fault.type} {fault.id}{' (' + params + ')' if params else ''}, {fault.hits} hits",
            undo=HttpFaultUndo(proxy_url=url, fault_id=fault.id),
        ))


# --- containers and processes ------------------------------------------------------------------


def _scan_members(runtime: Runtime, result: Scan) -> None:
    """A container that is not running (a drill stops or pauses them; the stack runs them all),
    a process that is paused (a process that exited is the local stack's own failure)."""
    try:
        members = runtime.members()
    except Exception as exc:  # the engine went away or refuses: say so, do not crash a status
        where = f"containers of compose project {runtime.project}" if is_compose(runtime) else "local stack processes"
        result.unchecked.append(f"{where}: {exc}")
        return
    if is_kubernetes(runtime):
        from harness.faults.kubernetes import cluster_faults  # the kubernetes client, for cluster stacks only

        result.faults += [Stray(kind=kind, target=target, detail=detail, undo=undo)
                          for kind, target, detail, undo in cluster_faults(runtime)]
    for member in members:
        if member.kind == "container" and not member.running:
            result.faults.append(Stray(
                kind="container",
                target=f"container:{member.name}",
                detail=f"service {member.service} is {member.state}",
                undo=ContainerUndo(container_ids=[member.uid], container_names=[member.name]),
            ))
        elif member.kind == "process" and member.state == "paused" and member.pid:
            result.faults.append(Stray(
                kind="process_paused",
                target=f"process:{member.name}",
                detail=f"process {member.name} (pid {member.pid}) is stopped (SIGSTOP)",
                undo=ProcessPausedUndo(pgid=member.pid, name=member.name),
            ))


# --- fault hooks -------------------------------------------------------------------------------


def hook_urls(runtime: Runtime | None) -> list[str]:
    """``http://127.0.0.1:PORT/fault`` of every HTTP endpoint of the stack that may have a hook:
    the declared ports of a local stack's running processes, the published ports of a compose
    project's running containers. Toxiproxy is left out (its API has no ``/fault``), and so is the
    HTTP fault proxy (it would forward ``/fault`` to its provider's hook, listed already); so are
    paused or stopped members, which cannot answer (they are strays of their own)."""
    if runtime is None:
        return []
    urls: list[str] = []
    if is_compose(runtime):
        # Every port a container publishes may be its hook's, not only the first (Target.address).
        try:
            containers = runtime.containers()
        except Exception:  # reported by _scan_members already
            return []
        for container in containers:
            # Toxiproxy has no hook; the HTTP fault proxy would forward /fault to its upstream's.
            if container.status != "running" or runtime.target(container).service in ("toxiproxy",
                                                                                        HTTP_FAULT_PROXY_MEMBER):
                continue
            for bindings in (container.ports or {}).values():
                for binding in bindings or []:
                    urls.append(f"http://127.0.0.1:{binding['HostPort']}/fault")
        return sorted(set(urls))
    try:
        members = runtime.members()
    except Exception:  # reported by _scan_members already
        return []
    # A stopped or paused process cannot answer; its state is reported by _scan_members.
    urls = [f"{m.address.rstrip('/')}/fault" for m in members
            if m.name not in ("toxiproxy", HTTP_FAULT_PROXY_MEMBER) and m.running and m.address is not None]
    return sorted(set(urls))


def _fault_url(hook: str) -> str:
    """A hook as its ``.../fault`` URL: a base URL gets ``/fault`` appended."""
    parsed = urlparse(hook)
    return hook if parsed.path.rstrip("/").endswith("/fault") else hook.rstrip("/") + "/fault"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _scan_hook(url: str, result: Scan) -> None:
    host = urlparse(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        result.unchecked.append(f"{url}: not a loopback address; drill only asks hooks on 127.0.0.1")
        return
    try:
        response = httpx.get(url, timeout=HOOK_TIMEOUT_S)
    except httpx.HTTPError as exc:
        result.unchecked.append(f"{url}: {type(exc).__name__}: {exc}")
        return
    if response.status_code in (404, 405):
        return  # no fault hook on this service
    try:
        body = response.json()
    except ValueError:
        result.unchecked.append(f"{url}: HTTP {response.status_code}, not JSON")
        return
    if response.status_code >= 400 or not isinstance(body, dict):
        result.unchecked.append(f"{url}: HTTP {response.status_code}")
        return
    if "denials" in body:
        for denial in body.get("denials") or []:
            region = denial.get("region")
            instance_type = denial.get("instance_type")
            result.faults.append(Stray(
                kind="quota_hook",
                target=f"hook:{url} region {region}",
                detail=f"{denial.get('mode')} in {region}" + (f" for {instance_type}" if instance_type else ""),
                undo=QuotaHookUndo(hook=url, body=dict(denial)),
            ))
    elif body.get("mode"):
        remaining = body.get("remaining_s")
        status = f", status {body['status']}" if body.get("status") else ""
        until = f", {remaining:.0f}s left" if isinstance(remaining, (int, float)) else ", until removed"
        result.faults.append(Stray(
            kind="gpu_hook",
            target=f"hook:{url}",
            detail=f"node fault {body['mode']}{status}{until}",
            undo=GpuHookUndo(hooks=[url], mode=str(body["mode"])),
        ))


# --- removal -----------------------------------------------------------------------------------


def remove_stray(stray: Stray) -> str:
    """Remove one stray fault (idempotent); return what was done. Raises FaultError when it stays."""
    undo = stray.undo
    match undo:
        case ToxicUndo() | ProxyDisabledUndo():
            with ToxiproxyClient(undo.toxiproxy_url) as client:
                undo_network(undo, client)
            return "toxic removed" if isinstance(undo, ToxicUndo) else "proxy enabled"
        case ContainerUndo():
            # Imported here: the docker SDK is only loaded for compose stacks.
            from harness.faults.container import undo_container

            return "; ".join(undo_container(undo))
        case ProcessPausedUndo():
            try:
                os.killpg(undo.pgid, signal.SIGCONT)
            except ProcessLookupError:
                return "process already gone"
            return "process continued (SIGCONT)"
        case HttpFaultUndo():
            undo_http(undo)
            return "HTTP fault removed"
        case GpuHookUndo() | QuotaHookUndo():
            calls = [(url, None) for url in undo.hooks] if isinstance(undo, GpuHookUndo) else [(undo.hook, undo.body)]
            for url, body in calls:
                try:
                    response = httpx.request("DELETE", url, json=body, timeout=HOOK_TIMEOUT_S)
                except httpx.HTTPError as exc:
                    raise FaultError(f"DELETE {url} failed: {exc}", target=url) from exc
                if response.status_code >= 400:
                    raise FaultError(
                        f"DELETE {url} answered HTTP {response.status_code}: {response.text[:200]}", target=url
                    )
            return "hook fault cleared"
        case KubeNodeUndo() | KubeQuotaUndo() | KubeScaleUndo() | KubePodsDeletedUndo():
            from harness.faults.kubernetes import undo_kube  # the kubernetes client, for cluster stacks only

            undo_kube(undo)
            return f"{undo.kind} reverted"
        case ProxyCreatedUndo() | ProcessUndo() | UnknownUndo():
            raise FaultError(f"do not know how to remove a stray recorded as {stray.document()}")
        case _:
            assert_never(undo)


def recover_strays(
    toxiproxy_url: str | None, runtime: Runtime | None, hooks: Sequence[str] = (), force: bool = False,
    http_fault_proxy_url: str | None = None,
) -> Iterator[tuple[str, bool]]:
    """List faults applied on the stack that no ledger knows; with ``force``, remove them.

    Yields ``(message, ok)``: without ``force`` every stray is ``ok=False`` (something is applied;
    run with ``--force`` to remove it); with ``force`` ``ok`` says whether the removal worked, and a
    final re-scan reports anything still there. A clean stack yields one ``ok=True`` line. Parts
    that could not be asked are reported with ``ok=False``: clean cannot be claimed for them.
    """
    found = scan(toxiproxy_url, runtime, hooks, http_fault_proxy_url)
    for line in found.unchecked:
        yield f"could not check {line}", False
    if not found.faults:
        if not found.unchecked:
            yield "no stray faults on the stack", True
        return
    for stray in found.faults:
        what = f"stray {stray.kind} on {stray.target}: {stray.detail}"
        if not force:
            yield f"{what} (run `drill recover --force` to remove it)", False
            continue
        try:
            done = remove_stray(stray)
        except Exception as exc:  # each stray is tried; one failure must not stop the others
            yield f"{what}: NOT removed: {exc}", False
            continue
        yield f"{what}: {done}", True
    if force:
        left = scan(toxiproxy_url, runtime, hooks, http_fault_proxy_url).faults
        for stray in left:
            yield f"still applied after removal: {stray.kind} on {stray.target}: {stray.detail}", False
