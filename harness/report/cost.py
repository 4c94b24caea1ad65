"""What the failover cost, as people read it (docs/cost.md): the terminal lines and the HTML
section's rows. Renders ``results.cost``; computes nothing (harness/measure/cost.py does)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.results.model import CostResult, RunResults

__all__ = ["CostRow", "InstanceRow", "cost_lines", "cost_rows", "instance_rows", "spend_question"]


def _amplification(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def cost_lines(results: RunResults) -> list[str]:
    """The terminal's cost lines: amplification per fault with the counts it comes from, spend
    per 1,000 requests in the fault phase beside the baseline's, the extra spend, instances."""
    cost = results.cost
    if cost is None:
        return []
    lines = []
    for fault in cost.faults:
        tiers = ", ".join(f"{tier} {calls}" for tier, calls in sorted(fault.calls_by_tier.items()))
        lines.append(f"cost: {fault.name}: retry amplification {_amplification(fault.amplification)} "
                     f"({fault.upstream_calls} upstream calls / {fault.client_requests} client requests; "
                     f"{tiers or 'no upstream call'})")
    if cost.priced:
        base, fault_phase = cost.phases.get("baseline"), cost.phases.get("fault")
        per_1k = (f"{cost.money(fault_phase.cost_per_1k_requests if fault_phase else None)} per 1k requests "
                  f"in the fault phase (baseline {cost.money(base.cost_per_1k_requests if base else None)})")
        extra = f"; extra spend over baseline {cost.money(cost.extra_spend)}"
        lines.append(f"cost: {per_1k}{extra}" + (" (example prices)" if cost.example_prices else ""))
    launched = [i for i in cost.instances if i.launched_in_run]
    for instance in launched:
        lines.append(f"cost: instance {instance.id} ({instance.node}) launched in {instance.region}, "
                     f"{instance.lifetime_in_run_s:.1f} s in the run" +
                     (f", {cost.money(instance.spend)}" if instance.spend is not None else ""))
    return lines


@dataclass(frozen=True)
class CostRow:
    """One phase and tier of the report's "What it cost" table, with the counts behind it."""

    phase: str
    tier: str
    client_requests: str
    upstream_calls: str
    source: str
    amplification: str
    tokens: str
    tokens_wasted: str
    spend: str


@dataclass(frozen=True)
class InstanceRow:
    id: str
    node: str
    region: str
    launched_at: str
    terminated_at: str
    launched_in_run: str
    lifetime: str
    spend: str


def cost_rows(cost: CostResult) -> list[CostRow]:
    """Per phase, a total row then one row per tier."""
    rows: list[CostRow] = []
    for name, phase in cost.phases.items():
        hours = ", ".join(f"{region} {h * 3600:.1f} instance-s" for region, h in phase.instance_hours.items())
        rows.append(CostRow(
            phase=name, tier="all", client_requests=str(phase.client_requests),
            upstream_calls=str(phase.upstream_calls), source=f"GPU instances: {hours}" if hours else "",
            amplification=_amplification(phase.amplification),
            tokens=str(sum(t.output_tokens for t in phase.tiers.values())),
            tokens_wasted=str(sum(t.tokens_wasted for t in phase.tiers.values())),
            spend=cost.money(phase.spend) + (f" ({cost.money(phase.cost_per_1k_requests)} per 1k)"
                                             if phase.cost_per_1k_requests is not None else ""),
        ))
        for tier, count in phase.tiers.items():
            rows.append(CostRow(
                phase="", tier=tier, client_requests=f"{count.answers} answered",
                upstream_calls=str(count.upstream_calls), source=count.source, amplification="",
                tokens=str(count.output_tokens), tokens_wasted=str(count.tokens_wasted), spend=cost.money(count.spend),
            ))
    return rows


def instance_rows(cost: CostResult) -> list[InstanceRow]:
    return [InstanceRow(
        id=i.id, node=i.node, region=i.region, launched_at=i.launched_at, terminated_at=i.terminated_at or "running",
        launched_in_run="yes" if i.launched_in_run else "before the run", lifetime=f"{i.lifetime_in_run_s:.1f} s",
        spend=cost.money(i.spend),
    ) for i in cost.instances]


def spend_question(results: RunResults) -> str | None:
    """The tabletop inject a cost finding raises: who approves this spend?"""
    cost = results.cost
    if cost is None:
        return None
    worst = cost.worst_amplification
    parts = []
    if cost.extra_spend is not None and cost.extra_spend > 0:
        parts.append(f"the failover spent {cost.money(cost.extra_spend)} over the baseline's rate")
    launched = [i for i in cost.instances if i.launched_in_run]
    if launched:
        regions = ", ".join(sorted({i.region for i in launched}))
        parts.append(f"{len(launched)} instance(s) were launched in {regions}")
    if worst is not None and worst.amplification is not None and worst.amplification > 1.2:
        parts.append(f"the provider got {worst.amplification:.2f} calls per client request during {worst.name}")
    if not parts:
        return None
    return "; ".join(parts) + ". Who approves this spend, and at what amount must they be asked?"
