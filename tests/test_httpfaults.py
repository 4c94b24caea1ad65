"""The HTTP fault proxy (real mitmdump, real HTTP): each provider fault as a client sees it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from harness.errors import FaultError
from harness.httpfaults.client import HttpFaultClient, HttpFaultProxyError
from harness.httpfaults.proxy import HttpRoute, find_mitmdump, running_http_fault_proxy
from tests.conftest import free_port, require, serve_in_thread

EVENTS = 10
EVENT_INTERVAL_S = 0.03


def mitmdump_available() -> bool:
    try:
        find_mitmdump()
        return True
    except FaultError:
        return False


def sse_provider() -> web.Application:
    """A provider that streams EVENTS chat chunks then [DONE], or answers JSON when not streaming."""

    async def chat(request: web.Request) -> web.StreamResponse:
        if request.query.get("stream") == "false":
            return web.json_response({"choices": [{"message": {"content": "hello"}}]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(EVENTS):
            await response.write(f'data: {{"choices": [{{"delta": {{"content": "t{i}"}}}}]}}\n\n'.encode())
            await asyncio.sleep(EVENT_INTERVAL_S)
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@dataclass
class Seen:
    status: int
    retry_after: str | None
    events: list[tuple[float, str]]
    body: bytes

    @property
    def done(self) -> bool:
        return any(text == "data: [DONE]" for _, text in self.events)

    @property
    def ttft_s(self) -> float:
        return self.events[0][0]

    @property
    def max_gap_s(self) -> float:
        times = [t for t, _ in self.events]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def call(url: str, stream: bool = True) -> Seen:
    started = time.monotonic()
    events: list[tuple[float, str]] = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", params={"stream": str(stream).lower()},
                      json={"stream": stream}, timeout=10) as response:
        body = b""
        for line in response.iter_lines():
            if line:
                events.append((time.monotonic() - started, line))
                body += line.encode()
        return Seen(response.status_code, response.headers.get("retry-after"), events, body)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpFaultClient, str, str]]:
    require(mitmdump_available(), "mitmdump (the HTTP fault proxy)", "run scripts/mitmproxy-setup")
    log = Path(tmp_path_factory.mktemp("mitm")) / "mitmdump.log"
    with serve_in_thread(sse_provider()) as upstream:
        routes = [HttpRoute("hosted", free_port(), upstream), HttpRoute("fallback", free_port(), upstream)]
        with running_http_fault_proxy(routes, log) as client:
            yield client, routes[0].url, routes[1].url


@pytest.fixture
def faults(proxy: tuple[HttpFaultClient, str, str]) -> Iterator[HttpFaultClient]:
    client = proxy[0]
    yield client
    client.reset()
    assert client.faults() == []


def test_without_faults_the_stream_passes_whole(proxy: tuple[HttpFaultClient, str, str]) -> None:
    seen = call(proxy[1])
    assert seen.status == 200 and seen.done and len(seen.events) == EVENTS + 1


def test_http_error_answers_429_with_retry_after_on_its_route_only(
    faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]
) -> None:
    faults.add("rate-limit", "http_error", "hosted", {"status": 429, "retry_after_s": 2})
    seen = call(proxy[1])
    assert (seen.status, seen.retry_after) == (429, "2")
    assert b"rate_limit_error" in seen.body
    assert call(proxy[2]).status == 200  # the other route is untouched
    assert [f.hits for f in faults.faults()] == [1]


def test_http_error_share_picks_a_reproducible_part(faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]) -> None:
    faults.add("overloaded", "http_error", "hosted", {"status": 529, "share": 0.5})
    statuses = [call(proxy[1], stream=False).status for _ in range(40)]
    assert set(statuses) == {200, 529}
    assert 8 <= statuses.count(529) <= 32


def test_first_token_delay_holds_the_first_event(faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]) -> None:
    undisturbed = call(proxy[1]).ttft_s
    faults.add("slow-start", "first_token_delay", "hosted", {"delay_ms": 400})
    seen = call(proxy[1])
    assert seen.done and seen.ttft_s >= 0.4 > undisturbed


def test_stream_cut_after_events_ends_the_body_without_done(
    faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]
) -> None:
    faults.add("cut", "stream_cut", "hosted", {"after_events": 3})
    seen = call(proxy[1])
    assert seen.status == 200 and not seen.done and len(seen.events) == 3


def test_stream_cut_after_ms(faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]) -> None:
    faults.add("cut", "stream_cut", "hosted", {"after_ms": 100})
    seen = call(proxy[1])
    assert not seen.done and 0 < len(seen.events) < EVENTS


def test_stream_stall_holds_events_then_releases_them(
    faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]
) -> None:
    faults.add("stall", "stream_stall", "hosted", {"after_events": 2, "stall_ms": 250})
    seen = call(proxy[1])
    assert seen.done and len(seen.events) == EVENTS + 1
    assert seen.max_gap_s >= 0.25


def test_malformed_body_is_not_json(faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]) -> None:
    faults.add("garbled", "malformed", "hosted", {"share": 1})
    response = httpx.post(f"{proxy[1]}/v1/chat/completions", params={"stream": "false"}, timeout=10)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_control_api_errors_are_clear_and_removal_is_idempotent(faults: HttpFaultClient) -> None:
    with pytest.raises(HttpFaultProxyError, match="unknown fault type 'teapot'"):
        faults.add("x", "teapot", "hosted", {})
    with pytest.raises(HttpFaultProxyError, match="no proxy named 'nowhere'"):
        faults.add("x", "http_error", "nowhere", {})
    faults.add("once", "http_error", "hosted", {"status": 503})
    with pytest.raises(HttpFaultProxyError, match="already active"):
        faults.add("once", "http_error", "hosted", {"status": 503})
    faults.remove("once")
    faults.remove("once")
    assert faults.faults() == []


def test_unreachable_proxy_names_itself() -> None:
    with HttpFaultClient(f"http://127.0.0.1:{free_port()}", timeout_s=0.5) as client:
        with pytest.raises(HttpFaultProxyError, match="no answer"):
            client.faults()
