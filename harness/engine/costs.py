"""What the failover cost, counted by the parts that saw it (docs/cost.md): the HTTP fault proxy's
own log of the calls on its routes, and the cloud's record of the instances it launched, kept in
``cost-records.json`` with the prices in force, so ``drill report RUN_DIR`` recomputes every cost
figure from the run directory alone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from harness.httpfaults.client import HttpFaultClient, HttpFaultProxyError
from harness.rundir import write_cost_records
from harness.scenario import LoadedScenario

FETCH_TIMEOUT_S = 2.0
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
    if http_faults is not None:
        proxy: dict[str, Any] = {"url": http_faults.url, "since": since}
        try:
            calls = http_faults.calls(since)
            proxy.update(ok=True, calls=calls.calls, counts=calls.counts)
        except HttpFaultProxyError as exc:
            proxy.update(ok=False, error=str(exc))
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
