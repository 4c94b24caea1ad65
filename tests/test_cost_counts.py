"""The counts cost figures come from, made by the reference programs themselves (run for real on
free ports): the gateway's own count of its upstream calls beside an independent one (a rate-limited
upstream counting what reached it), the retry-storm knobs, and cloud-api's record of lifetimes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from aiohttp import web

from harness.testing import serve_in_thread
from harness.testing.stacks import Program, gateway, model_server, upstream

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def calls_counter(name: str, text: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {s.labels["upstream"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


@pytest.fixture
def rate_limited() -> Iterator[tuple[str, list[int]]]:
    """A provider answering every API call 429 with Retry-After: 5, counting the calls it got."""
    seen: list[int] = []

    async def chat(_: web.Request) -> web.Response:
        seen.append(1)
        return web.json_response({"error": {"type": "rate_limit_error"}}, status=429, headers={"Retry-After": "5"})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    with serve_in_thread(app) as url:
        yield url, seen


def ten_requests(gw: Program) -> None:
    with httpx.Client(timeout=5) as client:
        for _ in range(10):
            reply = client.post(gw.url + "/v1/chat/completions", json=CHAT)
            assert reply.status_code == 200 and reply.headers["x-tier"] == "gpu"


def test_a_gateway_retrying_429s_calls_the_provider_1_plus_n_times_and_counts_each_call(
    spawn: Callable[..., Program], rate_limited: tuple[str, list[int]]
) -> None:
    url, seen = rate_limited
    gpu = model_server(spawn, "gpu-a1", "gpu")
    gw = gateway(spawn, [upstream("hosted-1", url, "hosted", "external"), upstream("gpu-a1", gpu.url, "gpu", "region-a")],
                 RATE_LIMIT_RETRIES=2, HONOUR_RETRY_AFTER="false", BREAKER_ERROR_RATE=1.0)
    ten_requests(gw)
    assert len(seen) == 30  # 1 + 2 retries per request, none skipped
    counted = calls_counter("drill_gateway_upstream_calls_total", httpx.get(gw.url + "/metrics").text)
    assert counted == {"hosted-1": 30, "gpu-a1": 10}  # the gateway's own count agrees with the provider's


def test_the_reference_gateway_honours_retry_after_and_calls_the_provider_once(
    spawn: Callable[..., Program], rate_limited: tuple[str, list[int]]
) -> None:
    url, seen = rate_limited
    gpu = model_server(spawn, "gpu-a1", "gpu")
    gw = gateway(spawn, [upstream("hosted-1", url, "hosted", "external"), upstream("gpu-a1", gpu.url, "gpu", "region-a")])
    ten_requests(gw)
    assert len(seen) == 1  # skipped for the Retry-After's 5 s after the first 429
    counted = calls_counter("drill_gateway_upstream_calls_total", httpx.get(gw.url + "/metrics").text)
    assert counted == {"hosted-1": 1, "gpu-a1": 10}


def test_cloud_api_keeps_the_lifetimes_of_terminated_instances(spawn: Callable[..., Program]) -> None:
    regions = ('{"region-a": {"quota": 3, "running": ["gpu-a1"], '
               '"standby": [{"node": "gpu-a3", "url": "http://127.0.0.1:1"}]}}')
    api = spawn("cloud_api", REGIONS=regions, PROVISION_DELAY_MS=10)
    created = httpx.post(api.url + "/instances", json={"region": "region-a", "instance_type": "gpu.h100"}).json()
    assert httpx.delete(f"{api.url}/instances/{created['id']}").status_code == 200
    active = httpx.get(api.url + "/instances").json()
    every = httpx.get(api.url + "/instances", params={"all": "true"}).json()
    assert [i["node"] for i in active] == ["gpu-a1"]
    [gone] = [i for i in every if i["id"] == created["id"]]
    assert gone["state"] == "terminated" and gone["terminated_at"] >= gone["created_at"]
    assert [i["preexisting"] for i in every if i["node"] == "gpu-a1"] == [True]
