"""The ``region_quota_denial`` fault: a region refuses to create GPU instances.

It acts through the control plane's fault hook, a small HTTP contract (docs/hooks.md) that users
implement in their own staging control plane or cloud-API proxy:

    POST   <hook> {"mode": "quota_exceeded" | "insufficient_capacity", "region", "instance_type"?}
    DELETE <hook> {"mode", "region", "instance_type"?}     (removes exactly that denial)

Both are idempotent and answer 2xx. Onset is the POST's response bracket (source
``hook-response``). The undo record (kind ``quota_hook``) holds the hook URL and the body, so
``drill recover`` can lift a denial a crashed run left behind.

The hook must be on 127.0.0.1 (or localhost): drills never call other addresses (the spec model,
harness/scenario/fault_specs.py, refuses any other).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from harness.errors import FaultError
from harness.faults.base import Fault, FaultContext, FaultDescription, Onset
from harness.rundir.undo import QuotaHookUndo
from harness.scenario.fault_specs import RegionQuotaDenialSpec

HOOK_TIMEOUT_S = 5.0


class QuotaFault:
    """Adds one denial through the hook on apply, removes exactly it on revert (idempotent)."""

    type = "region_quota_denial"

    def __init__(self, name: str, hook: str, body: dict[str, Any]) -> None:
        self.name = name
        self.hook = hook
        self.body = dict(body)
        self._applied = False

    def describe(self) -> FaultDescription:
        target = f"{self.body['region']}" + (f"/{self.body['instance_type']}" if "instance_type" in self.body else "")
        return {
            "targets": [f"hook:{self.hook} {target}"],
            "params": dict(self.body),
            "undo": QuotaHookUndo(hook=self.hook, body=dict(self.body)),
        }

    def apply(self) -> Onset:
        # The client is built before the bracket opens: building one loads the TLS trust store
        # (20-50 ms here), which would widen the stated onset uncertainty for nothing.
        with httpx.Client(timeout=HOOK_TIMEOUT_S, trust_env=False) as client:
            before = time.time()
            self._applied = True  # a POST that timed out may still have taken effect: revert it too
            _call(self.name, "POST", self.hook, self.body, client)
            after = time.time()
        return Onset(at=(before + after) / 2, source="hook-response", uncertainty_s=(after - before) / 2)

    def revert(self) -> float:
        if self._applied:
            _call(self.name, "DELETE", self.hook, self.body)
        return time.time()

    def verify(self) -> list[str]:
        """After revert: the control plane must no longer deny what this fault denied."""
        try:
            denials = active_denials(self.hook)
        except (httpx.HTTPError, ValueError) as exc:
            return [f"{self.hook}: cannot check denials: {exc}"]
        return [
            f"{self.hook}: {d.get('mode')} still active for {d.get('region')}"
            for d in denials
            if d.get("region") == self.body["region"] and d.get("mode") == self.body["mode"]
        ]


def _call(
    name: str, method: str, url: str, body: dict[str, Any], client: httpx.Client | None = None
) -> dict[str, Any]:
    try:
        if client is not None:
            reply = client.request(method, url, json=body)
        else:
            with httpx.Client(timeout=HOOK_TIMEOUT_S, trust_env=False) as own:
                reply = own.request(method, url, json=body)
    except httpx.HTTPError as exc:
        raise FaultError(f"fault {name}: {method} {url} failed: {exc}", target=url) from exc
    if reply.status_code >= 300:
        raise FaultError(
            f"fault {name}: {method} {url} answered HTTP {reply.status_code}: {reply.text[:200]}", target=url
        )
    try:
        payload = reply.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def quota_fault(spec: RegionQuotaDenialSpec, ctx: FaultContext) -> Fault:
    """Build (not apply) a ``region_quota_denial`` fault from its spec (the spec model has checked
    the mode, the region and that the hook is on loopback)."""
    body: dict[str, Any] = {"mode": spec.mode, "region": spec.region}
    if spec.instance_type:
        body["instance_type"] = spec.instance_type
    return QuotaFault(spec.name, spec.hook, body)


def active_denials(hook: str) -> list[dict[str, Any]]:
    """``GET <hook>``'s ``denials``: what the control plane currently refuses (for checks)."""
    with httpx.Client(timeout=HOOK_TIMEOUT_S, trust_env=False) as client:
        reply = client.get(hook)
    reply.raise_for_status()
    return list(reply.json().get("denials", []))


def undo_quota(undo: QuotaHookUndo) -> None:
    """Lift a journaled denial from its ``undo`` record (``drill recover``); idempotent."""
    _call("recover", "DELETE", undo.hook, dict(undo.body))


__all__ = ["QuotaFault", "active_denials", "quota_fault", "undo_quota"]
