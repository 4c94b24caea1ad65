"""A small typed client for the Prometheus HTTP API (``/api/v1``), over httpx.

    with PrometheusClient("http://127.0.0.1:9090") as prom:
        prom.query("up")                                   -> [Sample(labels, value)]
        prom.query_range("up", start, end, step_s=1.0)     -> [Series(labels, points)]
        prom.scrape_interval_s()                           -> 1.0

Errors are :class:`PrometheusError` (unreachable, timeout, a query that failed to run) or its
subclass :class:`PromQLError` (Prometheus could not parse the expression: bad input). Both carry
a message a person can act on; neither shows a Python repr. ``transport`` lets unit tests answer
with :class:`httpx.MockTransport`.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import yaml

from harness.errors import DrillError

DEFAULT_TIMEOUT_S = 2.0
# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000


class PrometheusError(DrillError):
    """Prometheus could not be reached or a query could not run (exit 3)."""


class PromQLError(PrometheusError):
    """Prometheus could not parse an expression (``errorType: bad_data``): bad input."""


@dataclass(frozen=True)
class Sample:
    """One series' value at one instant."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One series over a range: (epoch seconds, value) points, oldest first."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def series_name(labels: dict[str, str]) -> str:
    """``up{service="gpu-a1", tier="gpu"}``; the metric name alone, or "" for an aggregate with no
    labels left (its query names it)."""
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest else name


def _number(raw: Any) -> float:
    try:
        return float(raw)  # Prometheus sends values as text: "0.5", "NaN", "+Inf"
    except (TypeError, ValueError):
        return math.nan


class PrometheusClient:
    def __init__(
        self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        # trust_env off: a proxy from the environment must never see the stack's own traffic.
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport, trust_env=False)

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the API ----------------------------------------------------------------------------

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Evaluate ``expr`` at ``at`` (default: now). A scalar comes back as one sample."""
        params: dict[str, str] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params, expr)
        kind, result = data.get("resultType"), data.get("result")
        if kind == "vector" and isinstance(result, list):
            return [Sample(_labels(item), _number(_pair(item.get("value"))[1])) for item in result]
        if kind == "scalar":
            return [Sample({}, _number(_pair(result)[1]))]
        raise PrometheusError(
            f"{expr}: returns a {kind} (expected an instant vector or a scalar; "
            "a range vector like x[5m] needs a function around it, e.g. rate(x[5m]))"
        )

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[Series]:
        """Evaluate ``expr`` every ``step_s`` from ``start`` to ``end`` (epoch seconds). The step
        grows when the range would exceed Prometheus's point limit."""
        if end < start:
            raise ValueError(f"range ends before it starts ({end} < {start})")
        step_s = max(step_s, (end - start) / MAX_POINTS, 0.001)
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:.3f}"}
        data = self._get("/api/v1/query_range", params, expr)
        result = data.get("result")
        if data.get("resultType") != "matrix" or not isinstance(result, list):
            raise PrometheusError(f"{expr}: query_range answered {data.get('resultType')}, expected a matrix")
        return [
            Series(_labels(item), [(float(_pair(p)[0]), _number(_pair(p)[1])) for p in item.get("values") or []])
            for item in result
        ]

    def scrape_interval_s(self, default_s: float = 60.0) -> float:
        """The global scrape interval from the running configuration (Prometheus's own default
        of 1 m when the configuration does not set one)."""
        data = self._get("/api/v1/status/config", {}, "status/config")
        try:
            config = yaml.safe_load(str(data.get("yaml", ""))) or {}
            text = str(config.get("global", {}).get("scrape_interval", ""))
        except (yaml.YAMLError, AttributeError):
            return default_s
        return _prom_duration_s(text) or default_s

    def wait_for_first_scrape(self, timeout_s: float) -> None:
        """Return once every active target has been scraped at least once (Prometheus applies a
        new configuration's targets up to 5 s after it starts); PrometheusError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            data = self._get("/api/v1/targets", {"state": "active"}, "targets")
            targets = data.get("activeTargets") or []
            if targets and all(t.get("health") in ("up", "down") for t in targets if isinstance(t, dict)):
                return
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"Prometheus at {self.url} has scraped no target within {timeout_s:g} s "
                    f"({len(targets)} active targets): check its scrape configuration"
                )
            time.sleep(0.2)

    # -- plumbing ---------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str], what: str) -> dict[str, Any]:
        try:
            reply = self._http.get(path, params=params)
        except httpx.TimeoutException:
            raise PrometheusError(f"Prometheus at {self.url} did not answer within "
                                  f"{self._http.timeout.read or DEFAULT_TIMEOUT_S:g} s ({what})") from None
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus at {self.url} cannot be reached: {exc}") from None
        try:
            body = reply.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PrometheusError(
                f"{self.url}{path} answered HTTP {reply.status_code} without a Prometheus API reply: "
                "is this a Prometheus server?"
            )
        if body.get("status") != "success":
            kind, error = body.get("errorType", "error"), body.get("error", f"HTTP {reply.status_code}")
            if kind == "bad_data":
                raise PromQLError(f"{what}: Prometheus cannot parse it: {error}")
            raise PrometheusError(f"{what}: the query failed in Prometheus ({kind}): {error}")
        data = body.get("data")
        return data if isinstance(data, dict) else {"result": data}


def _labels(item: Any) -> dict[str, str]:
    metric = item.get("metric") if isinstance(item, dict) else None
    return {str(k): str(v) for k, v in metric.items()} if isinstance(metric, dict) else {}


def _pair(value: Any) -> tuple[Any, Any]:
    if isinstance(value, list) and len(value) == 2:
        return value[0], value[1]
    return math.nan, math.nan


def _prom_duration_s(text: str) -> float | None:
    """Prometheus durations: ``1s``, ``500ms``, ``1m30s``."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    unit_s = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
    return sum(float(n) * unit_s[u] for n, u in parts)
