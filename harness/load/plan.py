"""What the load room is asked to do: :class:`LoadPlan`, built from a scenario's ``load:`` block.

The plan crosses process boundaries as JSON (:meth:`LoadPlan.to_json` / :meth:`LoadPlan.from_json`):
the Locust child reads it from the ``DRILL_LOAD_PLAN`` environment variable and the prober from
``--plan``. Invalid plans raise :class:`~harness.errors.ScenarioError` naming the ``load.`` field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.load.canaries import CanarySet

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request: ``path`` is joined to the plan's ``host``. Give ``json`` or ``body``
    (raw text), not both."""

    method: str = "GET"
    path: str = "/"
    json: Any | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    answer_schema: str | None = None  # the probe checks 2xx answers against it (streams.SCHEMAS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "headers", dict(self.headers))

    def problems(self, where: str) -> list[str]:
        found: list[str] = []
        if self.method.upper() not in HTTP_METHODS:
            found.append(f"{where}.method: {self.method!r} is not one of {sorted(HTTP_METHODS)}")
        if not self.path.startswith("/"):
            found.append(f"{where}.path: {self.path!r} must start with '/'")
        if self.json is not None and self.body is not None:
            found.append(f"{where}: give either json or body, not both")
        return found

    def encoded_body(self) -> tuple[bytes | None, dict[str, str]]:
        """The body bytes to send and the headers to send with them (Content-Type added for
        JSON unless the caller set one). Encoded once so the per-request path stays cheap."""
        headers = dict(self.headers)
        if self.json is not None:
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
            return json.dumps(self.json).encode(), headers
        if self.body is not None:
            return self.body.encode(), headers
        return None, headers

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method.upper(),
            "path": self.path,
            "json": self.json,
            "headers": dict(self.headers),
            "body": self.body,
            "answer_schema": self.answer_schema,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestSpec:
        return cls(
            method=str(data.get("method", "GET")),
            path=str(data.get("path", "/")),
            json=data.get("json"),
            headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
            body=data.get("body"),
            answer_schema=data.get("answer_schema"),
        )


@dataclass(frozen=True)
class LoadPlan:
    """The load to drive for one drill.

    - ``host``: base URL, e.g. ``http://127.0.0.1:8080``.
    - ``users``/``spawn_rate``: Locust users (closed loop, no wait between requests) and how many
      start per second. ``users=0`` runs the prober alone.
    - ``pace_hz``: each user sends at most this many requests per second (Locust's
      ``constant_throughput``: it waits out the rest of each 1/pace_hz slot, never more); None:
      no wait at all, as fast as the stack answers.
    - ``request``: what each Locust user sends; ignored when ``locustfile`` is given, in which case
      the user's own User classes run and the harness only records their requests.
    - ``timeout_s``: per-request timeout (connect and network) for users and probes.
    - ``probe_rate_hz``: fixed-rate open-loop probes per second; 0 disables the prober.
    - ``probe_request``: what each probe sends; defaults to ``request``.
    - ``duration_s``: the whole load period (baseline + fault + recovery). Both generators stop by
      themselves shortly after it even if nobody calls ``stop()``.
    - ``workers``: local Locust worker processes beside a master (Locust's own distributed
      mode); 0 runs Locust in one process.
    - ``master_bind``: ``HOST:PORT`` the master listens on for workers (``drill worker`` on
      other machines attaches there); None: 127.0.0.1 and a free port, for local workers only.
    - ``expect_workers``: how many workers (local + remote) the master waits for before it
      starts the users; None means ``workers``.
    - ``attribution``: ``{"header": NAME, "tiers": {VALUE: TIER}}``, how to tell the serving
      tier from a gateway's own answer header (``load.attribution``; samples.py).
    - ``canaries``: labelled queries the probe sends and scores (``load.canaries``; canaries.py).
    """

    host: str
    users: int
    spawn_rate: float
    duration_s: float
    pace_hz: float | None = None
    request: RequestSpec = field(default_factory=RequestSpec)
    locustfile: Path | None = None
    timeout_s: float = 5.0
    probe_rate_hz: float = 20.0
    probe_request: RequestSpec | None = None
    workers: int = 0
    master_bind: str | None = None
    expect_workers: int | None = None
    attribution: Mapping[str, Any] | None = None  # load.attribution: {header, tiers} (samples.py)
    canaries: CanarySet | None = None

    @property
    def distributed(self) -> bool:
        """Locust runs as a master plus workers (local, remote or both)."""
        return self.users > 0 and (self.workers > 0 or self.master_bind is not None)

    @property
    def expected_workers(self) -> int:
        return self.expect_workers if self.expect_workers is not None else self.workers

    def __post_init__(self) -> None:
        found: list[str] = []
        if not self.host.startswith(("http://", "https://")):
            found.append(f"load.host: {self.host!r} must start with http:// or https://")
        if self.users < 0:
            found.append(f"load.users: {self.users} must be >= 0")
        if self.users > 0 and not (self.spawn_rate > 0):
            found.append(f"load.spawn_rate: {self.spawn_rate} must be > 0")
        if self.pace_hz is not None and not (self.pace_hz > 0 and math.isfinite(self.pace_hz)):
            found.append(f"load.pace_hz: {self.pace_hz} must be > 0 requests per second per user")
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            found.append(f"load.duration_s: {self.duration_s} must be a positive number of seconds")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            found.append(f"load.timeout_s: {self.timeout_s} must be a positive number of seconds")
        if not (self.probe_rate_hz >= 0 and math.isfinite(self.probe_rate_hz)):
            found.append(f"load.probe_rate_hz: {self.probe_rate_hz} must be >= 0 (0 disables probes)")
        if self.users == 0 and self.probe_rate_hz == 0:
            found.append("load: users and probe_rate_hz are both 0; set at least one to drive load")
        if self.locustfile is not None and not Path(self.locustfile).is_file():
            found.append(f"load.locustfile: {self.locustfile} does not exist or is not a file")
        if self.workers < 0:
            found.append(f"load.workers: {self.workers} must be >= 0")
        if self.distributed and self.expected_workers < 1:
            found.append("load.master: no worker to wait for: set load.workers or load.master.expect_workers")
        if self.master_bind is not None:
            try:
                split_host_port(self.master_bind)
            except ValueError as exc:
                found.append(f"load.master.bind: {exc}")
        found += self.request.problems("load.request")
        if self.probe_request is not None:
            found += self.probe_request.problems("load.probe_request")
        if found:
            raise ScenarioError(found[0], problems=found)

    @property
    def effective_probe_request(self) -> RequestSpec:
        """The request each probe sends: ``probe_request`` or else ``request``."""
        return self.probe_request if self.probe_request is not None else self.request

    @property
    def probe_count(self) -> int:
        """How many probes the prober launches over ``duration_s`` (its hard upper bound)."""
        return math.ceil(self.probe_rate_hz * self.duration_s)

    def url(self, request: RequestSpec) -> str:
        return self.host.rstrip("/") + request.path

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "duration_s": self.duration_s,
            "pace_hz": self.pace_hz,
            "request": self.request.to_dict(),
            "locustfile": str(self.locustfile) if self.locustfile is not None else None,
            "timeout_s": self.timeout_s,
            "probe_rate_hz": self.probe_rate_hz,
            "probe_request": self.probe_request.to_dict() if self.probe_request else None,
            "workers": self.workers,
            "master_bind": self.master_bind,
            "expect_workers": self.expect_workers,
            "attribution": dict(self.attribution) if self.attribution is not None else None,
            "canaries": self.canaries.to_dict() if self.canaries is not None else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadPlan:
        probe_request = data.get("probe_request")
        locustfile = data.get("locustfile")
        return cls(
            host=str(data["host"]),
            users=int(data["users"]),
            spawn_rate=float(data["spawn_rate"]),
            duration_s=float(data["duration_s"]),
            pace_hz=float(data["pace_hz"]) if data.get("pace_hz") is not None else None,
            request=RequestSpec.from_dict(data.get("request") or {}),
            locustfile=Path(locustfile) if locustfile else None,
            timeout_s=float(data.get("timeout_s", 5.0)),
            probe_rate_hz=float(data.get("probe_rate_hz", 20.0)),
            probe_request=RequestSpec.from_dict(probe_request) if probe_request else None,
            workers=int(data.get("workers") or 0),
            master_bind=data.get("master_bind"),
            expect_workers=data.get("expect_workers"),
            attribution=data.get("attribution"),
            canaries=CanarySet.from_dict(data["canaries"]) if data.get("canaries") else None,
        )

    @classmethod
    def from_json(cls, text: str) -> LoadPlan:
        return cls.from_dict(json.loads(text))


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); ValueError saying what is wrong."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT like 127.0.0.1:5557, got {address!r}")
    return host.strip("[]"), int(port_text)
