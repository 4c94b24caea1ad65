"""results.json ``repair_chains``: the Kubernetes faults' repair chains, from the journal's
``k8s.chain_link`` and ``k8s.replicas`` records (harness/faults/kubernetes.py wrote them) through
harness/measure/repair_chain.py, and their objectives (``max_reschedule_s``,
``min_ready_replicas``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.measure.objectives import ObjectiveResult
from harness.measure.repair_chain import ChainInput, LinkInput, RepairChain, chain_objectives, repair_chain
from harness.results.model import RepairChainLink, RepairChainResult
from harness.rundir import journal_path
from harness.rundir.events import KubeChainLink, KubeReplicas
from harness.rundir.journal import read_journal, utc_iso
from harness.scenario.model import Scenario

__all__ = ["repair_chain_figures"]


def repair_chain_figures(run_dir: Path, faults: dict[str, dict[str, Any]], scenario: Scenario
                         ) -> tuple[list[RepairChainResult], list[ObjectiveResult]]:
    """Each Kubernetes fault's chain and the chain objectives (both empty without such faults)."""
    links: dict[str, list[LinkInput]] = {}
    replicas: dict[str, list[tuple[float, str, int, int]]] = {}
    for record in read_journal(journal_path(run_dir)):
        match record.event:
            case KubeChainLink() as e:
                links.setdefault(e.fault, []).append(LinkInput(
                    link=e.link, at=e.seen_at, object=e.object, api_at=e.api_at, node=e.node, detail=e.detail,
                    region=e.region))
            case KubeReplicas() as e:
                replicas.setdefault(e.fault, []).append((e.seen_at, e.service, e.ready, e.desired))
    chains: list[RepairChain] = []
    for fault in faults.values():
        if not str(fault.get("type", "")).startswith("k8s_"):
            continue
        name = str(fault["name"])
        chains.append(repair_chain(ChainInput(
            fault=name, type=str(fault["type"]), onset_at=fault.get("onset_at"),
            onset_uncertainty_s=fault.get("onset_uncertainty_s"), reverted_at=fault.get("reverted_at"),
            links=links.get(name, []), replicas=replicas.get(name, []),
        )))
    o = scenario.objectives
    objectives = chain_objectives(chains, o.max_reschedule_s, o.min_ready_replicas) if chains else []
    if not chains and (o.max_reschedule_s is not None or o.min_ready_replicas is not None):
        objectives = chain_objectives([], o.max_reschedule_s, o.min_ready_replicas)
    return [_result(c) for c in chains], objectives


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _link(link: LinkInput, onset: float | None) -> RepairChainLink:
    made = RepairChainLink(link=link.link, object=link.object, at=utc_iso(link.at),
                           after_onset_s=_r(link.at - onset) if onset is not None else None)
    if link.api_at is not None:
        made.api_at = utc_iso(link.api_at)
    if link.node:
        made.node = link.node
    if link.region:
        made.region = link.region
    if link.detail:
        made.detail = link.detail
    return made


def _result(c: RepairChain) -> RepairChainResult:
    return RepairChainResult(
        fault=c.fault, type=c.type, onset_at=utc_iso(c.onset_at) if c.onset_at is not None else None,
        node_not_ready_s=_r(c.first_s.get("node_not_ready")), taint_added_s=_r(c.first_s.get("taint_added")),
        evicted_s=_r(c.first_s.get("evicted")), scheduled_s=_r(c.scheduled_s), reschedule_s=_r(c.reschedule_s),
        evicted=c.evicted, replaced=c.replaced, min_ready_replicas=c.min_ready, desired_replicas=c.desired,
        pending=[_link(link, c.onset_at) for link in c.pending],
        refused=[_link(link, c.onset_at) for link in c.refused],
        replacement_nodes=c.replacement_nodes, replacement_regions=c.replacement_regions,
        api_gap_s=_r(c.api_gap_s), resolution_s=round(c.resolution_s, 3),
        links=[_link(link, c.onset_at) for link in c.links],
    )
