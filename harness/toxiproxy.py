"""A typed client of the Toxiproxy HTTP API (v2), on httpx.

Every call has a timeout. Every failure becomes a :class:`ToxiproxyError` (a ``FaultError``, exit
3) whose message names the server, the proxy/toxic and the server's own words, e.g.::

    toxiproxy at http://127.0.0.1:8474: proxy 'hosted': proxy already exists (HTTP 409)

When the server cannot be reached (refused, timed out) the message says so and what to check.

Pass ``transport=httpx.MockTransport(handler)`` to test code against canned answers; the real
transport is exercised against a real ``toxiproxy-server`` in ``tests/test_toxiproxy.py``.

API reference: Shopify/toxiproxy ``api.go`` (routes) and README (toxic attributes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from harness import __version__
from harness.errors import FaultError

__all__ = ["Proxy", "Toxic", "ToxiproxyClient", "ToxiproxyError", "DEFAULT_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 5.0


class ToxiproxyError(FaultError):
    """A Toxiproxy call failed.

    ``status_code`` is the HTTP status the server answered with, or None when it could not be
    reached (connection refused, timeout). ``proxy`` and ``toxic`` name what the call was about.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        proxy: str | None = None,
        toxic: str | None = None,
    ) -> None:
        super().__init__(message, target=f"toxiproxy:{proxy}" if proxy else "toxiproxy")
        self.status_code = status_code
        self.proxy = proxy
        self.toxic = toxic

    @property
    def unreachable(self) -> bool:
        """True when the server never answered (so the state on the server is unknown)."""
        return self.status_code is None


@dataclass(frozen=True)
class Toxic:
    """One toxic on a proxy. ``stream`` is ``upstream`` or ``downstream``; ``toxicity`` 0..1."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Toxic:
        return cls(
            name=str(data.get("name", "")),
            type=str(data.get("type", "")),
            stream=str(data.get("stream", "downstream")),
            toxicity=float(data.get("toxicity", 1.0)),
            attributes=dict(data.get("attributes") or {}),
        )


@dataclass(frozen=True)
class Proxy:
    """One proxy: ``listen`` and ``upstream`` are ``host:port``; ``toxics`` as active right now."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[Toxic] = field(default_factory=list)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Proxy:
        return cls(
            name=str(data.get("name", "")),
            listen=str(data.get("listen", "")),
            upstream=str(data.get("upstream", "")),
            enabled=bool(data.get("enabled", False)),
            toxics=[Toxic.from_api(t) for t in data.get("toxics") or []],
        )


def _segment(name: str) -> str:
    """A proxy/toxic name as one URL path segment."""
    return quote(name, safe="")


def _subject(proxy: str | None, toxic: str | None) -> str:
    parts = []
    if proxy is not None:
        parts.append(f"proxy {proxy!r}")
    if toxic is not None:
        parts.append(f"toxic {toxic!r}")
    return " ".join(parts)


def _server_message(response: httpx.Response) -> str:
    """The server's own error text: the ``error`` field of its JSON body, else the raw body.

    Toxiproxy writes its JSON error with ``Content-Type: text/plain``, so the body is parsed
    whatever the header says.
    """
    text = response.text.strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return text


class ToxiproxyClient:
    """Client of one Toxiproxy server, e.g. ``ToxiproxyClient("http://127.0.0.1:8474")``.

    ``timeout_s`` bounds every call (connect, read, write). Use as a context manager or call
    :meth:`close`. Raises :class:`ToxiproxyError` on any failure.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ToxiproxyError(
                f"toxiproxy URL {url!r} is not an http:// URL: "
                "write it as http://HOST:PORT, e.g. http://127.0.0.1:8474"
            )
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout_s,
            transport=transport,
            # Toxiproxy v2 answers 403 to browser-like agents; say who we are.
            headers={"User-Agent": f"drill/{__version__}", "Accept": "application/json"},
            # HTTP(S)_PROXY from the environment must never reroute calls to a local server.
            trust_env=False,
        )

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"ToxiproxyClient({self.url!r}, timeout_s={self.timeout_s})"

    # -- the API -------------------------------------------------------------------------------

    def version(self) -> str:
        """The server's version string (JSON ``{"version": ...}`` on v2.6+, plain text before)."""
        response = self._request("GET", "/version")
        text = response.text.strip()
        try:
            body = json.loads(text)
        except ValueError:
            return text
        if isinstance(body, dict) and "version" in body:
            return str(body["version"])
        return text

    def proxies(self) -> dict[str, Proxy]:
        """Every proxy, with its active toxics, keyed by name."""
        body = self._json(self._request("GET", "/proxies"))
        return {name: Proxy.from_api(data) for name, data in sorted(body.items())}

    def get_proxy(self, name: str) -> Proxy | None:
        """The proxy called ``name``, or None when there is none."""
        try:
            response = self._request("GET", f"/proxies/{_segment(name)}", proxy=name)
        except ToxiproxyError as exc:
            if exc.status_code == 404:
                return None
            raise
        return Proxy.from_api(self._json(response, proxy=name))

    def create_proxy(self, name: str, listen: str, upstream: str, enabled: bool = True) -> Proxy:
        """Create a proxy listening on ``listen`` (``host:port``; port 0 picks a free one)."""
        payload = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        response = self._request("POST", "/proxies", json_body=payload, proxy=name)
        return Proxy.from_api(self._json(response, proxy=name))

    def set_enabled(self, name: str, enabled: bool) -> Proxy:
        """Enable or disable a proxy. Disabling closes its open connections and its listener."""
        path = f"/proxies/{_segment(name)}"
        payload = {"enabled": enabled}
        try:
            response = self._request("PATCH", path, json_body=payload, proxy=name)
        except ToxiproxyError as exc:
            # Servers before v2.5 only know POST for updates.
            if exc.status_code != 405:
                raise
            response = self._request("POST", path, json_body=payload, proxy=name)
        return Proxy.from_api(self._json(response, proxy=name))

    def delete_proxy(self, name: str, missing_ok: bool = True) -> None:
        """Delete a proxy; a missing one is fine unless ``missing_ok`` is False."""
        try:
            self._request("DELETE", f"/proxies/{_segment(name)}", proxy=name)
        except ToxiproxyError as exc:
            if not (missing_ok and exc.status_code == 404):
                raise

    def add_toxic(
        self,
        proxy: str,
        type: str,
        attributes: dict[str, Any],
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
    ) -> Toxic:
        """Add a toxic of ``type`` (``latency``, ``bandwidth``, ``timeout``, ``reset_peer``, ...).

        Without ``name`` the server names it ``<type>_<stream>``. It acts on open connections too.
        """
        payload: dict[str, Any] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        if name is not None:
            payload["name"] = name
        response = self._request(
            "POST", f"/proxies/{_segment(proxy)}/toxics", json_body=payload, proxy=proxy, toxic=name
        )
        return Toxic.from_api(self._json(response, proxy=proxy, toxic=name))

    def update_toxic(self, proxy: str, toxic: str, attributes: dict[str, Any]) -> Toxic:
        """Change a toxic's attributes in place (``POST /proxies/{proxy}/toxics/{toxic}``): a fault
        schedule's next step; the toxic keeps its name, so its undo record still removes it."""
        path = f"/proxies/{_segment(proxy)}/toxics/{_segment(toxic)}"
        response = self._request("POST", path, json_body={"attributes": attributes}, proxy=proxy, toxic=toxic)
        return Toxic.from_api(self._json(response, proxy=proxy, toxic=toxic))

    def remove_toxic(self, proxy: str, toxic: str, missing_ok: bool = True) -> None:
        """Remove a toxic; when ``missing_ok``, a missing toxic (or proxy) is fine."""
        path = f"/proxies/{_segment(proxy)}/toxics/{_segment(toxic)}"
        try:
            self._request("DELETE", path, proxy=proxy, toxic=toxic)
        except ToxiproxyError as exc:
            if not (missing_ok and exc.status_code == 404):
                raise

    def toxics(self, proxy: str) -> list[Toxic]:
        """The toxics active on ``proxy`` right now."""
        response = self._request("GET", f"/proxies/{_segment(proxy)}/toxics", proxy=proxy)
        return [Toxic.from_api(t) for t in self._json(response, proxy=proxy) or []]

    def reset(self) -> None:
        """POST /reset: remove *every* toxic on *every* proxy and re-enable every proxy."""
        self._request("POST", "/reset")

    # -- transport and error mapping -----------------------------------------------------------

    def _json(
        self, response: httpx.Response, *, proxy: str | None = None, toxic: str | None = None
    ) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ToxiproxyError(
                f"toxiproxy at {self.url}: {response.request.method} {response.request.url.path} "
                f"answered HTTP {response.status_code} with a body that is not JSON "
                f"({response.text[:80]!r}): is the URL really a Toxiproxy API port?",
                status_code=response.status_code,
                proxy=proxy,
                toxic=toxic,
            ) from exc

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        proxy: str | None = None,
        toxic: str | None = None,
    ) -> httpx.Response:
        subject = _subject(proxy, toxic)
        where = f"toxiproxy at {self.url}: " + (f"{subject}: " if subject else "")
        try:
            response = self._http.request(method, path, json=json_body)
        except httpx.TimeoutException as exc:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url} did not answer {method} {path} within "
                f"{self.timeout_s} s ({type(exc).__name__}): check that toxiproxy-server is "
                "running and not overloaded (`drill stack status`)",
                proxy=proxy,
                toxic=toxic,
            ) from exc
        except httpx.TransportError as exc:
            raise ToxiproxyError(
                f"Toxiproxy is unreachable at {self.url} ({method} {path}: {exc or type(exc).__name__}): "
                "check that toxiproxy-server is running and listening there "
                "(`drill stack status`), and that the stack's toxiproxy URL is right",
                proxy=proxy,
                toxic=toxic,
            ) from exc
        if response.status_code >= 400:
            raise ToxiproxyError(
                f"{where}{_server_message(response)} (HTTP {response.status_code})",
                status_code=response.status_code,
                proxy=proxy,
                toxic=toxic,
            )
        return response
