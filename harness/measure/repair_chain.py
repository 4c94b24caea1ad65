"""The Kubernetes repair chain of one fault, from the links its watches journaled (pure).

A node loss runs: node NotReady -> NoExecute taint -> pods evicted -> replacements scheduled ->
replacements Ready. Each link's instant is when its watch event arrived on this host (one
clock with the onset); the API server's own timestamp (whole seconds) is kept beside it, and
their largest gap is reported as ``api_gap_s``. ``reschedule_s`` is onset -> the instant the
last needed replacement was Ready (as many replacements as pods evicted); None when pods were
evicted and not all replaced while the watch ran. ``min_ready`` is each service's fewest ready
replicas while the fault was applied. ``replacement_regions`` says in which region (the node's
``topology.kubernetes.io/region``) each replacement became Ready: a region that refuses capacity
shows its work landing in the other one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.measure.objectives import ObjectiveResult

__all__ = ["API_RESOLUTION_S", "ChainInput", "LinkInput", "RepairChain", "chain_objectives", "fewest_note",
           "repair_chain"]

API_RESOLUTION_S = 1.0
"""Kubernetes object timestamps (metav1.Time) serialise to whole seconds."""


@dataclass(frozen=True)
class LinkInput:
    link: str
    at: float
    object: str
    api_at: float | None = None
    node: str | None = None
    detail: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class ChainInput:
    fault: str
    type: str
    onset_at: float | None
    onset_uncertainty_s: float | None
    reverted_at: float | None
    links: list[LinkInput]
    replicas: list[tuple[float, str, int, int]]  # (at, service, ready, desired)


@dataclass
class RepairChain:
    fault: str
    type: str
    onset_at: float | None
    first_s: dict[str, float] = field(default_factory=dict)  # link -> first instant after onset
    evicted: int = 0
    replaced: int = 0
    reschedule_s: float | None = None
    scheduled_s: float | None = None
    min_ready: dict[str, int] = field(default_factory=dict)
    desired: dict[str, int] = field(default_factory=dict)
    pending: list[LinkInput] = field(default_factory=list)  # unschedulable, with the scheduler's message
    refused: list[LinkInput] = field(default_factory=list)  # create refused, with the quota's message
    replacement_nodes: dict[str, str] = field(default_factory=dict)
    replacement_regions: dict[str, str] = field(default_factory=dict)  # pod -> its node's region
    api_gap_s: float | None = None
    resolution_s: float = API_RESOLUTION_S
    links: list[LinkInput] = field(default_factory=list)


def repair_chain(chain: ChainInput) -> RepairChain:
    onset = chain.onset_at
    links = sorted(chain.links, key=lambda link: link.at)
    made = RepairChain(fault=chain.fault, type=chain.type, onset_at=onset, links=links,
                       resolution_s=API_RESOLUTION_S + (chain.onset_uncertainty_s or 0.0))
    if onset is None:
        return made
    for link in links:
        made.first_s.setdefault(link.link, link.at - onset)
    evicted = [link for link in links if link.link == "evicted"]
    ready = [link for link in links if link.link == "ready"]
    scheduled = {link.object: link for link in links if link.link == "scheduled"}
    made.evicted = len(evicted)
    made.replaced = len(ready)
    made.replacement_nodes = {link.object: link.node or "" for link in ready}
    made.replacement_regions = {link.object: link.region for link in ready if link.region}
    if evicted and len(ready) >= len(evicted):
        needed = ready[len(evicted) - 1]
        made.reschedule_s = needed.at - onset
        placed = [scheduled[link.object].at for link in ready[: len(evicted)] if link.object in scheduled]
        made.scheduled_s = max(placed) - onset if placed else None
    made.pending = [link for link in links if link.link == "unschedulable"]
    made.refused = [link for link in links if link.link == "create_refused"]
    gaps = [abs(link.at - link.api_at) for link in links if link.api_at is not None]
    made.api_gap_s = max(gaps) if gaps else None
    end = chain.reverted_at if chain.reverted_at is not None else float("inf")
    for at, service, ready_n, desired in sorted(chain.replicas):
        if at > end:
            continue
        made.desired[service] = desired
        made.min_ready[service] = min(made.min_ready.get(service, ready_n), ready_n)
    return made


def chain_objectives(chains: list[RepairChain], max_reschedule_s: float | None,
                     min_ready_replicas: int | None) -> list[ObjectiveResult]:
    """``max_reschedule_s`` (the slowest chain; a chain whose evicted pods were not all replaced
    fails it) and ``min_ready_replicas`` (the fewest ready replicas of any service)."""
    results: list[ObjectiveResult] = []
    if max_reschedule_s is not None:
        moved = [c for c in chains if c.evicted]
        missing = [c.fault for c in moved if c.reschedule_s is None]
        if missing:
            results.append(ObjectiveResult("max_reschedule_s", max_reschedule_s, None, False,
                                           f"evicted pods not all replaced Ready: {', '.join(missing)}"))
        elif not moved:
            results.append(ObjectiveResult("max_reschedule_s", max_reschedule_s, None, False,
                                           "no pod was evicted: nothing was rescheduled"))
        else:
            worst = max(c.reschedule_s or 0.0 for c in moved)
            results.append(ObjectiveResult("max_reschedule_s", max_reschedule_s, round(worst, 3),
                                           worst <= max_reschedule_s))
    if min_ready_replicas is not None:
        seen = [n for c in chains for n in c.min_ready.values()]
        if not seen:
            results.append(ObjectiveResult("min_ready_replicas", min_ready_replicas, None, False,
                                           "no Deployment was watched during the faults"))
        else:
            fewest = min(seen)
            passed = fewest >= min_ready_replicas
            results.append(ObjectiveResult("min_ready_replicas", min_ready_replicas, fewest, passed,
                                           None if passed else fewest_note(chains, fewest)))
    return results


def fewest_note(chains: list[RepairChain], fewest: int) -> str:
    """Which services fell to ``fewest`` ready replicas (``ready/desired``, each once), so a
    failed ``min_ready_replicas`` says whose shortfall it was."""
    named: dict[str, str] = {}
    for c in chains:
        for service, ready in c.min_ready.items():
            if ready == fewest:
                named.setdefault(service, f"{service} {ready}/{c.desired.get(service, '?')}")
    return "fewest ready: " + ", ".join(named[s] for s in sorted(named))
