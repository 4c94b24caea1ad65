"""A typed client of the HTTP fault proxy's control API (mitmdump + harness/httpfaults/addon.py).

Every call has a timeout; every failure becomes an :class:`HttpFaultProxyError` (a ``FaultError``,
exit 3) naming the proxy's URL and its own words. Reverts are idempotent: removing a fault that is
not there succeeds, as with Toxiproxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from harness.errors import FaultError

__all__ = ["ActiveHttpFault", "HttpFaultClient", "HttpFaultProxyError", "CONTROL_PREFIX", "ProxyCalls"]

CONTROL_PREFIX = "/__drill"
DEFAULT_TIMEOUT_S = 5.0


class HttpFaultProxyError(FaultError):
    """A control call to the HTTP fault proxy failed (``status_code`` None: it never answered)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message, target="http-fault-proxy")
        self.status_code = status_code


@dataclass(frozen=True)
class ActiveHttpFault:
    id: str
    type: str
    proxy: str
    params: dict[str, Any]
    hits: int
    # stream_stall: the stalls the upstream's end released before their stall_ms (docs/http-faults.md)
    cut_short: int = 0

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> ActiveHttpFault:
        return cls(str(data["id"]), str(data["type"]), str(data["proxy"]), dict(data.get("params") or {}),
                   int(data.get("hits", 0)), int(data.get("cut_short", 0)))


@dataclass(frozen=True)
class ProxyCalls:
    """The proxy's own record of the API calls on its routes: ``calls`` (one dict each: ``proxy``,
    ``at`` epoch s, ``status`` or None while unanswered, ``fault`` or None) and ``counts`` per
    proxy since it started."""

    calls: list[dict[str, Any]]
    counts: dict[str, int]


class HttpFaultClient:
    """Talks to one HTTP fault proxy at ``url`` (any of its listeners, e.g. http://127.0.0.1:18300)."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        # trust_env=False: no proxy from the environment may sit between drill and its own proxy.
        self._http = httpx.Client(base_url=self.url + CONTROL_PREFIX, timeout=timeout_s, transport=transport,
                                  trust_env=False)

    def __enter__(self) -> HttpFaultClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, what: str, json: dict[str, Any] | None = None,
              timeout_s: float | None = None) -> httpx.Response:
        try:
            if timeout_s is None:
                response = self._http.request(method, path, json=json)
            else:
                response = self._http.request(method, path, json=json, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise HttpFaultProxyError(
                f"HTTP fault proxy at {self.url}: {what}: no answer ({type(exc).__name__}: {exc}); "
                "is the stack up (`drill stack status`)?"
            ) from exc
        if response.status_code >= 400:
            try:
                said = str(response.json().get("error", response.text))
            except ValueError:
                said = response.text.strip()[:200]
            raise HttpFaultProxyError(
                f"HTTP fault proxy at {self.url}: {what}: {said} (HTTP {response.status_code})",
                status_code=response.status_code,
            )
        return response

    def health(self) -> dict[str, int]:
        """The proxy names the server knows, with their listen ports."""
        body = self._call("GET", "/health", "health check").json()
        return {str(name): int(port) for name, port in dict(body.get("proxies") or {}).items()}

    def faults(self) -> list[ActiveHttpFault]:
        return [ActiveHttpFault.from_api(item) for item in self._call("GET", "/faults", "list faults").json()]

    def calls(self, since: float = 0.0, timeout_s: float | None = None) -> ProxyCalls:
        """Upstream calls the proxy counted, those sent at ``since`` (epoch s) or later."""
        body = self._call("GET", f"/calls?since={since:.6f}", "list calls", timeout_s=timeout_s).json()
        calls = [dict(c) for c in body.get("calls") or [] if isinstance(c, dict)]
        counts = {str(k): int(v) for k, v in dict(body.get("counts") or {}).items()}
        return ProxyCalls(calls=calls, counts=counts)

    def counts(self, timeout_s: float | None = None) -> dict[str, int]:
        """Calls per route since the proxy started (cheap: what a live stop condition polls)."""
        body = self._call("GET", "/counts", "count calls", timeout_s=timeout_s).json()
        return {str(k): int(v) for k, v in dict(body.get("counts") or {}).items()}

    def add(self, fault_id: str, fault_type: str, proxy: str, params: dict[str, Any]) -> ActiveHttpFault:
        body = {"id": fault_id, "type": fault_type, "proxy": proxy, "params": params}
        created = self._call("POST", "/faults", f"add {fault_type} {fault_id!r} on proxy {proxy!r}", body)
        return ActiveHttpFault.from_api(created.json())

    def update(self, fault_id: str, params: dict[str, Any]) -> ActiveHttpFault:
        """Change an active fault's params in place (a schedule step)."""
        updated = self._call("POST", f"/faults/{quote(fault_id, safe='')}", f"update fault {fault_id!r}",
                             {"params": params})
        return ActiveHttpFault.from_api(updated.json())

    def remove(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{quote(fault_id, safe='')}", f"remove fault {fault_id!r}")

    def reset(self) -> None:
        """Remove every fault (what `drill recover` does when a journal names this proxy)."""
        self._call("DELETE", "/faults", "remove every fault")
