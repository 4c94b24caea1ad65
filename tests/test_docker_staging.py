"""compose/staging.yaml — the reference stack on Docker — brought up with ComposeRuntime.

The stack runs under a unique project name with every published port moved to a free one
(DRILL_PORT_*), so a running drill-staging or a local stack on the default ports is left alone.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.faults.container import container_fault
from harness.httpfaults.client import HttpFaultClient
from harness.runtime.compose import PROJECT_LABEL, ComposeRuntime
from harness.testing import REPO, free_port, require
from harness.testing.drills import objective, verdict_text
from harness.testing.stacks import PORT_VARIABLES, STAGING_FILE, shipped_drill, staging_ready, wait_for_tier

pytestmark = pytest.mark.docker

TOXIPROXY_CONFIG = REPO / "compose/toxiproxy.json"
GPU_REGIONS = {"gpu-a1": "region-a", "gpu-a2": "region-a", "gpu-a3": "region-a", "gpu-b1": "region-b"}


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ComposeRuntime, dict[str, int]]]:
    """A stack of this module's own, not tests/conftest.py's shared ``staging_stack``: its drills
    judge the gateway's failover against its own log. On the shared stack (other modules' tests
    run on it first) the endpoint kill in one whole run and the provider drill in the next
    failed both tries, their gateway failed over before the fault (hosted p95 562-901 ms against
    its breaker's 500 ms floor); in nine whole runs before on a stack of their own, a second try
    had always passed. Back on its own stack the endpoint kill still ran again once for that
    reason (and passed), so the shared stack is not shown to be the cause; it is kept apart."""
    require(staging_ready(), "Docker engine with the drill-targets and drill-toxiproxy images", "run scripts/docker-setup")
    ports = {service: free_port() for service in PORT_VARIABLES}
    with pytest.MonkeyPatch.context() as patch:
        for service, variable in PORT_VARIABLES.items():
            patch.setenv(variable, str(ports[service]))
        runtime = ComposeRuntime(STAGING_FILE, f"drill-staging-test-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("staging-logs"))
        try:
            runtime.up(wait_s=180)
            yield runtime, ports
        finally:
            runtime.down()
            label = {"label": f"{PROJECT_LABEL}={runtime.project}"}
            assert runtime.client.containers.list(all=True, filters=label) == []
            assert runtime.client.networks.list(filters=label) == []


def test_gateway_answers_from_the_hosted_tier(staging) -> None:
    runtime, ports = staging
    response = wait_for_tier(ports["gateway"], "hosted", timeout_s=30)
    assert response.headers["X-Served-By"] == "hosted-model"
    assert response.json()["choices"][0]["message"]["content"]


def test_the_hosted_link_passes_the_http_fault_proxy_whose_faults_the_gateway_sees(staging) -> None:
    """gateway -> http-fault-proxy route hosted-model -> Toxiproxy -> hosted-model: a 503 storm on
    the route moves the gateway to the GPU tier while the route's GET /health stays untouched."""
    runtime, ports = staging
    assert runtime.http_fault_proxy_url == f"http://127.0.0.1:{ports['http-fault-proxy']}"
    with HttpFaultClient(runtime.http_fault_proxy_url) as proxy:
        assert proxy.health() == {"hosted-model": 19101}
        wait_for_tier(ports["gateway"], "hosted", timeout_s=30)
        proxy.add("drill-test-storm", "http_error", "hosted-model", {"status": 503})
        try:
            health = httpx.get(f"{runtime.http_fault_proxy_url}/health", timeout=5.0)
            assert health.status_code == 200, health.text
            wait_for_tier(ports["gateway"], "gpu", timeout_s=30)
            hits = {f.id: f.hits for f in proxy.faults()}
            assert hits["drill-test-storm"] > 0
        finally:
            proxy.reset()
        assert proxy.faults() == []


def test_every_service_is_healthy_and_published_on_loopback_only(staging) -> None:
    runtime, ports = staging
    assert {s.service: (s.state, s.health) for s in runtime.status()} == {
        service: ("running", "healthy") for service in PORT_VARIABLES
    }
    endpoints = runtime.endpoints()
    assert set(endpoints) == set(PORT_VARIABLES)
    for service, published in endpoints.items():
        assert list(published.values()) == [f"127.0.0.1:{ports[service]}"], service


def test_labels_and_no_docker_socket(staging) -> None:
    runtime, _ = staging
    for container in runtime.containers():
        service = container.labels["com.docker.compose.service"]
        assert container.labels["drill.service"] == service
        if service in GPU_REGIONS:
            assert container.labels["drill.gpu"] == "true"
            assert container.labels["drill.region"] == GPU_REGIONS[service]
        else:
            assert "drill.gpu" not in container.labels
        mounts = [m.get("Source", "") for m in container.attrs.get("Mounts", [])]
        assert not any("docker.sock" in source for source in mounts), (service, mounts)
    assert sorted(c.labels["drill.service"] for c in runtime.containers(labels={"drill.gpu": "true", "drill.region": "region-a"})) == [
        "gpu-a1",
        "gpu-a2",
        "gpu-a3",
    ]


def test_toxiproxy_serves_exactly_the_proxies_of_toxiproxy_json(staging) -> None:
    _, ports = staging
    declared = {proxy["name"]: proxy for proxy in json.loads(TOXIPROXY_CONFIG.read_text())}
    served = httpx.get(f"http://127.0.0.1:{ports['toxiproxy']}/proxies", timeout=5.0).json()
    assert set(served) == set(declared)
    for name, proxy in served.items():
        assert proxy["upstream"] == declared[name]["upstream"]
        assert proxy["enabled"] is True


def test_killing_the_hosted_model_fails_over_to_gpu_and_back(staging) -> None:
    runtime, ports = staging
    wait_for_tier(ports["gateway"], "hosted", timeout_s=30)
    fault = container_fault("provider-down", "kill", "hosted-model", {}, 1, runtime.project)
    onset = fault.apply()
    try:
        assert onset.source == "docker-state:finished-at"
        response = wait_for_tier(ports["gateway"], "gpu")
        assert response.headers["X-Served-By"] in ("gpu-a1", "gpu-a2")
        assert response.headers["X-Region"] == "region-a"
    finally:
        fault.revert()
    wait_for_tier(ports["gateway"], "hosted")


def test_fingerprint_of_the_staging_stack(staging) -> None:
    runtime, _ = staging
    fingerprint = runtime.fingerprint().details
    client = runtime.client
    assert fingerprint["images"]["gateway"] == client.images.get("drill-targets:latest").id
    assert fingerprint["images"]["toxiproxy"] == client.images.get("drill-toxiproxy:latest").id
    assert fingerprint["images"]["prometheus"] == client.images.get("drill-prometheus:latest").id
    assert set(fingerprint["images"]) == set(PORT_VARIABLES)
    assert fingerprint["compose_file_sha256"] == hashlib.sha256(STAGING_FILE.read_bytes()).hexdigest()


@pytest.mark.slow
def test_endpoint_kill_drill_failover_agrees_with_the_gateway(staging, tmp_path) -> None:
    """A whole drill on the compose stack: docker kill of hosted-model under load. The harness's
    failover time (from samples) and the gateway's own routing log must agree within the stated
    resolution; afterwards every container runs and no toxic is left.

    Beside the suite's other drill the hosted tier can be slow enough in the baseline (p95 958 ms
    in one whole run) that the gateway's latency breaker fails over before the kill. Then both
    records must say so: the gateway's last routing event before the onset is a failover, and
    drill measures no failover for the fault, naming the tier traffic was already on."""
    from harness.engine import run_drill

    runtime, ports = staging
    scenario = shipped_drill(runtime, ports, "endpoint-kill", tmp_path)
    wait_for_tier(ports["gateway"], "hosted")
    result = run_drill(scenario, out=tmp_path / "run")
    assert result.exit_code == 0, verdict_text(result.results.document())
    fault = result.results.document()["faults"][0]
    assert fault["onset_source"] == "docker-state:finished-at"
    assert fault["rto_s"] is not None
    tools = result.results.document()["environment"]["tools"]
    assert tools["docker_engine"] == runtime.client.version()["Version"]
    # toxiproxy is whatever the drill-toxiproxy image answers ("git" in images built from
    # binaries that bootstrap built before it stamped the version); the compose CLI's is a number.
    assert tools["docker_compose"][0].isdigit() and tools["toxiproxy"], tools

    onset = _epoch(fault["onset_at"])
    events = httpx.get(f"http://127.0.0.1:{ports['gateway']}/admin/events", params={"since": onset - 30}, timeout=5).json()
    # A text, not a list (pytest shortens a list to 240 characters): the gateway's events in
    # seconds from the onset, beside drill's figures.
    timeline = "; ".join(f"{e['ts'] - onset:+.3f} {e['event']} {e['tier']} ({e['detail']})" for e in events)
    said = f"failover_s {fault['failover_s']} ({fault['notes'].get('failover_s')}); gateway: {timeline}"
    routed_before = [e["event"] for e in events if e["event"] in ("failover", "failback") and e["ts"] < onset - 1]
    if routed_before and routed_before[-1] == "failover":
        assert fault["failover_s"] is None and "already on gpu" in fault["notes"]["failover_s"], said
    else:
        failovers = [e for e in events if e["event"] == "failover" and e["ts"] >= onset - 1]
        assert failovers and fault["failover_s"] is not None, said
        gateway_failover_s = failovers[0]["ts"] - onset
        resolution_s = result.results.document()["measurement"]["resolution_s"]
        assert abs(gateway_failover_s - fault["failover_s"]) <= resolution_s, said
        # The run kept the gateway's log itself, and results carry the same comparison.
        agreement = fault["agreement"]
        assert agreement["failover_s"] == pytest.approx(gateway_failover_s, abs=1e-3)
        assert abs(agreement["failover_delta_s"]) <= resolution_s, agreement

    cleanup = result.results.document()["cleanup"]
    assert cleanup["ok"] is True and cleanup["toxics_left"] == 0 and cleanup["containers_not_running"] == []
    assert all(c.status == "running" for c in runtime.containers())


@pytest.mark.slow
def test_provider_overloaded_drill_on_compose_streams_through_the_http_fault_proxy(staging, tmp_path) -> None:
    """The shipped compose provider drill (shorter phases): the hosted provider answers 529 on the
    compose stack's HTTP fault proxy; streams fail over before their first token and complete."""
    from harness.engine import run_drill

    runtime, ports = staging
    scenario = shipped_drill(runtime, ports, "provider-overloaded", tmp_path)
    wait_for_tier(ports["gateway"], "hosted")
    result = run_drill(scenario, out=tmp_path / "run")
    r = result.results.document()
    # PASSED, INCONCLUSIVE naming why, or FAILED on time alone: beside the suite's other drill a
    # dozen containers share the two cores; in two whole runs the instrument could not decide rto_s
    # there, and in one a late slow stretch (+12.4 s) put rto_s at 12.9 s. How fast is a timing
    # figure (bench/ measures it); what this test checks is the mechanism, which holds either way:
    # no error, every stream completed, the GPU pool served, the gateway's record agrees.
    assert result.exit_code in (0, 1, 6), verdict_text(r)
    if result.exit_code == 6:
        assert any(o.get("undecided") for o in r["objectives"]), verdict_text(r)
    missed = {o["name"] for o in r["objectives"] if not o["passed"] and not o.get("undecided")}
    assert missed <= {"rto_s", "ttft_p95_ms"}, verdict_text(r)
    assert objective(r, "max_error_rate")["passed"] and objective(r, "failover_to")["passed"], verdict_text(r)
    fault = r["faults"][0]
    assert fault["onset_source"] == "http-fault-proxy-api"
    during = r["phases"]["fault"]["streaming"]
    assert during["streams"] > 0 and during["failed_over"] > 0  # answered by the GPU pool
    assert r["measurement"]["streaming"]["completion"]["completion_rate"] >= 0.99
    # The stack's own record: the gateway logged its failovers away from the hosted tier.
    logged = json.loads((result.run_dir / "stack-events.json").read_text())["events"]
    assert any(e["event"] == "failover" for e in logged), logged[-5:]
    assert r["cleanup"]["ok"] is True
    with HttpFaultClient(f"http://127.0.0.1:{ports['http-fault-proxy']}") as proxy:
        assert proxy.faults() == []  # the compose stack stays up after a drill: read it back


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_stack_status_json_shows_active_faults_and_recover_force_removes_them(staging) -> None:
    """Faults no journal knows (a paused member, a stray drill toxic) show in `drill stack status
    --json` as active_faults; `drill recover` lists them, `--force` removes them."""
    import sys

    from harness.toxiproxy import ToxiproxyClient

    runtime, ports = staging
    base = [sys.executable, "-m", "harness.cli"]
    stack = ["--runtime", "compose", "--file", str(STAGING_FILE), "--project", runtime.project]

    def status() -> dict:
        done = subprocess.run([*base, "stack", "status", *stack, "--json"], capture_output=True, text=True,
                              cwd=REPO, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert status()["active_faults"] == []
    runtime.containers("cpu-fallback")[0].pause()
    with ToxiproxyClient(f"http://127.0.0.1:{ports['toxiproxy']}") as client:
        client.add_toxic("gpu-a1", "latency", {"latency": 500}, name="drill-left-behind")
    kinds = sorted(f["kind"] for f in status()["active_faults"])
    assert kinds == ["container", "toxic"], kinds

    listed = subprocess.run([*base, "recover", *stack], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert listed.returncode == 3 and "--force" in listed.stdout + listed.stderr
    forced = subprocess.run([*base, "recover", *stack, "--force"], capture_output=True, text=True, cwd=REPO,
                            timeout=240)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert status()["active_faults"] == []
