"""The shipped capacity scenarios, run for real on the local runtime (free ports), one on compose.

Each local run starts the reference programs as processes, drives real load with Locust, kills a
GPU node / denies region-a through the real hooks, and reads the results the engine wrote.
The shipped scenarios use the stack's fixed ports; :func:`rebased` rewrites the scenario and its
stack file onto free ports so parallel runs on this machine cannot collide.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import pytest

from harness.engine import run_drill
from harness.testing import free_port, require
from harness.testing.drills import CAPACITY_PHASES, SCENARIOS, fault, rebased, run_local, shortened, verdict_text

REPO = Path(__file__).resolve().parents[1]
def test_rebased_scenario_moves_every_fixed_port(tmp_path: Path) -> None:
    scenario, mapping = rebased(SCENARIOS / "region-quota-denial.local.yaml", tmp_path)
    text = scenario.read_text()
    stack_text = (tmp_path / "local-stack.gpu-pool.yaml").read_text()
    assert 8080 in mapping and 18090 in mapping
    assert f"127.0.0.1:{mapping[8080]}/admin/pool" in text
    assert f"127.0.0.1:{mapping[18090]}/fault" in text
    for old in (8080, 8474, 18011, 19011, 18090, 19101):
        assert not re.search(rf"\b{old}\b", text + stack_text)


@pytest.mark.slow
def test_gpu_node_loss_local_passes_with_a_region_a_replacement(tmp_path: Path) -> None:
    result, _ = run_local("gpu-node-loss.local.yaml", tmp_path, short=True, phases=CAPACITY_PHASES)
    r = result.results.document()
    assert result.exit_code == 0, verdict_text(r)
    lost = fault(r, "gpu-node-lost")
    assert lost["targets"] == ["process:gpu-a1"]
    assert lost["capacity_restored_s"] is not None and lost["capacity_restored_s"] > 0
    assert lost["replacement_region"] == "region-a"
    assert lost["replacement_nodes"] and lost["replacement_nodes"][0] in ("gpu-a2", "gpu-a3")
    assert lost["degraded_requests"] > 0  # the cpu fallback served meanwhile
    assert r["capacity"]["target"] == 1
    assert r["capacity"]["timeline"]["min_healthy"] == 0
    assert r["cleanup"]["ok"] is True
    # The harness's failover to the cpu tier agrees with the gateway's own routing log.
    agreement = lost["agreement"]
    assert agreement["failover_delta_s"] is not None, agreement
    assert abs(agreement["failover_delta_s"]) <= lost["resolution_s"], agreement


@pytest.mark.slow
def test_region_quota_denial_local_replaces_from_region_b_lifts_the_quota_and_costs_the_launch(tmp_path: Path) -> None:
    result, mapping = run_local("region-quota-denial.local.yaml", tmp_path, short=True, phases=CAPACITY_PHASES)
    r = result.results.document()
    assert result.exit_code == 0, verdict_text(r)
    lost = fault(r, "gpu-node-lost")
    assert lost["replacement_region"] == "region-b"
    assert lost["replacement_nodes"] == ["gpu-b1"]
    assert lost["capacity_restored_s"] > 0
    # What it cost: the instance launched in region-b, from the cloud's own record.
    cost = r["cost"]
    launched = [i for i in cost["instances"] if i["launched_in_run"]]
    assert [i["region"] for i in launched] == ["region-b"], cost["instances"]
    assert launched[0]["lifetime_in_run_s"] > 0 and launched[0]["spend"] > 0
    assert cost["extra_spend"] is not None and cost["example_prices"]
    assert "cloud's own record" in cost["sources"]["instances"]
    assert r["cleanup"]["ok"] is True
    events = [json.loads(line) for line in (result.run_dir / "journal.jsonl").read_text().splitlines()]
    reverted = {e["fault_id"] for e in events if e["event"] == "fault.reverted"}
    assert reverted == {"0-region-a-quota-denied", "1-gpu-node-lost"}
    intent = next(e for e in events if e["event"] == "fault.intent" and e["type"] == "region_quota_denial")
    assert intent["undo"] == {
        "kind": "quota_hook",
        "hook": f"http://127.0.0.1:{mapping[18090]}/fault",
        "body": {"mode": "quota_exceeded", "region": "region-a", "instance_type": "gpu.h100"},
    }


@pytest.mark.slow
def test_control_gpu_node_loss_without_fallback_exits_1_naming_the_objectives(tmp_path: Path) -> None:
    result, _ = run_local("controls/gpu-node-loss.local.yaml", tmp_path, short=True)
    r = result.results.document()
    assert result.exit_code == 1, verdict_text(r)
    failed = {o["name"] for o in r["objectives"] if not o["passed"]}
    assert "failover_to" in failed
    assert failed & {"rto_s", "max_error_rate"}
    assert fault(r, "gpu-node-lost")["capacity_restored_s"] is not None
    assert r["cleanup"]["ok"] is True


@pytest.mark.slow
@pytest.mark.docker
def test_region_quota_denial_on_compose_replaces_from_region_b(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped compose drill, under a unique project with every published port moved, with
    shortened phases (the replacement lands about 4 s after the node loss, inside the 10 s fault).
    The test is about where the replacement comes from and what is left after the run; the
    shipped 8 s RTO bound is judged at the shipped length by hand and in bench/. Here it is 12 s:
    5.0 s measured on a quiet machine, 8.98 s once while another drill of the suite ran beside it
    on the 2 cores (no harness stall was seen: the stack itself was slower)."""
    from harness.runtime.compose import ComposeRuntime
    from harness.testing.stacks import PORT_VARIABLES, staging_ready

    require(staging_ready(), "Docker engine with the drill-targets and drill-toxiproxy images", "run scripts/docker-setup")
    ports = {service: free_port() for service in PORT_VARIABLES}
    for service, variable in PORT_VARIABLES.items():
        monkeypatch.setenv(variable, str(ports[service]))
    project = f"drill-cap-{os.urandom(4).hex()}"
    text = (SCENARIOS / "region-quota-denial.yaml").read_text(encoding="utf-8")
    text = text.replace("../compose/staging.gpu-pool.yaml", str(REPO / "compose/staging.gpu-pool.yaml"))
    text = text.replace("project: drill-staging", f"project: {project}")
    text = text.replace("127.0.0.1:28080", f"127.0.0.1:{ports['gateway']}")
    text = text.replace("127.0.0.1:28090", f"127.0.0.1:{ports['cloud-api']}")
    assert "  rto_s: 8\n" in text
    text = shortened(text.replace("  rto_s: 8\n", "  rto_s: 12\n"), CAPACITY_PHASES)
    scenario = tmp_path / "region-quota-denial.yaml"
    scenario.write_text(text, encoding="utf-8")
    runtime = ComposeRuntime(REPO / "compose/staging.gpu-pool.yaml", project, tmp_path / "logs")
    try:
        result = run_drill(scenario, out=tmp_path / "run")
        r = result.results.document()
        assert result.exit_code == 0, verdict_text(r)
        lost = fault(r, "gpu-node-lost")
        assert lost["targets"] == [f"{project}_gpu-a1_1"] or lost["targets"][0].endswith("gpu-a1-1")
        assert lost["replacement_region"] == "region-b"
        assert lost["capacity_restored_s"] > 0
        assert r["cleanup"]["ok"] is True
        # After the run: the quota is lifted and every GPU node runs and answers health.
        hook = f"http://127.0.0.1:{ports['cloud-api']}/fault"
        assert httpx.get(hook, timeout=5).json()["denials"] == []
        for node in ("gpu-a1", "gpu-a2", "gpu-a3", "gpu-b1"):
            assert httpx.get(f"http://127.0.0.1:{ports[node]}/health", timeout=5).status_code == 200
    finally:
        runtime.down()


@pytest.mark.slow
def test_hosted_latency_control_without_fallback_exits_1_naming_the_objectives(tmp_path: Path) -> None:
    result, _ = run_local("controls/hosted-latency.yaml", tmp_path, short=True)
    r = result.results.document()
    assert result.exit_code == 1, verdict_text(r)
    failed = {o["name"] for o in r["objectives"] if not o["passed"]}
    assert "failover_to" in failed
    assert r["cleanup"]["ok"] is True and r["cleanup"]["toxics_left"] == 0
