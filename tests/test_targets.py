"""The reference platform's programs, run for real as `python -m targets.<program>` on free ports."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.testing import REPO, free_port
from harness.testing.stacks import Program, events, gateway, model_server, poll, upstream

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
HEADERS = ("x-served-by", "x-tier", "x-region", "x-degraded")


def chat(client: httpx.Client, base: str) -> httpx.Response:
    return client.post(base + "/v1/chat/completions", json=CHAT)


# -- model server --------------------------------------------------------------------------


def test_model_server_answers_with_headers(spawn: Callable[..., Program]) -> None:
    node = model_server(spawn, "cpu-1", "cpu", SERVICE_TIME_MS=1)
    reply = httpx.post(node.url + "/v1/chat/completions", json=CHAT)
    assert reply.status_code == 200
    assert reply.headers["x-served-by"] == "cpu-1"
    assert reply.headers["x-tier"] == "cpu"
    assert reply.headers["x-degraded"] == "true"  # cpu nodes are degraded by default
    assert reply.json()["choices"][0]["message"]["content"] == "ok from cpu-1"


def test_gpu_xid_fault_fails_requests_and_health_until_restored(spawn: Callable[..., Program]) -> None:
    node = model_server(spawn, "gpu-x", "gpu")
    assert httpx.post(node.url + "/fault", json={"mode": "xid"}).status_code == 200
    reply = httpx.post(node.url + "/v1/chat/completions", json=CHAT)
    assert reply.status_code == 500
    assert "Xid 79" in reply.json()["error"]["message"]
    assert httpx.get(node.url + "/health").status_code == 500
    assert httpx.get(node.url + "/fault").json()["mode"] == "xid"
    assert node.popen.poll() is None  # the process stays up, like a node whose GPU fell off
    assert httpx.delete(node.url + "/fault").json()["mode"] is None
    assert httpx.post(node.url + "/v1/chat/completions", json=CHAT).status_code == 200
    assert httpx.get(node.url + "/health").status_code == 200


def test_gpu_only_fault_modes_are_refused_on_other_tiers(spawn: Callable[..., Program]) -> None:
    node = model_server(spawn, "hosted-1", "hosted")
    reply = httpx.post(node.url + "/fault", json={"mode": "xid"})
    assert reply.status_code == 400
    assert "GPU fault" in reply.json()["error"]["message"]


def test_error_fault_lasts_exactly_its_duration(spawn: Callable[..., Program]) -> None:
    node = model_server(spawn, "hosted-1", "hosted")
    called_at = time.monotonic()
    reply = httpx.post(node.url + "/fault", json={"mode": "error", "status": 503, "duration_s": 1.0})
    assert reply.status_code == 200
    assert 0 < reply.json()["remaining_s"] <= 1.0
    assert httpx.post(node.url + "/v1/chat/completions", json=CHAT).status_code == 503
    with httpx.Client() as client:
        poll(lambda: chat(client, node.url).status_code == 200, 10, "the error fault to expire")
    # Never earlier than the duration: tests rely on a recovery time known by construction.
    assert time.monotonic() - called_at >= 1.0
    assert httpx.get(node.url + "/fault").json()["mode"] is None


def test_hang_fault_stalls_requests_until_deleted(spawn: Callable[..., Program]) -> None:
    node = model_server(spawn, "gpu-h", "gpu")
    httpx.post(node.url + "/fault", json={"mode": "hang"})
    with pytest.raises(httpx.TimeoutException):
        httpx.post(node.url + "/v1/chat/completions", json=CHAT, timeout=0.3)
    outcome: dict[str, int] = {}

    def stalled() -> None:
        outcome["status"] = httpx.post(node.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code

    worker = threading.Thread(target=stalled)
    worker.start()
    assert httpx.get(node.url + "/fault").json()["mode"] == "hang"
    httpx.delete(node.url + "/fault")
    worker.join(timeout=10)
    assert outcome.get("status") == 200


# -- gateway -------------------------------------------------------------------------------


def test_gateway_routes_to_hosted_then_fails_over_to_gpu_and_back(spawn: Callable[..., Program]) -> None:
    hosted = model_server(spawn, "hosted-1", "hosted", region="external")
    gpu = model_server(spawn, "gpu-a1", "gpu")
    gw = gateway(
        spawn,
        [upstream("hosted-1", hosted.url, "hosted", "external"), upstream("gpu-a1", gpu.url, "gpu", "region-a")],
    )
    with httpx.Client() as client:
        reply = chat(client, gw.url)
        assert reply.status_code == 200
        assert {h: reply.headers.get(h) for h in HEADERS} == {
            "x-served-by": "hosted-1", "x-tier": "hosted", "x-region": "external", "x-degraded": "false"
        }
        os.killpg(hosted.popen.pid, signal.SIGKILL)
        hosted.popen.wait(timeout=10)
        # Every request still succeeds: the failed hosted attempt moves on to the GPU pool.
        for _ in range(20):
            reply = chat(client, gw.url)
            assert reply.status_code == 200
            assert reply.headers["x-tier"] == "gpu"
            assert reply.headers["x-served-by"] == "gpu-a1"
        failovers = events(gw.url, "failover")
        assert failovers and failovers[0]["from"] == "hosted" and failovers[0]["to"] == "gpu"

        spawn("model_server", port=hosted.port, NODE_ID="hosted-1", TIER="hosted", REGION="external")
        # Half-open probes reach hosted first; the failback is logged once the breaker closed.
        poll(lambda: chat(client, gw.url).headers["x-tier"] == "hosted" and events(gw.url, "failback"), 20,
             "traffic back on hosted")
        assert chat(client, gw.url).headers["x-tier"] == "hosted"
    failbacks = events(gw.url, "failback")
    assert failbacks[-1]["to"] == "hosted"
    assert failbacks[-1]["ts"] > failovers[0]["ts"]


def test_gateway_answers_503_with_headers_when_every_tier_fails(spawn: Callable[..., Program]) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    gw = gateway(spawn, [upstream("hosted-1", nowhere, "hosted", "external")])
    reply = httpx.post(gw.url + "/v1/chat/completions", json=CHAT)
    assert reply.status_code == 503
    assert reply.headers["x-served-by"] == "none"
    assert all(h in reply.headers for h in HEADERS)


def test_gateway_prefers_region_a_and_skips_a_gpu_node_with_xid(spawn: Callable[..., Program]) -> None:
    a1 = model_server(spawn, "gpu-a1", "gpu", region="region-a")
    b1 = model_server(spawn, "gpu-b1", "gpu", region="region-b")
    gw = gateway(spawn, [upstream("gpu-b1", b1.url, "gpu", "region-b"), upstream("gpu-a1", a1.url, "gpu", "region-a")])
    with httpx.Client() as client:
        assert {chat(client, gw.url).headers["x-served-by"] for _ in range(5)} == {"gpu-a1"}
        httpx.post(a1.url + "/fault", json={"mode": "xid"})
        # Within the tier the failed node is retried on the next one: no request fails.
        replies = [chat(client, gw.url) for _ in range(10)]
        assert all(r.status_code == 200 and r.headers["x-served-by"] == "gpu-b1" for r in replies)
        assert replies[0].headers["x-region"] == "region-b"
    pool = poll(
        lambda: (p := httpx.get(gw.url + "/admin/pool").json())["healthy"] == 1 and p, 10, "gpu-a1 marked unhealthy"
    )
    by_name = {n["name"]: n for n in pool["nodes"]}
    assert by_name["gpu-a1"]["healthy"] is False and "500" in by_name["gpu-a1"]["last_error"]
    assert pool["regions"]["region-b"] == {"nodes": 1, "healthy": 1}
    # The tier kept serving, so its breaker has no reason to open: the node is out, not the tier.
    assert not events(gw.url, "breaker_open")


def _toxic(toxiproxy_url: str, proxy: str, latency_ms: int) -> None:
    reply = httpx.post(
        f"{toxiproxy_url}/proxies/{proxy}/toxics",
        json={"name": "slow", "type": "latency", "stream": "downstream", "attributes": {"latency": latency_ms}},
    )
    assert reply.status_code == 200, reply.text


def _proxy(toxiproxy_url: str, name: str, upstream_port: int) -> str:
    listen = free_port()
    reply = httpx.post(
        f"{toxiproxy_url}/proxies",
        json={"name": name, "listen": f"127.0.0.1:{listen}", "upstream": f"127.0.0.1:{upstream_port}"},
    )
    assert reply.status_code == 201, reply.text
    return f"http://127.0.0.1:{listen}"


@pytest.mark.toxiproxy
def test_breaker_opens_on_p95_over_twice_baseline_and_fails_back(
    spawn: Callable[..., Program], toxiproxy_url: str
) -> None:
    hosted = model_server(spawn, "hosted-1", "hosted", region="external")
    gpu = model_server(spawn, "gpu-a1", "gpu")
    hosted_via_proxy = _proxy(toxiproxy_url, "hosted", hosted.port)
    gw = gateway(
        spawn,
        [upstream("hosted-1", hosted_via_proxy, "hosted", "external"), upstream("gpu-a1", gpu.url, "gpu", "region-a")],
        BREAKER_LATENCY_FLOOR_MS=100,
        HEALTH_TIMEOUT_MS=800,
        # Twice the default cool-down: beside two drills this test's process (5 steps nicer) once
        # stood over 5 s between seeing the breaker open and its next request, which the half-open
        # breaker then sent to hosted as its probe.
        BREAKER_COOLDOWN_S=10,
    )

    def hosted_breaker() -> dict[str, Any]:
        state = httpx.get(gw.url + "/admin/state").json()
        return next(b for b in state["breakers"] if b["tier"] == "hosted")

    with httpx.Client(timeout=5) as client:
        for _ in range(200):
            chat(client, gw.url)
            if hosted_breaker()["baseline_p95_ms"] is not None:
                break
        assert hosted_breaker()["baseline_p95_ms"] is not None, "no baseline learned from 200 requests"
        # 300 ms: slower than twice the baseline, yet inside every timeout, so only p95 can trip.
        _toxic(toxiproxy_url, "hosted", 300)
        for _ in range(100):
            chat(client, gw.url)
            if events(gw.url, "breaker_open"):
                break
        opened = events(gw.url, "breaker_open")
        assert opened and opened[0]["tier"] == "hosted" and "p95" in opened[0]["detail"]
        reply = chat(client, gw.url)
        assert reply.status_code == 200 and reply.headers["x-tier"] == "gpu"

        httpx.delete(f"{toxiproxy_url}/proxies/hosted/toxics/slow")
        poll(lambda: chat(client, gw.url).headers["x-tier"] == "hosted" and events(gw.url, "failback"), 40,
             "failback to hosted")
    assert events(gw.url, "breaker_close")
    assert events(gw.url, "failback")


@pytest.mark.toxiproxy
def test_gateway_fails_over_on_2000ms_latency_toxic(spawn: Callable[..., Program], toxiproxy_url: str) -> None:
    """The default drill's fault: requests keep succeeding and the breaker opens on timeouts."""
    hosted = model_server(spawn, "hosted-1", "hosted", region="external")
    gpu = model_server(spawn, "gpu-a1", "gpu")
    hosted_via_proxy = _proxy(toxiproxy_url, "hosted", hosted.port)
    gw = gateway(
        spawn,
        [upstream("hosted-1", hosted_via_proxy, "hosted", "external"), upstream("gpu-a1", gpu.url, "gpu", "region-a")],
        UPSTREAM_TIMEOUT_MS=1000,
    )
    with httpx.Client(timeout=5) as client:
        for _ in range(20):
            assert chat(client, gw.url).headers["x-tier"] == "hosted"
        _toxic(toxiproxy_url, "hosted", 2000)
        reply = chat(client, gw.url)
        assert reply.status_code == 200 and reply.headers["x-tier"] == "gpu"
        poll(lambda: chat(client, gw.url) and events(gw.url, "breaker_open"), 20, "hosted breaker to open")
    kinds = [e["event"] for e in events(gw.url)]
    assert kinds.index("failover") < kinds.index("breaker_open")


# -- cloud API and autoscaler --------------------------------------------------------------


def regions_env(a_url: str = "http://127.0.0.1:1", b_url: str = "http://127.0.0.1:2") -> str:
    return json.dumps(
        {
            "region-a": {"quota": 3, "running": ["gpu-a1", "gpu-a2"], "standby": [{"node": "gpu-a3", "url": a_url}]},
            "region-b": {"quota": 2, "running": [], "standby": [{"node": "gpu-b1", "url": b_url}]},
        }
    )


def test_cloud_api_quota_capacity_and_idempotent_fault_hook(spawn: Callable[..., Program]) -> None:
    api = spawn("cloud_api", REGIONS=regions_env(), PROVISION_DELAY_MS=10)
    request = {"region": "region-a", "instance_type": "gpu.h100"}
    deny = {"mode": "quota_exceeded", "region": "region-a"}
    first = httpx.post(api.url + "/fault", json=deny).json()
    second = httpx.post(api.url + "/fault", json=deny).json()
    assert first == second == {"denials": [{**deny, "instance_type": None}]}
    denied = httpx.post(api.url + "/instances", json=request)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "QuotaExceeded"
    assert httpx.delete(api.url + "/fault").json() == {"denials": []}
    assert httpx.delete(api.url + "/fault").json() == {"denials": []}

    created = httpx.post(api.url + "/instances", json=request)
    assert created.status_code == 201 and created.json()["node"] == "gpu-a3"
    # Three instances now fill region-a's quota of three.
    full = httpx.post(api.url + "/instances", json=request)
    assert full.status_code == 403 and full.json()["error"]["code"] == "QuotaExceeded"

    httpx.post(api.url + "/fault", json={"mode": "insufficient_capacity", "region": "region-b"})
    refused = httpx.post(api.url + "/instances", json={**request, "region": "region-b"})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "InsufficientCapacity"
    httpx.request("DELETE", api.url + "/fault", json={"region": "region-b"})
    assert httpx.post(api.url + "/instances", json={**request, "region": "region-b"}).status_code == 201
    # region-b has no standby node left although its quota (2) is not reached.
    empty = httpx.post(api.url + "/instances", json={**request, "region": "region-b"})
    assert empty.status_code == 503 and empty.json()["error"]["code"] == "InsufficientCapacity"

    instance_id = created.json()["id"]
    assert httpx.delete(f"{api.url}/instances/{instance_id}").status_code == 200
    assert httpx.delete(f"{api.url}/instances/{instance_id}").status_code == 404
    assert "gpu-a3" in httpx.get(api.url + "/regions").json()["region-a"]["free_standby"]


def test_autoscaler_replaces_lost_node_from_region_b_when_region_a_is_denied(
    spawn: Callable[..., Program],
) -> None:
    a1 = model_server(spawn, "gpu-a1", "gpu", region="region-a")
    a2 = model_server(spawn, "gpu-a2", "gpu", region="region-a")
    a3 = model_server(spawn, "gpu-a3", "gpu", region="region-a")
    b1 = model_server(spawn, "gpu-b1", "gpu", region="region-b")
    api = spawn("cloud_api", REGIONS=regions_env(a3.url, b1.url), PROVISION_DELAY_MS=50)
    gw = gateway(
        spawn,
        [upstream("gpu-a1", a1.url, "gpu", "region-a"), upstream("gpu-a2", a2.url, "gpu", "region-a")],
        GPU_POOL_TARGET=2,
    )
    scaler = spawn("autoscaler", GATEWAY_ADMIN_URL=gw.url, CLOUD_API_URL=api.url, INTERVAL_MS=200, DEAD_AFTER_S=0.5)
    assert httpx.post(api.url + "/fault", json={"mode": "quota_exceeded", "region": "region-a"}).status_code == 200
    httpx.post(a1.url + "/fault", json={"mode": "xid"})

    def pool_names() -> set[str] | None:
        pool = httpx.get(gw.url + "/admin/pool").json()
        healthy = {n["name"] for n in pool["nodes"] if n["healthy"]}
        return healthy if healthy == {"gpu-a2", "gpu-b1"} else None

    poll(pool_names, 30, "the pool to become gpu-a2 + gpu-b1")
    actions = httpx.get(scaler.url + "/status").json()["actions"]
    kinds = [(a["action"], a.get("region"), a.get("node")) for a in actions]
    assert ("removed", "region-a", "gpu-a1") in kinds
    assert ("denied", "region-a", None) in kinds
    assert ("registered", "region-b", "gpu-b1") in kinds
    log = [(e["event"], e.get("node")) for e in events(gw.url)]
    assert log.index(("node_removed", "gpu-a1")) < log.index(("node_registered", "gpu-b1"))
    with httpx.Client() as client:
        served = {chat(client, gw.url).headers["x-served-by"] for _ in range(6)}
    assert served == {"gpu-a2"}  # region-a first, region-b only when region-a has no healthy node


# -- the shipped local stack, on free ports ---------------------------------------------------


def _local_stack_on_free_ports(tmp_path: Path) -> Path:
    text = (REPO / "targets" / "local-stack.yaml").read_text()
    fixed = sorted(set(re.findall(r"\b(8080|8474|1[89]\d{3})\b", text)))
    mapping = {port: str(free_port()) for port in fixed}
    rewritten = re.sub(r"\b(8080|8474|1[89]\d{3})\b", lambda m: mapping[m.group(1)], text)
    path = tmp_path / "local-stack.yaml"
    path.write_text(rewritten)
    return path


@pytest.mark.toxiproxy
def test_shipped_local_stack_fails_over_on_hosted_latency_and_back(tmp_path: Path) -> None:

    from harness.runtime.local import LocalRuntime
    from harness.runtime.stackfile import load_stack
    from harness.testing import require, toxiproxy_binary

    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")
    spec = load_stack(_local_stack_on_free_ports(tmp_path))
    gateway_port = next(p.port for p in spec.processes if p.name == "gateway")
    base = f"http://127.0.0.1:{gateway_port}"
    with LocalRuntime(spec, tmp_path / "logs") as runtime, httpx.Client(timeout=5) as client:
        assert runtime.unhealthy() == []
        assert chat(client, base).headers["x-tier"] == "hosted"
        pool = httpx.get(base + "/admin/pool").json()
        assert pool["target_size"] == 2 and {n["name"] for n in pool["nodes"]} == {"gpu-a1", "gpu-a2"}
        _toxic(runtime.toxiproxy_url or "", "hosted-model", 2000)
        # One sequential client gives the breaker few samples; the health checks (500 ms timeout)
        # take hosted out first. Either way the gateway must fail over and log it.
        poll(lambda: chat(client, base).headers["x-tier"] == "gpu" and events(base, "failover"), 20,
             "failover to the GPU pool")
        poll(lambda: chat(client, base) and (events(base, "upstream_down") or events(base, "breaker_open")), 20,
             "hosted taken out of rotation")
        httpx.delete(f"{runtime.toxiproxy_url}/proxies/hosted-model/toxics/slow")
        poll(lambda: chat(client, base).headers["x-tier"] == "hosted" and events(base, "failback"), 30,
             "failback to hosted")
        log = events(base)
    kinds = [e["event"] for e in log]
    assert kinds.index("failover") < len(kinds) - 1 - kinds[::-1].index("failback")


# -- /metrics (issue 15) ----------------------------------------------------------------------

def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed with prometheus-client's own parser: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    reply = httpx.get(base + "/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def test_gateway_metrics_count_per_tier_and_show_breaker_and_pool(spawn: Callable[..., Program]) -> None:
    hosted = model_server(spawn, "hosted-1", "hosted", region="external")
    gpu = model_server(spawn, "gpu-a1", "gpu")
    gw = gateway(spawn, [upstream("hosted-1", hosted.url, "hosted", "external"),
                         upstream("gpu-a1", gpu.url, "gpu", "region-a")], BREAKER_COOLDOWN_S=30)
    with httpx.Client() as client:
        for _ in range(5):
            assert chat(client, gw.url).status_code == 200
        os.killpg(hosted.popen.pid, signal.SIGKILL)
        hosted.popen.wait(timeout=10)
        for _ in range(10):
            assert chat(client, gw.url).status_code == 200
    seen = poll(lambda: (m := scrape(gw.url))[("drill_gateway_breaker_state", (("tier", "hosted"),))] == 2 and m,
                10, "the hosted breaker open in /metrics")
    assert seen[("drill_gateway_requests_total", (("tier", "hosted"),))] == 5
    assert seen[("drill_gateway_requests_total", (("tier", "gpu"),))] == 10
    assert seen[("drill_gateway_request_duration_seconds_count", (("tier", "gpu"),))] == 10
    assert seen[("drill_gateway_tier_errors_total", (("tier", "hosted"),))] >= 1
    assert seen[("drill_gateway_errors_total", ())] == 0
    assert seen[("drill_gateway_breaker_state", (("tier", "gpu"),))] == 0
    assert seen[("drill_gateway_pool_healthy_nodes", ())] == 1
    healthy = ("drill_gateway_upstream_healthy", (("region", "external"), ("tier", "hosted"), ("upstream", "hosted-1")))
    assert poll(lambda: scrape(gw.url)[healthy] == 0, 10, "hosted-1 unhealthy in /metrics")


def test_model_server_queue_depth_counts_requests_inside_the_node(spawn: Callable[..., Program]) -> None:
    node = model_server(spawn, "gpu-a1", "gpu")
    assert httpx.post(node.url + "/fault", json={"mode": "hang"}).status_code == 200
    replies: list[int] = []
    stalled = [threading.Thread(target=lambda: replies.append(chat(httpx.Client(timeout=10), node.url).status_code))
               for _ in range(3)]
    for thread in stalled:
        thread.start()
    poll(lambda: scrape(node.url)[("drill_model_queue_depth", ())] == 3, 10, "three hung requests in the queue")
    assert scrape(node.url)[("drill_model_fault_active", (("mode", "hang"),))] == 1
    httpx.delete(node.url + "/fault")
    for thread in stalled:
        thread.join(timeout=10)
    assert replies == [200, 200, 200]
    after = scrape(node.url)
    assert after[("drill_model_queue_depth", ())] == 0
    assert after[("drill_model_requests_total", (("code", "200"),))] == 3
