"""The local runtime's stack file (YAML, ``kind: Stack``): its schema and its loader.

A stack file declares an optional Toxiproxy server, the proxies to create on it, and the
processes to run::

    apiVersion: drill/v1
    kind: Stack
    name: reference-local
    toxiproxy: {listen: 127.0.0.1:8474}
    proxies:
      - {name: hosted-model, listen: 127.0.0.1:19001, upstream: 127.0.0.1:18001}
    http_fault_proxy:                                 # mitmdump + drill's addon (docs/http-faults.md)
      routes:
        - {name: hosted-model, listen: 127.0.0.1:19101, upstream: http://127.0.0.1:19001}
      # forward:                                      # an unmodified gateway, through HTTPS_PROXY
      #   listen: 127.0.0.1:19100
      #   clients: [gateway]                          # given HTTPS_PROXY, SSL_CERT_FILE (mitmproxy's CA)
      #   hosts:
      #     "api.provider.example:443": {route: provider, upstream: "https://127.0.0.1:19002"}
    processes:
      - name: hosted-model
        argv: [python, -m, targets.model_server]      # "python" means this interpreter
        env: {PORT: 18001, HOST: 127.0.0.1, TIER: hosted}
        port: 18001
        health: http://127.0.0.1:18001/health
        labels: {tier: hosted}
        start_after: []

:func:`load_stack` checks it all before anything starts (unique names, no ``start_after`` cycle,
no port declared twice, every listener on 127.0.0.1) and names ``FILE:LINE`` and the field on
bad input. Relative paths (``cwd``, a relative ``argv[0]``, ``toxiproxy.binary``) resolve against
the stack file's folder (:attr:`LocalStackSpec.base_dir`). The supervisor that runs a stack is
:class:`harness.runtime.local.LocalRuntime`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from harness.runtime.prometheus import PrometheusSpec
from harness.scenario.loader import load_model

__all__ = [
    "HTTP_FAULT_PROXY",
    "ForwardHostSpec",
    "ForwardProxySpec",
    "HttpFaultProxySpec",
    "HttpRouteSpec",
    "LocalStackSpec",
    "ProcessSpec",
    "ProxySpec",
    "ToxiproxySpec",
    "load_stack",
    "split_listen",
    "start_waves",
]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
HTTP_FAULT_PROXY = "http-fault-proxy"  # its member name, log file and state-file entry
# What a forward client's environment gets from the runtime (harness.httpfaults.proxy.forward_client_env).
FORWARD_CLIENT_ENV = ("HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")


def split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} must be HOST:PORT, e.g. 127.0.0.1:19001")
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"{value!r}: the local runtime only listens on 127.0.0.1")
    return host, int(port)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ToxiproxySpec(_Strict):
    """The Toxiproxy server. ``start: false`` uses one already listening there instead."""

    listen: str = "127.0.0.1:8474"
    start: bool = True
    binary: str | None = Field(default=None, description="default: toxiproxy-server next to python, or on PATH")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @property
    def url(self) -> str:
        return f"http://{self.listen}"


class ProxySpec(_Strict):
    """A Toxiproxy proxy: ``listen`` (127.0.0.1:PORT) forwards to ``upstream`` (HOST:PORT)."""

    name: str = Field(min_length=1)
    listen: str
    upstream: str

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        split_listen(value)
        return value


class HttpRouteSpec(_Strict):
    """One route of the HTTP fault proxy: ``listen`` (127.0.0.1:PORT) reverse-proxies to
    ``upstream`` (an http://127.0.0.1:PORT URL); provider faults name it (``target.route``)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    listen: str
    upstream: str

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        url = httpx.URL(value)
        if url.scheme != "http" or url.host not in LOOPBACK_HOSTS or url.port is None:
            raise ValueError(f"{value!r} must be an http://127.0.0.1:PORT URL (the local runtime stays on loopback)")
        if url.path not in ("", "/") or url.query:
            raise ValueError(f"{value!r}: an upstream is a base URL, without a path")
        return value

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


_DESTINATION = re.compile(r"^(?=.{1,253}:)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*:[0-9]{1,5}$")


class ForwardHostSpec(_Strict):
    """A destination the forward listener accepts: the named ``route`` its calls are (faults
    target it like a reverse route) and the local ``upstream`` (http(s)://127.0.0.1:PORT) it is
    mapped to. Nothing else is ever contacted."""

    route: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    upstream: str

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        url = httpx.URL(value)
        if url.scheme not in ("http", "https") or url.host not in LOOPBACK_HOSTS or url.port is None:
            raise ValueError(f"{value!r} must be an http(s)://127.0.0.1:PORT URL: the forward proxy maps a "
                             "provider's name to a local stand-in and never connects beyond loopback")
        if url.path not in ("", "/") or url.query:
            raise ValueError(f"{value!r}: an upstream is a base URL, without a path")
        return value


class ForwardProxySpec(_Strict):
    """The forward (regular-mode) listener with TLS interception, for a gateway configured with a
    provider's real ``https://`` URL: ``clients`` (process names) get ``HTTPS_PROXY`` pointing
    here and ``SSL_CERT_FILE`` holding mitmproxy's CA, made in ``ca_dir`` (default: a folder of the
    run's stack logs, new each run; a path, relative to the stack file, keeps one CA across runs
    for a gateway drill does not start)."""

    listen: str
    hosts: dict[str, ForwardHostSpec] = Field(min_length=1)
    clients: list[str] = Field(default_factory=list)
    ca_dir: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: dict[str, ForwardHostSpec]) -> dict[str, ForwardHostSpec]:
        for key in value:
            if not _DESTINATION.match(key) or not 0 < int(key.rpartition(":")[2]) < 65536:
                raise ValueError(f"{key!r} must be a lowercase HOST:PORT the gateway calls, e.g. "
                                 "\"api.provider.example:443\"")
        return value

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


class HttpFaultProxySpec(_Strict):
    """The HTTP fault proxy (``mitmdump`` with drill's addon, docs/http-faults.md): one reverse
    listener per route and/or one forward listener, started before the processes, stopped with
    them."""

    routes: list[HttpRouteSpec] = Field(default_factory=list)
    forward: ForwardProxySpec | None = None
    binary: str | None = Field(default=None, description="default: $DRILL_MITMDUMP, .venv-mitm, or on PATH")

    @field_validator("routes")
    @classmethod
    def _some_routes(cls, value: list[HttpRouteSpec]) -> list[HttpRouteSpec]:
        # Only a written `routes: []` reaches here (an absent key is not validated).
        if not value:
            raise ValueError("List should have at least 1 item (or leave routes out and give forward)")
        return value

    @model_validator(mode="after")
    def _unique(self) -> HttpFaultProxySpec:
        if not self.routes and self.forward is None:
            raise ValueError("give at least one route (routes: [...]) or a forward listener (forward: {...})")
        names = [r.name for r in self.routes] + [h.route for h in (self.forward.hosts.values() if self.forward else [])]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"route names must be unique (over routes and forward.hosts): "
                             f"{', '.join(repeated)} repeated")
        return self

    @property
    def url(self) -> str:
        """The control API (any listener answers it; the first route's, else the forward one's)."""
        if self.routes:
            return f"http://{self.routes[0].listen}"
        assert self.forward is not None
        return f"http://{self.forward.listen}"

    @property
    def port(self) -> int:
        """The port of the control API's listener."""
        return self.routes[0].port if self.routes else self.forward.port if self.forward else 0


class ProcessSpec(_Strict):
    """One supervised process. ``port`` is checked free before start and after stop; ``health``
    (an http://127.0.0.1 URL) must answer 2xx within ``health_timeout_s``."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    argv: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    port: int | None = Field(default=None, gt=0, lt=65536)
    health: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    start_after: list[str] = Field(default_factory=list)
    cwd: str | None = None
    health_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("env", mode="before")
    @classmethod
    def _env_strings(cls, value: Any) -> Any:
        # YAML gives ints and booleans; a process environment only holds strings.
        if not isinstance(value, dict):
            return value
        return {
            str(key): ("true" if item is True else "false" if item is False else str(item))
            for key, item in value.items()
            if item is not None
        }

    @field_validator("argv", mode="before")
    @classmethod
    def _argv_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(item) if isinstance(item, int | float) else item for item in value]
        return value

    @field_validator("health")
    @classmethod
    def _health(cls, value: str | None) -> str | None:
        if value is None:
            return value
        url = httpx.URL(value)
        if url.scheme != "http" or url.host not in LOOPBACK_HOSTS:
            raise ValueError(f"{value!r} must be an http://127.0.0.1:PORT/... URL")
        return value


class LocalStackSpec(_Strict):
    """A stack for the local runtime (``kind: Stack``)."""

    api_version: Literal["drill/v1"] = Field(default="drill/v1", alias="apiVersion")
    kind: Literal["Stack"]
    name: str = "local"
    description: str | None = None
    toxiproxy: ToxiproxySpec | None = None
    proxies: list[ProxySpec] = Field(default_factory=list)
    http_fault_proxy: HttpFaultProxySpec | None = None
    processes: list[ProcessSpec] = Field(default_factory=list)
    prometheus: PrometheusSpec | None = None  # issue 15: a Prometheus scraping the processes
    stop_grace_s: float = Field(default=5.0, ge=0)

    _base_dir: Path | None = PrivateAttr(default=None)
    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> LocalStackSpec:
        names = [p.name for p in self.processes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"process names must be unique: {', '.join(duplicates)} repeated")
        proxy_names = [p.name for p in self.proxies]
        if len(set(proxy_names)) != len(proxy_names):
            raise ValueError("proxy names must be unique")
        if self.proxies and self.toxiproxy is None:
            raise ValueError("proxies need a toxiproxy: add `toxiproxy: {listen: 127.0.0.1:8474}`")
        if self.http_fault_proxy is not None and HTTP_FAULT_PROXY in names:
            raise ValueError(f"a process may not be named {HTTP_FAULT_PROXY!r}: the HTTP fault proxy is")
        forward = self.http_fault_proxy.forward if self.http_fault_proxy is not None else None
        if forward is not None:
            unknown_clients = [c for c in forward.clients if c not in names]
            if unknown_clients:
                raise ValueError(f"http_fault_proxy.forward.clients names unknown processes {unknown_clients} "
                                 f"(processes: {', '.join(names) or 'none'})")
            for process in self.processes:
                own = sorted(k for k in process.env if k.upper() in FORWARD_CLIENT_ENV)
                if process.name in forward.clients and own:
                    raise ValueError(f"process {process.name}: env {', '.join(own)} is set by "
                                     "http_fault_proxy.forward (it is a client): remove it from env")
        for process in self.processes:
            unknown = [d for d in process.start_after if d not in names]
            if unknown:
                raise ValueError(f"process {process.name}: start_after names unknown processes {unknown}")
        start_waves(self.processes)  # raises on a cycle
        owners: dict[int, str] = {}
        for owner, port in self.declared_ports():
            if port in owners:
                raise ValueError(f"port {port} is declared twice: by {owners[port]} and by {owner}")
            owners[port] = owner
        return self

    def declared_ports(self) -> list[tuple[str, int]]:
        """(owner, port) for every port the stack will listen on."""
        ports: list[tuple[str, int]] = []
        if self.toxiproxy is not None and self.toxiproxy.start:
            ports.append(("toxiproxy", split_listen(self.toxiproxy.listen)[1]))
        ports.extend((f"proxy {p.name}", split_listen(p.listen)[1]) for p in self.proxies)
        if self.http_fault_proxy is not None:
            ports.extend((f"http route {r.name}", r.port) for r in self.http_fault_proxy.routes)
            if self.http_fault_proxy.forward is not None:
                ports.append(("http forward proxy", self.http_fault_proxy.forward.port))
        ports.extend((f"process {p.name}", p.port) for p in self.processes if p.port is not None)
        if self.prometheus is not None:
            ports.append(("prometheus", self.prometheus.port))
        return ports

    @property
    def base_dir(self) -> Path:
        return self._base_dir or Path.cwd()

    @property
    def source(self) -> Path | None:
        return self._source


def start_waves(processes: list[ProcessSpec]) -> list[list[ProcessSpec]]:
    """Processes grouped so that each group only waits for earlier groups (start_after)."""
    waves: list[list[ProcessSpec]] = []
    started: set[str] = set()
    remaining = list(processes)
    while remaining:
        wave = [p for p in remaining if all(d in started for d in p.start_after)]
        if not wave:
            cycle = ", ".join(p.name for p in remaining)
            raise ValueError(f"start_after has a cycle among: {cycle}")
        waves.append(wave)
        started.update(p.name for p in wave)
        remaining = [p for p in remaining if p.name not in started]
    return waves


def load_stack(path: str | Path) -> LocalStackSpec:
    """Load a local stack file; raise ScenarioError naming file:line and the field on bad input."""
    path = Path(path).resolve()
    spec = load_model(path, LocalStackSpec)
    spec._base_dir = path.parent
    spec._source = path
    return spec
