"""The repair chain's figures and objectives from journaled watch links (pure: no cluster)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from harness.measure.repair_chain import ChainInput, LinkInput, chain_objectives, repair_chain
from harness.report.charts import chain_lanes, fault_lanes_svg
from harness.report.html import render_report
from harness.report.terminal import plan_lines
from harness.rundir.journal import utc_iso
from harness.safety.recover import stack_stopped_text
from harness.scenario import load_scenario
from harness.testing.runs import epoch, example_results, example_timeline, typed
from harness.testing.scenarios import fault, line_of, loaded, problem

ONSET = 1000.0


def chain(links: list[LinkInput], replicas: list[tuple[float, str, int, int]] | None = None) -> ChainInput:
    return ChainInput(fault="lose", type="k8s_node_loss", onset_at=ONSET, onset_uncertainty_s=0.02,
                      reverted_at=ONSET + 60, links=links, replicas=replicas or [])


NODE_LOSS = [
    LinkInput("node_not_ready", ONSET + 0.05, "node/a", api_at=ONSET, node="a"),
    LinkInput("taint_added", ONSET + 5.3, "node/a", api_at=ONSET + 5, node="a"),
    LinkInput("evicted", ONSET + 7.4, "pod/ns/p1", api_at=ONSET + 7, node="a"),
    LinkInput("evicted", ONSET + 7.5, "pod/ns/p2", api_at=ONSET + 7, node="a"),
    LinkInput("scheduled", ONSET + 7.45, "pod/ns/r1", node="b"),
    LinkInput("ready", ONSET + 7.46, "pod/ns/r1", node="b"),
    LinkInput("scheduled", ONSET + 7.6, "pod/ns/r2", node="c"),
    LinkInput("ready", ONSET + 7.9, "pod/ns/r2", node="c"),
]


def test_each_link_and_the_reschedule_time_come_from_the_links() -> None:
    made = repair_chain(chain(NODE_LOSS, [(ONSET - 1, "svc", 4, 4), (ONSET + 7.4, "svc", 2, 4),
                                          (ONSET + 7.9, "svc", 4, 4), (ONSET + 61, "svc", 0, 4)]))
    assert round(made.first_s["node_not_ready"], 2) == 0.05 and round(made.first_s["taint_added"], 2) == 5.3
    assert (made.evicted, made.replaced) == (2, 2)
    assert made.reschedule_s is not None and round(made.reschedule_s, 2) == 7.9  # the second replacement Ready
    assert made.replacement_nodes == {"pod/ns/r1": "b", "pod/ns/r2": "c"}
    assert made.min_ready == {"svc": 2}  # the dip after the revert is not the fault's
    assert made.api_gap_s is not None and round(made.api_gap_s, 2) == 0.5
    assert round(made.resolution_s, 2) == 1.02


def test_objectives_pass_and_fail_on_the_chain() -> None:
    made = repair_chain(chain(NODE_LOSS, [(ONSET, "svc", 2, 4)]))
    passed = {o.name: o for o in chain_objectives([made], 10.0, 2)}
    assert passed["max_reschedule_s"].passed and passed["min_ready_replicas"].passed
    failed = {o.name: o for o in chain_objectives([made], 5.0, 3)}
    assert not failed["max_reschedule_s"].passed and failed["min_ready_replicas"].measured == 2


def test_evicted_pods_not_all_replaced_fail_max_reschedule() -> None:
    made = repair_chain(chain(NODE_LOSS[:5]))  # one replacement Ready of two evicted
    assert made.reschedule_s is None
    (objective,) = chain_objectives([made], 60.0, None)
    assert not objective.passed and objective.measured is None and "not all replaced" in (objective.note or "")


def test_refusals_and_pending_pods_keep_the_clusters_reason() -> None:
    links = [LinkInput("create_refused", ONSET + 1, "replicaset/ns/rs", detail="exceeded quota: drill-q"),
             LinkInput("unschedulable", ONSET + 2, "pod/ns/p", detail="0/4 nodes are available")]
    made = repair_chain(chain(links))
    assert [r.detail for r in made.refused] == ["exceeded quota: drill-q"]
    assert [p.detail for p in made.pending] == ["0/4 nodes are available"]


def test_the_dry_run_plan_lists_the_chain_objectives_and_the_cluster() -> None:
    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "k8s" / "node-loss.yaml"
    lines = plan_lines(load_scenario(scenario), None)
    assert "stack: kubernetes context kwok-drill, namespace serving" in lines
    (objectives,) = [line for line in lines if line.startswith("objectives:")]
    assert objectives == "objectives: max_reschedule_s ≤ 40.0 s, min_ready_replicas ≥ 3"


def test_recover_names_the_kubectl_proxy_it_stopped_with_its_pid_and_port() -> None:
    groups, endpoints = {"kubectl-proxy": 4242}, {"kubernetes": "kwok-drill/serving",
                                                  "kubectl-proxy": "http://127.0.0.1:18181"}
    assert stack_stopped_text("kubernetes", groups, ["kubectl-proxy"], endpoints) == (
        "stopped the kubernetes runtime's kubectl-proxy (pid 4242, http://127.0.0.1:18181)")
    assert stack_stopped_text("kubernetes", groups, [], endpoints) == (
        "the kubernetes runtime's kubectl-proxy (pid 4242, http://127.0.0.1:18181) no longer running")
    assert stack_stopped_text("local", {"gateway": 7, "toxiproxy": 8}, ["gateway"], {}) == (
        "local stack stopped (1 process groups were still running)")


LANES_TITLE = "Fault lanes and repair chains: each fault, and each link of the repair, beside the error rate"


def with_chain() -> dict[str, Any]:
    """The example run whose first fault carries a node-loss repair chain (two pods evicted,
    replaced on region-b), as results.json writes it."""
    document = example_results()
    fault = document["faults"][0]
    onset = epoch(fault["onset_at"])
    links = [("node_not_ready", 0.04, "node/gpu-a-1"), ("taint_added", 5.35, "node/gpu-a-1"),
             ("evicted", 7.41, "pod/ns/p1"), ("evicted", 7.42, "pod/ns/p2"), ("scheduled", 7.44, "pod/ns/r1"),
             ("ready", 7.44, "pod/ns/r1"), ("scheduled", 7.45, "pod/ns/r2"), ("ready", 7.5, "pod/ns/r2")]
    document["repair_chains"] = [{
        "fault": fault["name"], "type": "k8s_node_loss", "onset_at": fault["onset_at"], "node_not_ready_s": 0.04,
        "taint_added_s": 5.35, "evicted_s": 7.41, "scheduled_s": 7.45, "reschedule_s": 7.5, "evicted": 2,
        "replaced": 2, "min_ready_replicas": {"gpu-serve": 2}, "desired_replicas": {"gpu-serve": 4},
        "pending": [], "refused": [], "replacement_nodes": {"pod/ns/r1": "gpu-b-1", "pod/ns/r2": "gpu-b-2"},
        "api_gap_s": 0.5, "resolution_s": 1.02,
        "links": [{"link": kind, "object": obj, "at": utc_iso(onset + after), "after_onset_s": after}
                  for kind, after, obj in links],
    }]
    return document


def test_each_link_of_the_chain_is_an_instant_on_its_own_lane() -> None:
    document = with_chain()
    results = typed(document)
    (lane,) = chain_lanes(results)
    origin = epoch(document["phases"]["baseline"]["start"])
    assert lane.fault == "provider-down"
    assert abs(lane.onset_s - (epoch(document["faults"][0]["onset_at"]) - origin)) < 1e-6
    assert lane.kinds == ["node_not_ready", "taint_added", "evicted", "scheduled", "ready"]
    assert [kind for _, kind, _ in lane.links].count("ready") == 2
    assert abs(lane.links[1][0] - lane.onset_s - 5.35) < 1e-3 and lane.reschedule_s == 7.5
    assert lane.reverted_s is not None and abs(lane.reverted_s - (epoch(document["faults"][0]["reverted_at"]) - origin)) < 1e-6
    svg = fault_lanes_svg(results, example_timeline(document))
    assert 'aria-label="Fault lanes and repair chains beside the error rate"' in svg
    for text in ("repair chain", "node not ready", "taint added", "+5.35 s", "+7.41 s", "rescheduled in 7.50 s",
                 "repair-chain link"):
        assert text in svg, text


def test_the_report_draws_the_chain_lane_only_for_a_run_with_a_chain() -> None:
    document = with_chain()
    assert LANES_TITLE in render_report(typed(document), example_timeline(document))
    plain = example_results()
    assert LANES_TITLE not in render_report(typed(plain), example_timeline(plain))
    document["repair_chains"][0]["onset_at"] = None  # a fault that never took effect draws no chain
    assert chain_lanes(typed(document)) == []


def test_a_chain_of_refusals_only_and_one_without_links_still_draw() -> None:
    """A quota denial's chain holds refusals and no reschedule; a chain whose watch saw nothing
    has no link: both get a lane, neither breaks the chart."""
    document = with_chain()
    first = document["repair_chains"][0]
    second = document["faults"][1]
    refused = {**first, "fault": second["name"], "type": "k8s_quota_denial", "onset_at": second["onset_at"],
               "reschedule_s": None, "evicted": 0, "replaced": 0,
               "links": [{"link": "create_refused", "object": "replicaset/ns/rs", "after_onset_s": 1.0,
                          "at": utc_iso(epoch(second["onset_at"]) + 1.0), "detail": "exceeded quota: drill-q"}]}
    document["repair_chains"] += [refused, {**refused, "fault": "quiet", "links": []}]
    lanes = chain_lanes(typed(document))
    assert [lane.kinds for lane in lanes] == [["node_not_ready", "taint_added", "evicted", "scheduled", "ready"],
                                              ["create_refused"], []]
    svg = fault_lanes_svg(typed(document), example_timeline(document))
    assert "create refused" in svg and svg.count("rescheduled in") == 1


def test_links_after_the_recovery_phase_stay_on_the_chart() -> None:
    """A quota's replacement can come after the run's last phase (the ReplicaSet's backoff once
    the quota is gone, seen on the real cluster): the axis reaches it, so its label is drawn."""
    document = with_chain()
    chain = document["repair_chains"][0]
    end = epoch(document["phases"]["recovery"]["end"])
    late = end + 4.0 - epoch(chain["onset_at"])
    chain["links"].append({"link": "create_refused", "object": "replicaset/ns/rs", "after_onset_s": late,
                           "at": utc_iso(end + 4.0)})
    svg = fault_lanes_svg(typed(document), example_timeline(document))
    assert f"+{late:.2f} s" in svg


# --- a region that refuses capacity (scenarios/k8s/quota-denial.yaml) ------------------------

REGION_REFUSES = [
    LinkInput("evicted", ONSET + 2.0, "pod/home-a/near-1", node="gpu-a-1", region="region-a"),
    LinkInput("evicted", ONSET + 2.1, "pod/home-a/pinned-1", node="gpu-a-2", region="region-a"),
    LinkInput("evicted", ONSET + 2.2, "pod/region-a/serve-1", node="gpu-a-1", region="region-a"),
    LinkInput("scheduled", ONSET + 2.05, "pod/home-a/near-2", node="gpu-b-1", region="region-b"),
    LinkInput("ready", ONSET + 2.07, "pod/home-a/near-2", node="gpu-b-1", region="region-b"),
    LinkInput("unschedulable", ONSET + 2.15, "pod/home-a/pinned-2",
              detail="0/4 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, "
                     "2 node(s) were unschedulable."),
    LinkInput("create_refused", ONSET + 2.25, "replicaset/region-a/serve-rs",
              detail="exceeded quota: drill-q, requested: requests.nvidia.com/gpu=1"),
]


def test_a_replacement_in_the_other_region_and_the_pending_one_keep_their_region_and_reason() -> None:
    made = repair_chain(chain(REGION_REFUSES, [(ONSET, "near", 3, 3), (ONSET + 2.0, "near", 2, 3),
                                               (ONSET + 2.1, "pinned", 1, 2), (ONSET + 2.2, "region-a/serve", 1, 2)]))
    assert made.replacement_nodes == {"pod/home-a/near-2": "gpu-b-1"}
    assert made.replacement_regions == {"pod/home-a/near-2": "region-b"}
    assert [(p.object, "were unschedulable" in (p.detail or "")) for p in made.pending] == [
        ("pod/home-a/pinned-2", True)]
    assert made.reschedule_s is None  # three evicted, one replaced while the watch ran
    assert made.min_ready == {"near": 2, "pinned": 1, "region-a/serve": 1}


def test_a_failed_min_ready_names_whose_shortfall_it_was() -> None:
    made = repair_chain(chain(REGION_REFUSES, [(ONSET, "near", 2, 3), (ONSET + 2.1, "pinned", 1, 2),
                                               (ONSET + 2.2, "region-a/serve", 1, 2)]))
    (objective,) = chain_objectives([made, made], None, 2)
    assert not objective.passed and objective.measured == 1
    assert objective.note == "fewest ready: pinned 1/2, region-a/serve 1/2"


def test_the_report_shows_each_links_node_with_its_region() -> None:
    document = with_chain()
    document["repair_chains"][0]["links"][4].update(node="gpu-b-1", region="region-b")
    document["repair_chains"][0]["replacement_regions"] = {"pod/ns/r1": "region-b"}
    page = render_report(typed(document), example_timeline(document))
    assert "gpu-b-1 (region-b)" in page and "node (region)" in page


def test_a_pod_kill_takes_a_namespace_and_a_node_selector_and_refuses_a_bad_one(tmp_path: Path) -> None:
    (spec,) = loaded(tmp_path, fault("k8s_pod_kill", "{service: gpu-serve}", "namespace: region-a",
                                     "on_nodes: topology.kubernetes.io/region=region-a"))
    assert spec.parameters() == {"max_targets": 1, "grace_period_s": 0, "namespace": "region-a",
                                 "on_nodes": "topology.kubernetes.io/region=region-a"}
    (cordon,) = loaded(tmp_path, fault("k8s_node_loss", "{labels: {topology.kubernetes.io/region: region-a}}",
                                       "mode: cordon", "count: 2"))
    assert cordon.parameters() == {"mode": "cordon", "count": 2}
    path, message = problem(tmp_path, fault("k8s_pod_kill", "{service: gpu-serve}", "on_nodes: 'region in (a)'"))
    assert message.startswith(f"{path}:{line_of(path, 'on_nodes')} faults[0].on_nodes: ")
    assert "key=value[,key=value]" in message and "'region in (a)'" in message
    path, message = problem(tmp_path, fault("k8s_node_loss", "{labels: {a: b}}", "mode: evict"))
    assert "faults[0].mode" in message


def test_the_shipped_quota_denial_drill_models_the_region_both_ways() -> None:
    """The quota (admission refuses the region's creates) and the cordon (the scheduler places
    nothing there) over the same ten seconds, and the three region-a pods that die."""
    scenario = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "k8s" / "quota-denial.yaml")
    faults = {f.name: f.parameters() for f in scenario.spec.faults}
    assert faults["region-a-no-gpus"] == {"namespace": "region-a", "resource": "nvidia.com/gpu", "limit": 0}
    assert faults["region-a-full"] == {"mode": "cordon", "count": 2}
    assert faults["kill-near"]["on_nodes"] == "topology.kubernetes.io/region=region-a"
    assert faults["kill-region-a"]["namespace"] == "region-a"


def test_the_event_watch_links_the_schedulers_reason_and_skips_an_earlier_runs_events(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The namespace's kept events come back as ADDED on the watch's first list: an event older
    than the watch is an earlier run's and links nothing; a FailedScheduling of a pod made since
    is the scheduler's reason for it; a FailedCreate over a quota is the refusal."""
    from kubernetes import client

    import harness.faults.kubernetes as kube

    watch = kube.ChainWatch(cast(Any, SimpleNamespace(core=SimpleNamespace(list_namespaced_event=None))),
                            "region-a-full", None, [], ["home-a"])
    watch.started_at = ONSET
    watch.before = {"home-a/old-pod"}

    def event(reason: str, name: str, at: float, message: str, kind: str = "Pod") -> Any:
        return client.CoreV1Event(involved_object=client.V1ObjectReference(kind=kind, name=name),
                                  metadata=client.V1ObjectMeta(name=f"{name}.1"), reason=reason, message=message,
                                  event_time=datetime.fromtimestamp(at, UTC))

    reason = "0/4 nodes are available: 2 node(s) were unschedulable."
    events = [event("FailedScheduling", "gone-pod", ONSET - 600, "an hour-old reason"),
              event("FailedCreate", "rs-old", ONSET - 5, "exceeded quota: drill-old", kind="ReplicaSet"),
              event("FailedScheduling", "old-pod", ONSET + 1, "a pod from before the fault"),
              event("FailedScheduling", "new-pod", ONSET + 2, reason),
              event("FailedScheduling", "new-pod", ONSET + 3, reason + " (a retry)"),
              event("FailedCreate", "rs", ONSET + 2, "exceeded quota: drill-q", kind="ReplicaSet")]
    monkeypatch.setattr(kube, "_stream", lambda *args, **kwargs: iter([("ADDED", e) for e in events]))
    watch._watch_events("home-a", threading.Event())
    assert [(link.link, link.object, link.detail, link.api_at) for link in watch.links] == [
        ("unschedulable", "pod/home-a/new-pod", reason, ONSET + 2),
        ("create_refused", "replicaset/home-a/rs", "exceeded quota: drill-q", ONSET + 2)]


def test_the_replicaset_watch_links_a_refusal_from_its_condition_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ReplicaSet's ReplicaFailure condition is the refusal when the controller-manager dropped
    its FailedCreate events (25 an object, then one each 5 minutes): set since the watch began,
    over a quota, it links once; an older one, another failure or a cleared one links nothing."""
    from kubernetes import client

    import harness.faults.kubernetes as kube

    watch = kube.ChainWatch(cast(Any, SimpleNamespace(apps=SimpleNamespace(list_namespaced_replica_set=None))),
                            "region-a-no-gpus", None, [], ["region-a"])
    watch.started_at = ONSET
    quota = 'pods "gpu-serve-5b-x" is forbidden: exceeded quota: drill-q, requested: requests.nvidia.com/gpu=1'

    def replicaset(name: str, at: float, message: str = quota, status: str = "True",
                   reason: str = "FailedCreate") -> Any:
        condition = client.V1ReplicaSetCondition(type="ReplicaFailure", status=status, reason=reason, message=message,
                                                 last_transition_time=datetime.fromtimestamp(at, UTC))
        return client.V1ReplicaSet(metadata=client.V1ObjectMeta(name=name),
                                   status=client.V1ReplicaSetStatus(replicas=1, conditions=[condition]))

    sets = [replicaset("rs-old", ONSET - 5), replicaset("rs-other", ONSET + 1, message="pods are forbidden: no"),
            replicaset("rs-cleared", ONSET + 1, status="False"), replicaset("rs-delete", ONSET + 1, reason="FailedDelete"),
            replicaset("rs", ONSET + 2), replicaset("rs", ONSET + 2)]
    monkeypatch.setattr(kube, "_stream", lambda *args, **kwargs: iter([("MODIFIED", rs) for rs in sets]))
    watch._watch_replicasets("region-a", threading.Event())
    assert [(link.link, link.object, link.detail, link.api_at) for link in watch.links] == [
        ("create_refused", "replicaset/region-a/rs", quota, ONSET + 2)]


def test_a_link_carries_its_nodes_region() -> None:
    import harness.faults.kubernetes as kube

    watch = kube.ChainWatch(cast(Any, SimpleNamespace()), "kill-near", None, [], ["home-a"])
    watch.regions = {"gpu-b-1": "region-b", "odd-node": ""}
    watch.link("ready", "pod/home-a/near-2", node="gpu-b-1")
    watch.link("ready", "pod/home-a/near-3", node="odd-node")
    watch.link("ready", "pod/home-a/near-2", node="gpu-b-1")  # one link per object
    assert [(link.object, link.region) for link in watch.links] == [("pod/home-a/near-2", "region-b"),
                                                                    ("pod/home-a/near-3", None)]


def test_a_passed_min_ready_has_no_note() -> None:
    made = repair_chain(chain(REGION_REFUSES, [(ONSET, "near", 2, 3), (ONSET + 2.1, "pinned", 1, 2)]))
    (objective,) = chain_objectives([made], None, 1)
    assert objective.passed and objective.note is None
