"""The HTTP fault proxy (real mitmdump, real HTTP): each provider fault as a client sees it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from harness.errors import FaultError
from harness.httpfaults.client import HttpFaultClient, HttpFaultProxyError
from harness.httpfaults.proxy import HttpRoute, running_http_fault_proxy
from harness.testing import free_port, require_mitmdump, serve_in_thread
from harness.testing.drills import SUITE_PACE_HZ

EVENTS = 10
EVENT_INTERVAL_S = 0.03


def sse_provider() -> web.Application:
    """A provider that streams EVENTS chat chunks then [DONE], or answers JSON when not streaming."""

    async def chat(request: web.Request) -> web.StreamResponse:
        if request.query.get("stream") == "false":
            return web.json_response({"choices": [{"message": {"content": "hello"}}]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        interval_s = float(request.query.get("interval_s", EVENT_INTERVAL_S))
        for i in range(EVENTS):
            await response.write(f'data: {{"choices": [{{"delta": {{"content": "t{i}"}}}}]}}\n\n'.encode())
            await asyncio.sleep(interval_s)
        await response.write(b"data: [DONE]\n\n")
        return response

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
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


def call(url: str, stream: bool = True, interval_s: float = EVENT_INTERVAL_S) -> Seen:
    started = time.monotonic()
    events: list[tuple[float, str]] = []
    params = {"stream": str(stream).lower(), "interval_s": str(interval_s)}
    with httpx.stream("POST", f"{url}/v1/chat/completions", params=params,
                      json={"stream": stream}, timeout=10) as response:
        body = b""
        for line in response.iter_lines():
            if line:
                events.append((time.monotonic() - started, line))
                body += line.encode()
        return Seen(response.status_code, response.headers.get("retry-after"), events, body)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpFaultClient, str, str]]:
    require_mitmdump()
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


def test_get_health_passes_untouched_while_the_api_fails(
    faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]
) -> None:
    """A provider's rate limit is on its API, not on its status probe (CONTRACT-13 section 1)."""
    _, hosted, _ = proxy
    faults.add("drill-storm", "http_error", "hosted", {"status": 503})
    faults.add("drill-garbled", "malformed", "hosted", {"share": 1.0})
    assert call(hosted).status == 503
    health = httpx.get(f"{hosted}/health", timeout=5)
    assert (health.status_code, health.json()) == (200, {"ok": True})
    assert {f.id: f.hits for f in faults.faults()} == {"drill-storm": 1, "drill-garbled": 0}


def test_http_error_share_picks_a_reproducible_part(faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]) -> None:
    faults.add("overloaded", "http_error", "hosted", {"status": 529, "share": 0.5})
    statuses = [call(proxy[1], stream=False).status for _ in range(40)]
    assert set(statuses) == {200, 529}
    assert 8 <= statuses.count(529) <= 32


def test_first_token_delay_holds_the_first_event(faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]) -> None:
    # 1.5 s, well past an undisturbed first event even beside two drills (one took 0.51 s there).
    undisturbed = call(proxy[1]).ttft_s
    faults.add("slow-start", "first_token_delay", "hosted", {"delay_ms": 1500})
    seen = call(proxy[1])
    assert seen.done and seen.ttft_s >= 1.5 > undisturbed
    assert [f.hits for f in faults.faults()] == [1]


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
    # Events 0.1 s apart: the answer goes on 0.8 s past the stall's start, so the stall holds its
    # whole length (at 30 ms apart the answer ended ~0.25 s in and released the held events then).
    seen = call(proxy[1], interval_s=0.1)
    assert seen.done and len(seen.events) == EVENTS + 1
    assert seen.max_gap_s >= 0.25
    assert [(f.hits, f.cut_short) for f in faults.faults()] == [(1, 0)]


def test_a_stall_holds_its_length_while_the_provider_sends_and_is_cut_short_when_it_ends(
    faults: HttpFaultClient, proxy: tuple[HttpFaultClient, str, str]
) -> None:
    """mitmproxy cannot send after a streamed response's upstream has ended (docs/http-faults.md):
    a stall longer than what is left of the answer releases its events at the upstream's end, and
    the fault counts it in ``cut_short``; a stall inside a longer answer holds and is not counted."""
    faults.add("stall", "stream_stall", "hosted", {"after_events": 2, "stall_ms": 600})
    # 10 events 0.1 s apart: events 3..10 go on for 0.8 s, longer than the stall.
    held = call(proxy[1], interval_s=0.1)
    assert held.done and len(held.events) == EVENTS + 1 and held.max_gap_s >= 0.6
    assert [(f.hits, f.cut_short) for f in faults.faults()] == [(1, 0)]
    # 10 events 30 ms apart: the answer ends about 0.25 s into the stall.
    cut = call(proxy[1])
    assert cut.done and len(cut.events) == EVENTS + 1
    assert [(f.hits, f.cut_short) for f in faults.faults()] == [(2, 1)]


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


# --- the fault family, through the scenario model and the engine -----------------------------------


def test_http_fault_applies_verifies_reverts_and_undoes_from_its_record(
    proxy: tuple[HttpFaultClient, str, str],
) -> None:
    from harness.faults import FaultContext, build_fault, undo_fault
    from harness.scenario.fault_specs import parse_fault_spec

    client, hosted, _ = proxy
    spec = parse_fault_spec({"name": "storm", "type": "http_error", "target": {"route": "hosted"},
                             "status": 429, "retry_after_s": 3})
    fault = build_fault(spec, FaultContext(http_faults=client))
    described = fault.describe()
    assert described["targets"] == ["http-route:hosted"]
    assert described["params"]["status"] == 429 and described["undo"].kind == "http_fault"
    onset = fault.apply()
    assert onset.source == "http-fault-proxy-api" and onset.uncertainty_s >= 0
    seen = call(hosted)
    assert (seen.status, seen.retry_after) == (429, "3")
    assert fault.verify() == ["storm: http_error still active on route 'hosted'"]
    fault.revert()
    fault.revert()  # idempotent
    assert fault.verify() == [] and call(hosted).status == 200
    fault.apply()
    undo_fault(described["undo"])  # what `drill recover` does after a kill -9
    assert client.faults() == [] and call(hosted).done


def test_http_fault_on_a_route_the_proxy_lacks_is_refused_before_anything_is_applied(
    proxy: tuple[HttpFaultClient, str, str],
) -> None:
    from harness.faults import FaultContext, build_fault
    from harness.scenario.fault_specs import parse_fault_spec

    spec = parse_fault_spec({"name": "cut", "type": "stream_cut", "target": {"route": "nowhere"}, "after_events": 2})
    with pytest.raises(FaultError, match="no route 'nowhere' .*it has: fallback, hosted"):
        build_fault(spec, FaultContext(http_faults=proxy[0]))
    assert proxy[0].faults() == []


@pytest.mark.parametrize(("fault", "message"), [
    ("{name: c, type: stream_cut, target: {route: hosted}}", "give after_events or after_ms"),
    ("{name: c, type: stream_cut, target: {route: hosted}, after_events: 2, after_ms: 5}", "give after_events or after_ms"),
    ("{name: e, type: http_error, target: {route: hosted}, status: 418}", "faults[0].status"),
    ("{name: e, type: http_error, target: {proxy: hosted}}", "act on a provider route of the HTTP fault proxy"),
    ("{name: s, type: stream_stall, target: {route: hosted}, after_events: 1}", "faults[0].stall_ms"),
    ("{name: m, type: malformed, target: {route: hosted}, share: 2}", "faults[0].share"),
])
def test_provider_fault_parameters_are_checked_with_file_and_line(tmp_path: Path, fault: str, message: str) -> None:
    from harness.errors import ScenarioError
    from harness.scenario import load_scenario

    path = tmp_path / "provider.yaml"
    path.write_text(
        "apiVersion: drill/v1\nkind: Scenario\nname: provider\n"
        "http_fault_proxy: {url: http://127.0.0.1:18300}\n"
        "load: {host: http://127.0.0.1:18300}\nphases: {baseline: 2s, fault: 2s, recovery: 2s}\n"
        f"faults:\n  - {fault}\nobjectives: {{rto_s: 5}}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert f"{path}:" in str(caught.value) and message in str(caught.value)


@pytest.mark.slow
def test_a_drill_with_a_429_storm_fails_its_error_budget_and_leaves_nothing_behind(
    tmp_path: Path, proxy: tuple[HttpFaultClient, str, str],
) -> None:
    from harness.engine import run_drill

    client, hosted, _ = proxy
    path = tmp_path / "storm.yaml"
    path.write_text(f"""\
apiVersion: drill/v1
kind: Scenario
name: provider-storm
http_fault_proxy: {{url: {hosted}}}
load:
  host: {hosted}
  users: 1
  pace_hz: {SUITE_PACE_HZ}
  request: {{method: POST, path: "/v1/chat/completions?stream=false", json: {{stream: false}}}}
  probe_rate_hz: 10
  timeout_s: 2
phases: {{baseline: 2s, fault: 3s, recovery: 3s}}
faults:
  - {{name: storm, type: http_error, target: {{route: hosted}}, status: 429, retry_after_s: 1, duration: 2s}}
objectives: {{max_error_rate: 0.01}}
""")
    result = run_drill(path, out=tmp_path / "run")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result.exit_code == 1, results.get("abort_reason")
    missed = [o["name"] for o in results["objectives"] if not o["passed"]]
    assert missed == ["max_error_rate"]
    assert results["faults"][0]["onset_source"] == "http-fault-proxy-api"
    assert results["cleanup"]["ok"] is True and client.faults() == []
