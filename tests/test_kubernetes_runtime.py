"""The ``kubernetes`` runtime and its faults through the API, on the real control plane of
scripts/k8s-setup (kube-apiserver, etcd, scheduler, controller-manager; kwok nodes): drills run
with `drill run`, their repair chains read back from results.json, kill -9 then `drill recover`,
and drill running as the least-privilege service account of deploy/k8s/rbac.yaml.

Needs the binaries (`scripts/k8s-setup`) and the `kubernetes` extra: fails under CI=true when
either is missing, skips elsewhere. One throwaway cluster on random 127.0.0.1 ports for the
module, deleted on every exit path; run under the heavy lock:
    heavy .venv/bin/pytest tests/test_kubernetes_runtime.py

The drills' phases are short (a 2-3 s baseline, a fault of 6-25 s): the verdicts and links
asserted hold at any length once the fault outlasts the chain (NotReady -> taint waits for the
controller's next look at the nodes, every 5 s on this cluster: 4.4 s and 8.7 s measured,
docs/kubernetes.md). No timing is asserted; the agreement bound is the stated resolution (API
timestamps are whole seconds).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.testing import REPO, free_port
from harness.testing.drills import DRILL, start_drill, wait_event
from harness.testing.kube import KubeTestCluster, gpu_deployment, kube_cluster, kube_scenario, wait_until

# Its drills run beside the suite's two drill slots, not in one (tests/conftest.py): a kwok drill
# waits on the cluster's controllers and needs little CPU (docs/pytest.md).
pytestmark = [pytest.mark.kubernetes, pytest.mark.beside_drills]

NODE_LOSS = """  - name: lose-a-node
    type: k8s_node_loss
    target: {labels: {topology.kubernetes.io/region: region-a}}
    mode: not_ready"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeTestCluster]:
    with kube_cluster("drill-rt") as made:
        yield made


def core(cluster: KubeTestCluster) -> Any:
    from kubernetes import client

    return client.CoreV1Api(cluster.api())


def status(cluster: KubeTestCluster, namespace: str, kubeconfig: Path | None = None,
           context: str | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [*DRILL, "stack", "status", "--runtime", "kubernetes", "--file", str(kubeconfig or cluster.kubeconfig),
         "--context", context or cluster.context, "--namespace", namespace, "--node-label", "drill.dev/pool=gpu",
         "--json"], capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def run(scenario: Path, out: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([*DRILL, "run", str(scenario), "--out", str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=240, check=False, env={**os.environ, **(env or {})})
    results_file = out / "results.json"
    assert results_file.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    results: dict[str, Any] = json.loads(results_file.read_text())
    return done.returncode, results


def node_clean(cluster: KubeTestCluster, name: str) -> bool:
    """Ready, schedulable, no drill mark, and untainted by a cordon (the node lifecycle
    controller's ``node.kubernetes.io/unschedulable``: drill's revert waits until it is gone)."""
    node = core(cluster).read_node(name)
    ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    marks = [k for k in node.metadata.annotations or {} if k.startswith("drill.dev/")]
    taints = [t.key for t in node.spec.taints or []
              if t.key.startswith("drill.dev/") or t.key == "node.kubernetes.io/unschedulable"]
    return ready and not node.spec.unschedulable and not marks and not taints


def test_validate_refuses_a_kubernetes_stack_without_context(tmp_path: Path) -> None:
    scenario = tmp_path / "no-context.yaml"
    scenario.write_text("""apiVersion: drill/v1
kind: Scenario
name: no-context
stack: {runtime: kubernetes, namespace: serving}
load: {host: http://127.0.0.1:9, users: 0, probe_rate_hz: 5}
faults:
  - {name: kill, type: k8s_pod_kill, target: {service: gpu-serve}}
""")
    done = subprocess.run([*DRILL, "validate", str(scenario)], capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "no-context.yaml:4" in done.stderr + done.stdout and "stack.context" in done.stderr + done.stdout


def test_stack_status_lists_pods_and_gpu_nodes(cluster: KubeTestCluster) -> None:
    gpu_deployment(cluster, "status", "gpu-serve", 2)
    found = status(cluster, "status")
    pods = [m for m in found["services"] if m["kind"] == "pod"]
    nodes = [m for m in found["services"] if m["kind"] == "node"]
    assert len(pods) == 2 and all(p["service"] == "gpu-serve" and p["healthy"] for p in pods)
    assert sorted(n["name"] for n in nodes) == ["gpu-a-1", "gpu-a-2", "gpu-b-1", "gpu-b-2"]
    assert found["active_faults"] == []


@pytest.mark.slow
def test_kill_9_mid_fault_then_recover_all_leaves_the_cluster_clean(cluster: KubeTestCluster,
                                                                    tmp_path: Path) -> None:
    gpu_deployment(cluster, "crash", "gpu-serve", 2)
    faults = NODE_LOSS + """
  - name: deny-gpus
    type: k8s_quota_denial
    namespace: crash
  - name: region-b-full
    type: k8s_node_loss
    target: {labels: {topology.kubernetes.io/region: region-b}}
    mode: cordon
    count: 2"""
    scenario = kube_scenario(tmp_path / "crash.yaml", cluster, "crash", faults,
                             phases="{baseline: 2s, fault: 60s, recovery: 2s}")
    out = tmp_path / "run"
    drill = start_drill(scenario, out)
    try:
        wait_event(drill, out, "fault.applied", lambda r: r.get("fault_id") == "1-deny-gpus")
        wait_event(drill, out, "fault.applied", lambda r: r.get("fault_id") == "0-lose-a-node")
        wait_event(drill, out, "fault.applied", lambda r: r.get("fault_id") == "2-region-b-full")
        drill.send_signal(signal.SIGKILL)
        drill.wait(timeout=10)
    finally:
        if drill.poll() is None:
            drill.kill()
            drill.wait()
    left = status(cluster, "crash")
    assert {f["kind"] for f in left["active_faults"]} == {"k8s_node", "k8s_quota"}, left["active_faults"]
    assert {"node:gpu-a-1", "node:gpu-b-1", "node:gpu-b-2"} <= {f["target"] for f in left["active_faults"]}, left
    assert not node_clean(cluster, "gpu-a-1") and not node_clean(cluster, "gpu-b-1")

    recovered = subprocess.run([*DRILL, "recover", "--all", "--reports-dir", str(tmp_path)], capture_output=True,
                               text=True, cwd=REPO, timeout=120, check=False)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert all(node_clean(cluster, n) for n in ("gpu-a-1", "gpu-a-2", "gpu-b-1", "gpu-b-2"))
    assert core(cluster).list_namespaced_resource_quota("crash").items == []
    assert status(cluster, "crash")["active_faults"] == []
    # The kubectl proxy the killed drill started went with recover too, and recover says so.
    started = [r for r in _journal(out) if r.get("event") == "stack.started"][0]
    groups = started["process_groups"]
    assert (f"stopped the kubernetes runtime's kubectl-proxy (pid {groups['kubectl-proxy']}, "
            f"{started['endpoints']['kubectl-proxy']})") in recovered.stdout, recovered.stdout
    left_running = [stat for stat in (_stat(pgid) for pgid in groups.values()) if stat and stat.split()[0] != "Z"]
    assert not left_running, (left_running, recovered.stdout)


def _stat(pid: int) -> str | None:
    """/proc/PID/stat, None when gone (a zombie, state Z, has stopped: only its parent, here
    this container's init, has yet to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
    except OSError:
        return None


def _journal(run_dir: Path) -> list[dict[str, Any]]:
    from harness.testing.drills import journal_events

    return journal_events(run_dir)


@pytest.mark.slow
def test_drill_runs_as_the_least_privilege_service_account(cluster: KubeTestCluster, tmp_path: Path) -> None:
    gpu_deployment(cluster, "serving", "gpu-serve", 2)
    applied = subprocess.run([cluster.kubectl, "--kubeconfig", str(cluster.kubeconfig), "apply", "-f",
                              str(REPO / "deploy/k8s/rbac.yaml")], capture_output=True, text=True, timeout=60,
                             check=False)
    assert applied.returncode == 0, applied.stderr
    token = subprocess.run([cluster.kubectl, "--kubeconfig", str(cluster.kubeconfig), "-n", "serving", "create",
                            "token", "drill", "--duration=1h"], capture_output=True, text=True, timeout=60,
                           check=True).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    sa_config = tmp_path / "drill-sa.kubeconfig"
    sa_config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
        "users": [{"name": "drill-sa", "user": {"token": token}}],
        "contexts": [{"name": "drill-sa", "context": {"cluster": admin["clusters"][0]["name"], "user": "drill-sa"}}],
        "current-context": "drill-sa",
    }))
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    sa = config.new_client_from_config(config_file=str(sa_config), context="drill-sa")
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(sa).list_namespaced_secret("serving")
    assert refused.value.status == 403  # least privilege: no secrets
    with pytest.raises(ApiException) as elsewhere:
        client.CoreV1Api(sa).list_namespaced_pod("kube-system")
    assert elsewhere.value.status == 403  # pods only in the namespaces bound to it
    with pytest.raises(ApiException):
        client.AppsV1Api(sa).create_namespaced_deployment("serving", client.V1Deployment(
            metadata=client.V1ObjectMeta(name="nope")))

    assert status(cluster, "serving", sa_config, "drill-sa")["active_faults"] == []
    faults = """  - name: scale-down
    type: k8s_scale_down
    target: {service: gpu-serve}
    replicas: 1
  - name: deny-gpus
    type: k8s_quota_denial
    namespace: serving
  - name: drain-one
    type: k8s_node_loss
    target: {labels: {topology.kubernetes.io/region: region-b}}
    mode: drain
    at: 1s"""
    scenario = kube_scenario(tmp_path / "sa.yaml", cluster, "serving", faults, kubeconfig=sa_config,
                             context="drill-sa", phases="{baseline: 2s, fault: 6s, recovery: 2s}")
    code, results = run(scenario, tmp_path / "run")
    assert results["cleanup"]["ok"] is True, results
    assert results["verdict"] == "passed" and code == 0, results.get("abort_reason")
    chains = {c["fault"]: c for c in results["repair_chains"]}
    # Scaled down to 1; when that one pod sits on the drained region-b node it is evicted too and
    # none is ready for a moment (where the scheduler put it decides which).
    assert chains["scale-down"]["min_ready_replicas"]["gpu-serve"] <= 1
    assert status(cluster, "serving", sa_config, "drill-sa")["active_faults"] == []


SHIPPED = sorted((REPO / "scenarios" / "k8s").rglob("*.yaml"))
WORKLOAD_FILE = REPO / "deploy" / "k8s" / "workload.yaml"
# Its Deployments, (namespace, name) -> replicas, in the file's order (serving first).
WORKLOAD = {(d["metadata"]["namespace"], d["metadata"]["name"]): d["spec"]["replicas"]
            for d in yaml.safe_load_all(WORKLOAD_FILE.read_text()) if d and d["kind"] == "Deployment"}


@pytest.fixture(scope="module")
def workload(cluster: KubeTestCluster) -> KubeTestCluster:
    """deploy/k8s/workload.yaml applied, every Deployment Ready."""
    from kubernetes import client

    applied = subprocess.run([cluster.kubectl, "--kubeconfig", str(cluster.kubeconfig), "apply", "-f",
                              str(WORKLOAD_FILE)], capture_output=True, text=True, timeout=60, check=False)
    assert applied.returncode == 0, applied.stderr
    apps = client.AppsV1Api(cluster.api())
    # The earlier tests' Deployments go (scaled to 0): the shipped drills need region-a's GPUs
    # (8 a node) for their own pods; only a throwaway test cluster is this crowded.
    for dep in apps.list_deployment_for_all_namespaces().items:
        if dep.metadata.namespace not in {namespace for namespace, _ in WORKLOAD} | {"kube-system"}:
            apps.patch_namespaced_deployment_scale(dep.metadata.name, dep.metadata.namespace, {"spec": {"replicas": 0}})
    def ready(namespace: str, name: str) -> bool:
        dep = apps.read_namespaced_deployment(name, namespace)
        return bool(dep.status.ready_replicas == dep.spec.replicas)

    for namespace, name in WORKLOAD:
        wait_until(f"{namespace}/{name} Ready", partial(ready, namespace, name))
    return cluster


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(REPO / "scenarios" / "k8s").as_posix())
def test_shipped_kubernetes_scenarios_give_their_expected_verdict(workload: KubeTestCluster, path: Path,
                                                                tmp_path: Path) -> None:
    """Each shipped drill, moved onto the test's cluster (its context, a free proxy port), gives
    the verdict it declares: the drills pass, their controls fail. And each is read for what it
    shows: the node loss's whole repair chain, the pinned control's Pending pods and the
    scheduler's reason, the quota's refusal (the suite once ran a drill of its own for each of
    those beside the shipped one: the same fault on the same cluster, ~95 s of the run)."""
    text = path.read_text().replace("context: kwok-drill", f"context: {workload.context}")
    # A 2 s baseline and recovery: the k8s objectives judge the fault phase (the chain, the ready
    # replicas), so the verdict holds at any baseline; the suite saves 36 s over the six drills.
    assert "phases: {baseline: 5s," in text and "recovery: 5s}" in text, path
    text = text.replace("phases: {baseline: 5s,", "phases: {baseline: 2s,").replace("recovery: 5s}", "recovery: 2s}")
    # The node loss's 45 s fault allows for a cluster whose controller looks at nodes every 25 s;
    # the suite's cluster looks every 5 s (scripts/k8s-setup), so its chain ends within ~10 s.
    text = text.replace("fault: 45s,", "fault: 25s,")
    serving_nodes = place_the_workload_again(workload)
    if path.stem == "node-loss":
        assert "gpu-a-1" in serving_nodes, f"the node node-loss.yaml loses runs no serving pod: {serving_nodes}"
    port = free_port()
    scenario = tmp_path / path.name
    scenario.write_text(text.replace("18181", str(port)))
    expected = "failed" if "expect: failed" in text else "passed"
    code, results = run(scenario, tmp_path / "run", {"KUBECONFIG": str(workload.kubeconfig)})
    assert results["verdict"] == expected, (results.get("abort_reason"), results["objectives"])
    assert code == (1 if expected == "failed" else 0)
    assert results["cleanup"]["ok"] is True
    assert status(workload, "serving")["active_faults"] == []
    if path.stem == "node-loss":
        each_link_of_the_repair_chain(workload, results, tmp_path / "run")
    if path.stem == "node-loss-pinned":
        the_pinned_pods_stay_pending(workload, results)
    if path.stem.startswith("quota-denial"):
        region_refuses_capacity(workload, results)


def each_link_of_the_repair_chain(cluster: KubeTestCluster, results: dict[str, Any], run_dir: Path) -> None:
    """scenarios/k8s/node-loss.yaml: the repair chain read from the watches has every link, in
    order, each instant within the stated resolution of the API server's own timestamp on the
    object; the onset is the node's NotReady; the report draws the chain; the node is clean after."""
    (chain,) = results["repair_chains"]
    links = {link["link"]: link for link in reversed(chain["links"])}  # the first of each
    assert {"node_not_ready", "taint_added", "evicted", "scheduled", "ready"} <= set(links), chain["links"]
    order = [chain[k] for k in ("node_not_ready_s", "taint_added_s", "evicted_s", "scheduled_s", "reschedule_s")]
    assert all(v is not None for v in order) and order == sorted(order), order
    lost = links["node_not_ready"]["node"]
    assert chain["evicted"] >= 1 and chain["replaced"] >= chain["evicted"]
    assert lost not in chain["replacement_nodes"].values()
    from datetime import datetime

    for link in chain["links"]:  # API timestamps are whole seconds, truncated
        if link.get("api_at"):
            gap = (datetime.fromisoformat(link["at"]) - datetime.fromisoformat(link["api_at"])).total_seconds()
            assert -0.1 <= gap <= chain["resolution_s"] + 1.0, link
    assert results["faults"][0]["onset_source"] == "k8s-watch:node-not-ready"
    page = (run_dir / "report.html").read_text()
    assert "Repair chain (Kubernetes)" in page and 'aria-label="Fault lanes and repair chains' in page
    assert node_clean(cluster, lost)


def the_pinned_pods_stay_pending(cluster: KubeTestCluster, results: dict[str, Any]) -> None:
    """scenarios/k8s/controls/node-loss-pinned.yaml: region-a's pinned Deployment loses both its
    nodes; both pods are evicted, their successors stay Pending with the scheduler's reason, no
    replica is ready; both nodes are clean after and the pods come back."""
    (objective,) = results["objectives"]
    assert objective["name"] == "min_ready_replicas" and objective["measured"] == 0 and not objective["passed"]
    (chain,) = results["repair_chains"]
    assert chain["evicted"] == 2 and chain["pending"], chain["links"]
    assert all("node(s)" in (p["detail"] or "") for p in chain["pending"]), chain["pending"]
    assert node_clean(cluster, "gpu-a-1") and node_clean(cluster, "gpu-a-2")
    wait_until("the pinned pods back", lambda: len([
        p for p in core(cluster).list_namespaced_pod("region-a").items if p.status.phase == "Running"]) >= 2)


def place_the_workload_again(cluster: KubeTestCluster) -> list[str]:
    """deploy/k8s/workload.yaml's pods placed afresh, as on a calm cluster, before each shipped
    drill: a drill moves pods off the nodes it loses or cordons and a replacement stays where it
    landed. node-loss.yaml loses the first region-a node by name, which then ran no serving pod
    (nothing evicted: a whole run failed so), and quota-denial.yaml kills a region-a pod of
    gpu-serve-near-a, which its own first try had moved to region-b (its second try was bad
    input). Every Deployment scaled to 0, then back: the scheduler spreads them again. Returns
    the nodes of the serving pods."""
    from kubernetes import client

    apps, pods = client.AppsV1Api(cluster.api()), core(cluster)
    for (namespace, name) in WORKLOAD:
        apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": 0}})
    for namespace in {namespace for namespace, _ in WORKLOAD}:
        wait_until(f"no pod in {namespace}", partial(lambda ns: not pods.list_namespaced_pod(ns).items, namespace))
    # serving first, on an empty pool: one pod a node (its spread and the emptiest nodes agree).
    for (namespace, name), replicas in WORKLOAD.items():
        apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})
        wait_until(f"{namespace}/{name} Ready again", partial(
            lambda ns, n, r: apps.read_namespaced_deployment(n, ns).status.ready_replicas == r, namespace, name, replicas))
    return sorted(p.spec.node_name for p in pods.list_namespaced_pod("serving").items)


def region_refuses_capacity(cluster: KubeTestCluster, results: dict[str, Any]) -> None:
    """scenarios/k8s/quota-denial.yaml and its control: region-a refuses capacity (its quota and
    its cordoned nodes), and the cluster's own actors decide where three region-a pods' successors
    go: the quota refuses the region's own, the scheduler leaves the one required to region-a
    Pending with its reason and places the one that only prefers region-a in region-b."""
    chains = {c["fault"]: c for c in results["repair_chains"]}
    from datetime import datetime

    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp).timestamp()

    # Every fault is reverted when the fault phase ends, not before (the revert's own instant is
    # taken once the cluster shows it undone, which the scheduler may beat).
    lifted = at(results["phases"]["fault"]["end"])
    region = chains["region-a-no-gpus"]  # opened first, it follows home-a and region-a throughout
    refused = [r for r in region["refused"] if r["object"].startswith("replicaset/region-a/")]
    assert refused and "exceeded quota" in refused[0]["detail"] and "requests.nvidia.com/gpu" in refused[0]["detail"]
    # The Pending pod and the scheduler's own reason (its FailedScheduling event / PodScheduled).
    pending = [p for p in region["pending"] if p["object"].startswith("pod/home-a/gpu-serve-pinned-a-")]
    assert pending, region["links"]
    assert "0/4 nodes are available" in pending[0]["detail"] and "node(s) were unschedulable" in pending[0]["detail"]
    assert "didn't match Pod's node affinity/selector" in pending[0]["detail"], pending[0]["detail"]
    placed = [link["at"] for link in region["links"] + chains["kill-pinned"]["links"]
              if link["link"] == "scheduled" and link["object"] == pending[0]["object"]]
    assert all(at(stamp) > lifted for stamp in placed), (placed, lifted)  # Pending while region-a refused
    # The pod that only prefers region-a: killed on a region-a node, its successor placed by the
    # scheduler on a region-b node while region-a refused (its node's region label).
    near = chains["kill-near"]
    evicted = [link for link in near["links"] if link["link"] == "evicted"
               and link["object"].startswith("pod/home-a/gpu-serve-near-a-")]
    assert evicted and evicted[0]["region"] == "region-a", near["links"]
    landed = [link for link in near["links"] if link["link"] == "ready"
              and link["object"].startswith("pod/home-a/gpu-serve-near-a-") and at(link["at"]) < lifted]
    assert landed and landed[0]["region"] == "region-b" and landed[0]["node"].startswith("gpu-b-"), near["links"]
    assert near["replacement_regions"][landed[0]["object"]] == "region-b"
    assert region["replacement_regions"].get(landed[0]["object"]) == "region-b", region["replacement_regions"]
    (objective,) = results["objectives"]
    if results["verdict"] == "failed":  # the control: the refused and the Pending leave one of two
        assert objective["measured"] == 1, objective
        assert "gpu-serve-pinned-a 1/2" in objective["note"] and "region-a/gpu-serve 1/2" in objective["note"]
        assert "gpu-serve-near-a" not in objective["note"], objective
    assert all(node_clean(cluster, n) for n in ("gpu-a-1", "gpu-a-2"))
    assert core(cluster).list_namespaced_resource_quota("region-a").items == []
