"""The reference stack streams (issue 13): the model server's SSE answer and the gateway's policy
for provider errors, with real processes on free ports. A misbehaving provider is a small real
aiohttp server in this process (``ScriptedProvider``) whose next answers the test scripts."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from conftest import free_port, require_mitmdump, serve_in_thread
from test_targets import Program, events, gateway, model_server, poll, spawn, upstream

from harness.httpfaults.proxy import HttpRoute, running_http_fault_proxy
from targets.answers import answer_token
from targets.gateway import SseSplitter, classify_event, parse_retry_after

__all__ = ["spawn"]  # the fixture, shared with tests/test_targets.py

STREAM = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Streamed:
    """What a client saw of one streamed answer."""

    status: int
    headers: httpx.Headers
    data: list[str]  # the data: payloads, in order

    @property
    def tokens(self) -> list[str]:
        found = []
        for item in self.data:
            if item == "[DONE]":
                continue
            choices = json.loads(item).get("choices") or [{}]
            content = choices[0].get("delta", {}).get("content")
            if content:
                found.append(content)
        return found

    @property
    def done(self) -> bool:
        return bool(self.data) and self.data[-1] == "[DONE]"

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [json.loads(item)["error"] for item in self.data if item != "[DONE]" and "error" in json.loads(item)]


def stream(base: str, body: dict[str, Any] | None = None) -> Streamed:
    with httpx.stream("POST", base + "/v1/chat/completions", json=body or STREAM, timeout=10) as reply:
        data = [line[len("data: "):] for line in reply.iter_lines() if line.startswith("data: ")]
        return Streamed(reply.status_code, reply.headers, data)


def chunk(content: str | None) -> bytes:
    delta = {} if content is None else {"content": content}
    event = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": "stub",
             "choices": [{"index": 0, "delta": delta, "finish_reason": None if content else "stop"}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


@dataclass
class ScriptedProvider:
    """A provider whose next chat answers are scripted (``plan``); when the plan is empty it
    streams three tokens and [DONE] (or answers JSON to a non-stream request)."""

    plan: deque[str] = field(default_factory=deque)
    calls: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.calls += 1
        step = self.plan.popleft() if self.plan else "ok"
        if step.startswith("429"):  # "429" or "429:<Retry-After>"
            _, _, retry_after = step.partition(":")
            headers = {"Retry-After": retry_after} if retry_after else {}
            return web.json_response({"error": {"type": "rate_limit_error"}}, status=429, headers=headers)
        if step == "503":
            return web.json_response({"error": {"type": "overloaded_error"}}, status=503)
        if step == "malformed":
            return web.Response(body=b'{"id": "chatcmpl-stub", "choi\x00', content_type="application/json")
        if not body.get("stream"):
            return web.json_response({"object": "chat.completion", "choices": [{"message": {"content": "stub"}}]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if step == "empty":  # headers, then a clean end before any token
            return response
        if step == "silent":  # headers, then nothing for longer than the first-token timeout
            await asyncio.sleep(1.5)
            return response
        await response.write(chunk("one ") + chunk("two "))
        if step == "cut":  # a clean end of body without [DONE]
            return response
        if step == "reset":
            assert request.transport is not None
            request.transport.close()
            return response
        if step == "stall":  # no token for longer than the gateway's idle timeout
            await asyncio.sleep(1.5)
        try:
            await response.write(chunk("three ") + chunk(None) + b"data: [DONE]\n\n")
        except ConnectionError:
            pass  # the gateway gave up on the stall and closed the connection
        return response


@pytest.fixture
def provider() -> Iterator[tuple[ScriptedProvider, str]]:
    scripted = ScriptedProvider()
    with serve_in_thread(scripted.app()) as url:
        yield scripted, url


def metric(base: str, line_start: str) -> float:
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{line_start} not in {base}/metrics")


def provider_and_gpu(
    spawn: Callable[..., Program], provider_url: str, **env: Any
) -> tuple[Program, Program]:
    """A gateway with the scripted provider as the hosted tier and a real GPU model server."""
    gpu = model_server(spawn, "gpu-a1", "gpu", TOKENS_PER_ANSWER=4, TOKEN_INTERVAL_MS=1)
    gw = gateway(
        spawn,
        [upstream("provider", provider_url, "hosted", "external"), upstream("gpu-a1", gpu.url, "gpu", "region-a")],
        **env,
    )
    return gw, gpu


# -- pure logic -------------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates_and_ignores_garbage() -> None:
    assert parse_retry_after("3", 1000.0) == 3.0
    assert parse_retry_after(" 2.5 ", 1000.0) == 2.5
    assert parse_retry_after("-4", 1000.0) == 0.0
    # RFC 9110 HTTP date, 30 s after "now".
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111747.0) == 30.0
    assert parse_retry_after(None, 0.0) is None
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after("nan", 0.0) is None


def test_sse_splitter_rejoins_events_cut_across_chunks_and_classifies_them() -> None:
    splitter = SseSplitter()
    whole = chunk("a ") + b": comment\r\n\r\n" + chunk(None) + b'data: {"error": {"type": "x"}}\n\n' + b"data: [DONE]\n\n"
    blocks = [block for index in range(0, len(whole), 7) for block in splitter.feed(whole[index:index + 7])]
    assert [classify_event(block) for block in blocks] == ["token", "other", "other", "error", "done"]


# -- model server -----------------------------------------------------------------------------


def test_model_server_streams_one_chunk_per_token_then_finish_and_done(spawn: Callable[..., Program]) -> None:
    node = model_server(spawn, "gpu-s", "gpu", TOKENS_PER_ANSWER=6, TOKEN_INTERVAL_MS=1)
    seen = stream(node.url)
    assert seen.status == 200 and seen.headers["content-type"].startswith("text/event-stream")
    assert seen.headers["x-served-by"] == "gpu-s"
    assert seen.tokens == [answer_token("chat", "hi", index) for index in range(6)]  # the reference answer
    finish = json.loads(seen.data[-2])
    assert finish["object"] == "chat.completion.chunk" and finish["choices"][0]["finish_reason"] == "stop"
    assert seen.done and len(seen.data) == 6 + 2
    assert len(stream(node.url, {**STREAM, "max_tokens": 2}).tokens) == 2  # max_tokens caps the answer
    assert stream(node.url, {**STREAM, "max_tokens": 0}).status == 400
    # Non-stream answers are unchanged.
    assert httpx.post(node.url + "/v1/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"] == (
        "ok from gpu-s"
    )
    # A fault set before the request answers its status before any token.
    httpx.post(node.url + "/fault", json={"mode": "error", "status": 503})
    faulted = stream(node.url)
    assert faulted.status == 503 and faulted.tokens == []
    assert metric(node.url, "drill_model_streams_started_total") == 2
    assert metric(node.url, "drill_model_streams_completed_total") == 2


# -- gateway ----------------------------------------------------------------------------------


def test_gateway_relays_a_stream_and_fails_over_on_503_before_the_first_token(spawn: Callable[..., Program]) -> None:
    hosted = model_server(spawn, "hosted-1", "hosted", region="external", TOKENS_PER_ANSWER=5, TOKEN_INTERVAL_MS=1)
    gpu = model_server(spawn, "gpu-a1", "gpu", TOKENS_PER_ANSWER=5, TOKEN_INTERVAL_MS=1)
    gw = gateway(
        spawn,
        [upstream("hosted-1", hosted.url, "hosted", "external"), upstream("gpu-a1", gpu.url, "gpu", "region-a")],
    )
    seen = stream(gw.url)
    assert seen.status == 200 and seen.done and len(seen.tokens) == 5
    assert seen.headers["x-served-by"] == "hosted-1" and seen.headers["x-tier"] == "hosted"
    assert seen.headers["content-type"].startswith("text/event-stream")
    httpx.post(hosted.url + "/fault", json={"mode": "error", "status": 503})
    failed_over = stream(gw.url)
    assert failed_over.status == 200 and failed_over.done and len(failed_over.tokens) == 5
    assert failed_over.headers["x-served-by"] == "gpu-a1" and failed_over.headers["x-tier"] == "gpu"
    assert [(e["from"], e["to"]) for e in events(gw.url, "failover")] == [("hosted", "gpu")]
    assert metric(gw.url, 'drill_gateway_streams_total{outcome="completed"}') == 2


def test_429_with_retry_after_fails_over_at_once_and_skips_the_provider_until_it_passes(
    spawn: Callable[..., Program], provider: tuple[ScriptedProvider, str]
) -> None:
    scripted, url = provider
    scripted.plan.append("429:3600")
    gw, _ = provider_and_gpu(spawn, url, RETRY_AFTER_CAP_S=1)
    first = stream(gw.url)
    assert first.done and first.headers["x-served-by"] == "gpu-a1"
    (limited,) = events(gw.url, "rate_limited")
    assert limited["tier"] == "hosted" and limited["node"] == "provider"
    assert limited["retry_after_s"] == 3600 and limited["skip_s"] == 1  # capped by RETRY_AFTER_CAP_S
    # Skipped while the (capped) Retry-After runs: the next call the provider sees is served.
    served = poll(lambda: (s := stream(gw.url)).headers["x-served-by"] == "provider" and s, 15, "provider tried again")
    assert served.done and scripted.calls == 2
    assert [e["event"] for e in events(gw.url) if e["event"] in ("failover", "failback")] == ["failback"]
    assert metric(gw.url, 'drill_gateway_rate_limited_total{tier="hosted"}') == 1


def test_503_has_a_retry_after_when_the_only_provider_is_rate_limited(
    spawn: Callable[..., Program], provider: tuple[ScriptedProvider, str]
) -> None:
    scripted, url = provider
    scripted.plan.append("429")  # no Retry-After: skipped for RATE_LIMIT_SKIP_S
    gw = gateway(spawn, [upstream("provider", url, "hosted", "external")], RATE_LIMIT_SKIP_S=5)
    reply = httpx.post(gw.url + "/v1/chat/completions", json=CHAT)
    assert reply.status_code == 503 and reply.headers["x-served-by"] == "none"
    assert 1 <= int(reply.headers["retry-after"]) <= 5
    assert stream(gw.url).status == 503 and scripted.calls == 1  # skipped, not asked again
    (limited,) = events(gw.url, "rate_limited")
    assert limited["retry_after_s"] is None and limited["skip_s"] == 5


def test_a_stream_that_fails_before_its_first_token_fails_over(
    spawn: Callable[..., Program], provider: tuple[ScriptedProvider, str]
) -> None:
    scripted, url = provider
    scripted.plan.extend(["empty", "silent", "malformed"])
    gw, _ = provider_and_gpu(spawn, url, FIRST_TOKEN_TIMEOUT_MS=300, MAX_ATTEMPTS_PER_TIER=1)
    for _ in range(2):  # a clean end with no token, then no first token within 300 ms
        seen = stream(gw.url)
        assert seen.done and seen.headers["x-served-by"] == "gpu-a1" and seen.errors == []
    # A non-stream 200 whose body is not JSON is a failed attempt too.
    reply = httpx.post(gw.url + "/v1/chat/completions", json=CHAT)
    assert reply.status_code == 200 and reply.headers["x-served-by"] == "gpu-a1"
    assert reply.json()["choices"][0]["message"]["content"] == "ok from gpu-a1"
    assert scripted.calls == 3
    assert metric(gw.url, 'drill_gateway_tier_errors_total{tier="hosted"}') == 3
    assert not events(gw.url, "stream_broken")


def test_after_the_first_token_a_broken_stream_ends_with_one_error_event_and_no_done(
    spawn: Callable[..., Program], provider: tuple[ScriptedProvider, str]
) -> None:
    scripted, url = provider
    scripted.plan.extend(["cut", "reset", "stall"])
    gw, gpu = provider_and_gpu(spawn, url, STREAM_IDLE_TIMEOUT_MS=300)
    for why in ("without [DONE]", "connection broke", "no token for 300 ms"):
        seen = stream(gw.url)
        assert seen.status == 200 and seen.headers["x-served-by"] == "provider"
        assert seen.tokens == ["one ", "two "] and not seen.done
        (error,) = seen.errors
        assert error["type"] == "upstream_stream_broken" and error["tokens_sent"] == 2
        assert why in error["message"]
        assert "error" in json.loads(seen.data[-1])  # the error event is the last one
    broken = events(gw.url, "stream_broken")
    assert [e["tokens_sent"] for e in broken] == [2, 2, 2] and {e["node"] for e in broken} == {"provider"}
    # Not resumed on another tier: the GPU node never saw a stream.
    assert metric(gpu.url, "drill_model_streams_started_total") == 0
    assert metric(gw.url, 'drill_gateway_streams_total{outcome="broken"}') == 3
    assert metric(gw.url, 'drill_gateway_tier_errors_total{tier="hosted"}') == 3  # bad breaker samples
    assert stream(gw.url).done  # the provider streams whole again


def test_through_the_http_fault_proxy_the_gateway_keeps_its_policy(
    spawn: Callable[..., Program], tmp_path: Path
) -> None:
    """The stack's topology (CONTRACT-13): gateway -> mitmdump route "hosted-model" -> hosted."""
    require_mitmdump()
    hosted = model_server(spawn, "hosted-model", "hosted", region="external", TOKENS_PER_ANSWER=6, TOKEN_INTERVAL_MS=2)
    gpu = model_server(spawn, "gpu-a1", "gpu", TOKENS_PER_ANSWER=6, TOKEN_INTERVAL_MS=1)
    route = HttpRoute("hosted-model", free_port(), hosted.url)
    with running_http_fault_proxy([route], tmp_path / "mitmdump.log") as faults:
        gw = gateway(
            spawn,
            [upstream("hosted-model", route.url, "hosted", "external"), upstream("gpu-a1", gpu.url, "gpu", "region-a")],
            FIRST_TOKEN_TIMEOUT_MS=300,
        )
        whole = stream(gw.url)
        assert whole.done and len(whole.tokens) == 6 and whole.headers["x-served-by"] == "hosted-model"

        faults.add("slow", "first_token_delay", "hosted-model", {"delay_ms": 1500})
        slow = stream(gw.url)
        assert slow.done and slow.headers["x-served-by"] == "gpu-a1"
        faults.reset()

        faults.add("cut", "stream_cut", "hosted-model", {"after_events": 3})
        cut = stream(gw.url)
        assert cut.headers["x-served-by"] == "hosted-model" and len(cut.tokens) == 3 and not cut.done
        assert [e["tokens_sent"] for e in cut.errors] == [3]
        faults.reset()

        faults.add("storm", "http_error", "hosted-model", {"status": 429, "retry_after_s": 30})
        limited = [stream(gw.url) for _ in range(3)]
        assert all(s.done and s.headers["x-served-by"] == "gpu-a1" for s in limited)
        (storm,) = faults.faults()
        assert storm.hits == 1  # skipped for its Retry-After after the first 429
        (event,) = events(gw.url, "rate_limited")
        assert event["retry_after_s"] == 30 and event["skip_s"] == 30
