"""What the failover cost, counted by the parts that saw it (docs/cost.md): the HTTP fault proxy's
own log of the calls on its routes, and the cloud's record of the instances it launched, kept in
``cost-records.json`` with the prices in force, so ``drill report RUN_DIR`` recomputes every cost
figure from the run directory alone."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from harness.httpfaults.client import HttpFaultClient, HttpFaultProxyError
from harness.rundir import write_cost_records
from harness.scenario import LoadedScenario

FETCH_TIMEOUT_S = 2.0  # fetched before the rollback (a local stack stops with it), so kept short
BEFORE_BASELINE_S = 120.0
"""Calls from this long before the baseline are kept too: the load's warm-up, and the stack's
start, so the proxy's count can be set beside the stack's own counters since they started."""


def save_cost_records(
    loaded: LoadedScenario, run_dir: Path, http_faults: HttpFaultClient | None, phases: dict[str, list[float]]
) -> None:
    """Fetch the proxy's call log and the instance record into the run directory, before the
    rollback stops a local stack. Best effort: what cannot be fetched is recorded with its error
    and costs the figure, never the drill."""
    cost = loaded.spec.cost
    if "baseline" not in phases or (http_faults is None and cost is None):
        return
    since = phases["baseline"][0] - BEFORE_BASELINE_S
    document: dict[str, Any] = {"fetched_at": time.time()}
    prices = cost.effective if cost is not None else None
    document["prices"] = None if prices is None else prices.model_dump(mode="json")
    document["routes"] = dict(cost.routes) if cost is not None else {}
    if http_faults is not None:
        proxy: dict[str, Any] = {"url": http_faults.url, "since": since}
        try:
            calls = http_faults.calls(since, timeout_s=FETCH_TIMEOUT_S)
            proxy.update(ok=True, calls=calls.calls, counts=calls.counts)
        except (HttpFaultProxyError, ValueError, TypeError, AttributeError) as exc:  # never the drill's end
            proxy.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        document["proxy"] = proxy
    if cost is not None and cost.instances_url:
        instances: dict[str, Any] = {"url": cost.instances_url}
        try:
            reply = httpx.get(cost.instances_url, params={"all": "true"}, timeout=FETCH_TIMEOUT_S, trust_env=False)
            reply.raise_for_status()
            records = reply.json()
            if not isinstance(records, list):
                raise ValueError(f"expected a JSON list, got {type(records).__name__}")
            instances.update(ok=True, records=records)
        except (httpx.HTTPError, ValueError) as exc:
            instances.update(ok=False, error=str(exc))
        document["instances"] = instances
    try:
        write_cost_records(run_dir, document)
    except OSError:
        pass  # a full disk: the drill's own records come first (the rollback frees the reserve)


@dataclass(frozen=True)
class AmplificationTrip:
    """``stop_when.retry_amplification`` held: when, and the counts it came from."""

    held_at: float
    amplification: float
    upstream_calls: int
    proxy_calls: int
    requests: int
    window_s: float


class AmplificationWatch:
    """Upstream calls per client request over the last ``for_s``, live: the HTTP fault proxy's
    call counts (polled, :meth:`add_count`) plus the answers of tiers behind no proxy route, over
    the requests that ended in the window (sample rows, :meth:`add_rows`). Holds once the counts
    cover a whole window and it holds at least ``min_requests`` requests."""

    def __init__(self, threshold: float, for_s: float, min_requests: int = 5) -> None:
        self.threshold = threshold
        self.window_s = for_s
        self.min_requests = min_requests
        self._ends: list[tuple[float, str, str]] = []  # (end, served_by, tier), in arrival order
        self._counts: list[tuple[float, int]] = []  # (polled at, calls on every route so far)
        self._routes: set[str] = set()

    def add_rows(self, rows: Iterable[dict[str, object]]) -> None:
        for row in rows:
            end = row.get("end")
            if isinstance(end, (int, float)):
                self._ends.append((float(end), str(row.get("served_by") or ""), str(row.get("tier") or "")))

    def add_count(self, at: float, counts: dict[str, int]) -> None:
        self._routes |= set(counts)
        self._counts.append((at, sum(counts.values())))

    def check(self, now: float) -> AmplificationTrip | None:
        start = now - self.window_s
        before = [c for c in self._counts if c[0] <= start]
        if not before or not self._counts:
            return None  # the counts do not cover a whole window yet
        since_at, since_total = before[-1]
        proxy_calls = self._counts[-1][1] - since_total
        window = [(e, s, t) for e, s, t in self._ends if since_at < e <= now]
        if len(window) < self.min_requests:
            return None
        answered_elsewhere = sum(1 for _, served_by, tier in window
                                 if served_by not in self._routes and tier not in ("", "none"))
        calls = proxy_calls + answered_elsewhere
        amplification = calls / len(window)
        # Old entries go: one count before the window is all a later check needs.
        self._counts = self._counts[len(before) - 1:]
        self._ends = [entry for entry in self._ends if entry[0] > since_at]
        if amplification < self.threshold:
            return None
        return AmplificationTrip(held_at=now, amplification=amplification, upstream_calls=calls,
                                 proxy_calls=proxy_calls, requests=len(window), window_s=self.window_s)
