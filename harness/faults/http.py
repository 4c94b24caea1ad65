"""Provider faults at the HTTP and streaming layer, through the HTTP fault proxy (mitmproxy).

``http_error``, ``first_token_delay``, ``stream_cut``, ``stream_stall`` and ``malformed`` act on one
provider route of the proxy (docs/http-faults.md). Applying adds the fault to the proxy's control
API; the onset is that call's bracket, as for a Toxiproxy toxic. Reverting removes it
(idempotent); ``verify()`` reads the proxy's active faults back.
"""

from __future__ import annotations

import time

from pydantic import JsonValue

from harness.errors import FaultError
from harness.faults.base import FaultDescription, Onset
from harness.httpfaults.client import HttpFaultClient, HttpFaultProxyError
from harness.rundir.undo import HttpFaultUndo
from harness.scenario.fault_specs import HttpProviderFaultSpec

__all__ = ["HttpFault", "http_fault", "undo_http"]


class HttpFault:
    """One provider fault on one route of the HTTP fault proxy."""

    def __init__(self, spec: HttpProviderFaultSpec, client: HttpFaultClient, fault_id: str) -> None:
        self.name = spec.name
        self.type: str = spec.type
        self.route = spec.route
        self.params: dict[str, JsonValue] = dict(spec.parameters())
        self.client = client
        self.fault_id = fault_id
        self.magnitude_param: str = spec.MAGNITUDE or ""
        self._applied = False

    def describe(self) -> FaultDescription:
        return {
            "targets": [f"http-route:{self.route}"],
            "params": dict(self.params),
            "undo": HttpFaultUndo(proxy_url=self.client.url, fault_id=self.fault_id),
        }

    def apply(self) -> Onset:
        before = time.time()
        # Only the parameters the addon reads go over the wire; None means "not given".
        given = {k: v for k, v in self.params.items() if v is not None}
        self.client.add(self.fault_id, self.type, self.route, given)
        after = time.time()
        self._applied = True
        return Onset(at=(before + after) / 2, source="http-fault-proxy-api", uncertainty_s=(after - before) / 2)

    def set_magnitude(self, value: float) -> Onset | None:
        """A schedule's step (:class:`harness.faults.base.ScheduledMagnitude`): before apply, the
        params apply sends; after, the same fault's params updated on the proxy."""
        if not self.magnitude_param:
            raise FaultError(f"fault {self.name!r}: {self.type} has no magnitude a schedule can move")
        shown: JsonValue = value if self.magnitude_param == "share" else int(round(value))
        self.params[self.magnitude_param] = shown
        if not self._applied:
            return None
        before = time.time()
        self.client.update(self.fault_id, {self.magnitude_param: shown})
        after = time.time()
        return Onset(at=(before + after) / 2, source="http-fault-proxy-api", uncertainty_s=(after - before) / 2)

    def revert(self) -> float:
        self.client.remove(self.fault_id)
        return time.time()

    def verify(self) -> list[str]:
        try:
            left = [f for f in self.client.faults() if f.id == self.fault_id]
        except HttpFaultProxyError as exc:
            return [f"{self.name}: could not read the HTTP fault proxy back: {exc}"]
        return [f"{self.name}: {self.type} still active on route {self.route!r}"] if left else []


def http_fault(spec: HttpProviderFaultSpec, client: HttpFaultClient) -> HttpFault:
    """Build (not apply) a provider fault; the route must be one the proxy serves."""
    routes = client.health()
    if spec.route not in routes:
        known = ", ".join(sorted(routes)) or "none"
        raise FaultError(f"fault {spec.name!r}: the HTTP fault proxy has no route {spec.route!r} (it has: {known})")
    return HttpFault(spec, client, f"drill-{spec.name}")


def undo_http(undo: HttpFaultUndo) -> None:
    """Remove a fault from its journaled undo record alone (``drill recover``; idempotent)."""
    with HttpFaultClient(undo.proxy_url) as client:
        client.remove(undo.fault_id)
