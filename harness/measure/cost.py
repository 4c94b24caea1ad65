"""What the failover cost: counts in, cost figures out (pure; docs/cost.md).

Counted, not estimated:

- **client requests**: the samples (Locust users and the probe), placed by their send time;
- **upstream calls** per tier: counted at the HTTP fault proxy's routes (its own log, one entry
  per API call, 429s it answered included) for the tiers behind one; for any other tier, the
  answers it served (one call each: a lower bound, since its failed attempts are not seen, and
  said so in ``source``);
- **tokens**: streamed tokens received per tier; **wasted** ones were received in answers the user
  never got whole (a stream that ended without ``[DONE]``);
- **instances**: the cloud's own record (launch and termination instants), clipped to the window;
- **retry amplification** = upstream calls / client requests in a window.

Prices turn counts into spend: tokens at a tier's per-million price, instance-hours at the
region's hourly price (else the tier's), answers at a tier's per-thousand price. Without prices
the counts alone are reported (every money figure None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from harness.measure.objectives import ObjectiveResult

__all__ = [
    "CostFigures",
    "FaultCost",
    "InstanceLife",
    "InstanceRecord",
    "PhaseCost",
    "PriceTable",
    "ProxyCall",
    "TierCount",
    "TierRate",
    "cost_figures",
    "cost_objectives",
    "route_tiers",
]

GPU_TIER = "gpu"  # the cloud's instances are the GPU pool's


@dataclass(frozen=True)
class ProxyCall:
    proxy: str
    at: float
    status: int | None
    fault: str | None


@dataclass(frozen=True)
class InstanceRecord:
    id: str
    region: str
    node: str
    created_at: float
    terminated_at: float | None
    preexisting: bool


@dataclass(frozen=True)
class TierRate:
    per_1m_input_tokens: float | None = None
    per_1m_output_tokens: float | None = None
    per_instance_hour: float | None = None
    per_1k_requests: float | None = None


@dataclass(frozen=True)
class PriceTable:
    currency: str
    example: bool
    tiers: Mapping[str, TierRate]
    regions: Mapping[str, float]  # region -> per instance-hour

    def hourly(self, region: str) -> float | None:
        if region in self.regions:
            return self.regions[region]
        gpu = self.tiers.get(GPU_TIER)
        return None if gpu is None else gpu.per_instance_hour


@dataclass(frozen=True)
class TierCount:
    """One tier's counts in a window, with where its upstream calls were counted."""

    upstream_calls: int
    source: str  # "proxy ROUTE" | "answers served"
    answers: int
    output_tokens: int
    tokens_wasted: int
    spend: float | None


@dataclass(frozen=True)
class InstanceLife:
    id: str
    node: str
    region: str
    launched_at: float
    terminated_at: float | None
    launched_in_run: bool
    lifetime_in_run_s: float
    spend: float | None


@dataclass(frozen=True)
class PhaseCost:
    phase: str
    duration_s: float
    client_requests: int
    upstream_calls: int
    amplification: float | None
    tiers: dict[str, TierCount]
    instance_hours: dict[str, float]  # per region
    spend: float | None
    cost_per_1k_requests: float | None


@dataclass(frozen=True)
class FaultCost:
    name: str
    start: float
    end: float
    client_requests: int
    upstream_calls: int
    amplification: float | None
    calls_by_tier: dict[str, int]
    proxy_statuses: dict[str, int]  # the proxy's calls in the window by the status they got


@dataclass(frozen=True)
class CostFigures:
    phases: dict[str, PhaseCost]
    faults: list[FaultCost]
    instances: list[InstanceLife]
    priced: bool
    currency: str | None
    example_prices: bool
    extra_spend: float | None  # fault + recovery spend beyond the baseline's rate
    baseline_spend_per_hour: float | None
    proxy_counted: bool
    instances_counted: bool
    notes: list[str] = field(default_factory=list)


def route_tiers(samples: pd.DataFrame, routes: Sequence[str]) -> dict[str, str]:
    """Each proxy route's tier: the tier of the answers served by a node named like the route
    (the reference gateway's ``X-Served-By``); a route nobody answered as is left out."""
    out: dict[str, str] = {}
    served = samples[["served_by", "tier"]].dropna() if not samples.empty else pd.DataFrame()
    for route in routes:
        tiers = served.loc[served["served_by"] == route, "tier"] if not served.empty else pd.Series([], dtype=str)
        tiers = tiers[tiers != ""]
        if not tiers.empty:
            out[route] = str(tiers.mode().iloc[0])
    return out


def _window(frame: pd.DataFrame, column: str, start: float, end: float) -> pd.DataFrame:
    values = frame[column].to_numpy(dtype=float)
    return frame[(values >= start) & (values < end)]


def _overlap_s(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _tier_counts(
    samples: pd.DataFrame, calls: list[ProxyCall], tiers_of_routes: Mapping[str, str], start: float, end: float,
    prices: PriceTable | None,
) -> dict[str, TierCount]:
    window = _window(samples, "start", start, end) if not samples.empty else samples
    proxied = {tier: route for route, tier in tiers_of_routes.items()}
    in_window = [c for c in calls if start <= c.at < end]
    # A 503 the gateway answered itself says ``X-Tier: none``: no upstream served it.
    served = {str(t) for t in window["tier"].unique() if str(t) and str(t) != "none"} if not window.empty else set()
    names = set(proxied) | served
    out: dict[str, TierCount] = {}
    for tier in sorted(names):
        rows = window[window["tier"] == tier] if not window.empty else window
        answers = len(rows)
        streamed = rows[rows["stream"] == 1] if not rows.empty else rows
        tokens = int(streamed["tokens"].sum()) if not streamed.empty else 0
        wasted = int(streamed.loc[streamed["stream_completed"] != 1, "tokens"].sum()) if not streamed.empty else 0
        if tier in proxied:
            route = proxied[tier]
            upstream = sum(1 for c in in_window if c.proxy == route)
            source = f"proxy {route}"
        else:
            upstream, source = answers, "answers served"
        spend: float | None = None
        rate = prices.tiers.get(tier) if prices is not None else None
        if rate is not None:
            spend = 0.0
            if rate.per_1m_output_tokens is not None:
                spend += tokens * rate.per_1m_output_tokens / 1e6
            if rate.per_1k_requests is not None:
                spend += answers * rate.per_1k_requests / 1e3
        out[tier] = TierCount(upstream, source, answers, tokens, wasted, spend)
    return out


def _instance_lives(
    instances: list[InstanceRecord], run_start: float, run_end: float, prices: PriceTable | None
) -> list[InstanceLife]:
    lives: list[InstanceLife] = []
    for record in sorted(instances, key=lambda r: (r.created_at, r.id)):
        ended = record.terminated_at if record.terminated_at is not None else run_end
        lifetime = _overlap_s(record.created_at, ended, run_start, run_end)
        if lifetime <= 0 and not (run_start <= record.created_at < run_end):
            continue
        hourly = prices.hourly(record.region) if prices is not None else None
        lives.append(InstanceLife(
            id=record.id, node=record.node, region=record.region, launched_at=record.created_at,
            terminated_at=record.terminated_at,
            launched_in_run=not record.preexisting and run_start <= record.created_at < run_end,
            lifetime_in_run_s=round(lifetime, 3),
            spend=None if hourly is None else round(lifetime / 3600.0 * hourly, 9),
        ))
    return lives


def cost_figures(
    samples: pd.DataFrame,
    phases: Mapping[str, tuple[float, float]],
    faults: Sequence[tuple[str, float, float | None]],
    calls: list[ProxyCall] | None,
    tiers_of_routes: Mapping[str, str],
    instances: list[InstanceRecord] | None,
    prices: PriceTable | None,
) -> CostFigures:
    """Counts and spend per phase, amplification per fault (its onset to its revert, else the end
    of the data), the instances' lifetimes within the run, and the extra spend over baseline."""
    proxy_calls = calls or []
    notes: list[str] = []
    if calls is None:
        notes.append("no HTTP fault proxy call log: every tier's upstream calls are the answers it served")
    if instances is None:
        notes.append("no instance record (cost.instances_url): GPU instance-hours not counted")
    if prices is None:
        notes.append("no prices (cost.tiers / cost.prices): counts only")
    unknown = sorted({c.proxy for c in proxy_calls} - set(tiers_of_routes))
    tiers_of_routes = {**{route: route for route in unknown}, **tiers_of_routes}
    if unknown:
        notes.append(f"no answer named the tier behind proxy route(s) {', '.join(unknown)}: their calls are "
                     "counted under the route's name (say it with cost.routes)")
    run_start = min(s for s, _ in phases.values()) if phases else 0.0
    run_end = max(e for _, e in phases.values()) if phases else 0.0
    lives = _instance_lives(instances or [], run_start, run_end, prices)
    per_phase: dict[str, PhaseCost] = {}
    for name, (start, end) in phases.items():
        tiers = _tier_counts(samples, proxy_calls, tiers_of_routes, start, end, prices)
        requests = len(_window(samples, "start", start, end)) if not samples.empty else 0
        upstream = sum(t.upstream_calls for t in tiers.values())
        hours: dict[str, float] = {}
        gpu_spend = 0.0
        gpu_priced = False
        for record in instances or []:
            ended = record.terminated_at if record.terminated_at is not None else run_end
            seconds = _overlap_s(record.created_at, ended, start, end)
            if seconds <= 0:
                continue
            hours[record.region] = hours.get(record.region, 0.0) + seconds / 3600.0
            hourly = prices.hourly(record.region) if prices is not None else None
            if hourly is not None:
                gpu_spend += seconds / 3600.0 * hourly
                gpu_priced = True
        spend: float | None = None
        if prices is not None:
            spend = sum(t.spend or 0.0 for t in tiers.values()) + gpu_spend
            if gpu_priced:  # the pool's instances are paid for whether or not it served
                t = tiers.get(GPU_TIER) or TierCount(0, "answers served", 0, 0, 0, 0.0)
                tiers[GPU_TIER] = TierCount(t.upstream_calls, t.source, t.answers, t.output_tokens,
                                            t.tokens_wasted, round((t.spend or 0.0) + gpu_spend, 9))
        per_phase[name] = PhaseCost(
            phase=name, duration_s=round(end - start, 6), client_requests=requests, upstream_calls=upstream,
            amplification=round(upstream / requests, 4) if requests else None, tiers=tiers,
            instance_hours={r: round(h, 9) for r, h in sorted(hours.items())},
            spend=None if spend is None else round(spend, 9),
            cost_per_1k_requests=None if spend is None or not requests else round(spend / requests * 1000.0, 9),
        )
    fault_costs = []
    for name, onset, reverted in faults:
        end = reverted if reverted is not None else run_end
        tiers = _tier_counts(samples, proxy_calls, tiers_of_routes, onset, end, None)
        requests = len(_window(samples, "start", onset, end)) if not samples.empty else 0
        upstream = sum(t.upstream_calls for t in tiers.values())
        statuses: dict[str, int] = {}
        for call in proxy_calls:
            if onset <= call.at < end:
                key = "unanswered" if call.status is None else str(call.status)
                statuses[key] = statuses.get(key, 0) + 1
        fault_costs.append(FaultCost(
            name=name, start=onset, end=end, client_requests=requests, upstream_calls=upstream,
            amplification=round(upstream / requests, 4) if requests else None,
            calls_by_tier={tier: t.upstream_calls for tier, t in tiers.items()}, proxy_statuses=statuses,
        ))
    extra: float | None = None
    rate_per_s: float | None = None
    baseline = per_phase.get("baseline")
    if baseline is not None and baseline.spend is not None and baseline.duration_s > 0:
        rate_per_s = baseline.spend / baseline.duration_s
        extra = sum((p.spend or 0.0) - rate_per_s * p.duration_s for n, p in per_phase.items() if n != "baseline")
    return CostFigures(
        phases=per_phase, faults=fault_costs, instances=lives, priced=prices is not None,
        currency=prices.currency if prices is not None else None,
        example_prices=bool(prices is not None and prices.example),
        extra_spend=None if extra is None else round(extra, 9),
        baseline_spend_per_hour=None if rate_per_s is None else round(rate_per_s * 3600.0, 9),
        proxy_counted=calls is not None, instances_counted=instances is not None, notes=notes,
    )


def cost_objectives(
    max_retry_amplification: float | None,
    cost_bound: tuple[float | None, float | None],
    figures: CostFigures | None,
) -> list[ObjectiveResult]:
    """``max_retry_amplification``: the worst fault's upstream calls per client request (the
    fault phase's without an applied fault); ``max_cost_per_1k_requests``: the fault phase's spend
    per 1,000 client requests, against money or a factor of the baseline's."""
    results: list[ObjectiveResult] = []
    if max_retry_amplification is not None:
        name = "max_retry_amplification"
        worst = _worst_amplification(figures)
        if worst is None:
            results.append(ObjectiveResult(name, max_retry_amplification, None, False,
                                           "no client request in a fault's window"))
        else:
            value, where = worst
            results.append(ObjectiveResult(name, max_retry_amplification, value, value <= max_retry_amplification,
                                           where))
    absolute, factor = cost_bound
    if absolute is not None or factor is not None:
        name = "max_cost_per_1k_requests"
        fault = figures.phases.get("fault") if figures is not None else None
        measured = fault.cost_per_1k_requests if fault is not None else None
        target: float | str = absolute if absolute is not None else f"{factor:g}x baseline"
        limit = absolute
        note = None
        if factor is not None:
            base = figures.phases.get("baseline") if figures is not None else None
            base_cost = base.cost_per_1k_requests if base is not None else None
            limit = None if base_cost is None else factor * base_cost
            note = None if limit is None else f"{factor:g} x baseline {base_cost:.6g} = {limit:.6g}"
        if measured is None or limit is None:
            why = "no prices" if figures is None or not figures.priced else "no client request in the phase"
            results.append(ObjectiveResult(name, target, None, False, why))
        else:
            results.append(ObjectiveResult(name, target, round(measured, 9), measured <= limit + 1e-12, note))
    return results


def _worst_amplification(figures: CostFigures | None) -> tuple[float, str] | None:
    if figures is None:
        return None
    measured: list[tuple[float, str]] = [
        (f.amplification, f"fault {f.name}: {f.upstream_calls} upstream calls / {f.client_requests} client requests")
        for f in figures.faults if f.amplification is not None
    ]
    phase = figures.phases.get("fault")
    if not measured and phase is not None and phase.amplification is not None:
        measured = [(phase.amplification, f"fault phase: {phase.upstream_calls} upstream calls / "
                     f"{phase.client_requests} client requests")]
    return max(measured, key=lambda m: m[0]) if measured else None


def live_amplification(calls: int, requests: int) -> float | None:
    """Upstream calls per client request over a live window (the stop condition's figure)."""
    return None if requests <= 0 else calls / requests
