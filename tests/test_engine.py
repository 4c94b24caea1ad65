"""Whole drills through the engine with real parts: a user's own service behind a proxy the
scenario declares, a real toxiproxy-server, real Locust and prober, real HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp import web

from harness.engine import run_drill
from harness.errors import ScenarioError
from harness.rundir.frames import read_samples
from harness.rundir.journal import applied_faults
from harness.testing import free_port, serve_in_thread
from harness.testing.drills import own_service
from harness.testing.drills import own_service_scenario as scenario
from harness.toxiproxy import ToxiproxyClient


@pytest.mark.slow
@pytest.mark.beside_drills  # an in-process service of its own: little CPU (tests/conftest.py)
def test_drill_own_service_end_to_end(tmp_path: Path, toxiproxy_url: str) -> None:
    with serve_in_thread(own_service()) as url:
        upstream = url.removeprefix("http://")
        path = scenario(tmp_path, toxiproxy_url, upstream, free_port())
        result = run_drill(path, out=tmp_path / "run")

    run_dir = tmp_path / "run"
    results = json.loads((run_dir / "results.json").read_text())
    assert result.verdict == results["verdict"] == "passed", results.get("abort_reason")
    assert result.exit_code == 0
    assert results["schema"] == "drill.results/v1"
    tools = results["environment"]["tools"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", tools["toxiproxy"]), tools  # what GET /version answered
    assert tools["python"] and tools["locust"] and tools["drill"]
    fault = results["faults"][0]
    assert fault["onset_source"] == "toxiproxy-api"
    assert fault["rto_s"] is not None and fault["impact"] in ("recovered", "none")
    assert results["measurement"]["samples"] > 100
    assert results["cleanup"]["ok"] is True and results["cleanup"]["toxics_left"] == 0
    for name in ("report.html", "junit.xml", "journal.jsonl", "scenario.yaml"):
        assert (run_dir / name).exists(), name
    assert applied_faults(run_dir / "journal.jsonl") == []
    with ToxiproxyClient(toxiproxy_url) as client:
        assert "svc" not in client.proxies()  # the proxy the scenario declared is gone again


@pytest.mark.slow
@pytest.mark.beside_drills  # an in-process service of its own: little CPU (tests/conftest.py)
def test_latency_objective_missed_exits_1(tmp_path: Path, toxiproxy_url: str) -> None:
    with serve_in_thread(own_service()) as url:
        path = scenario(
            tmp_path, toxiproxy_url, url.removeprefix("http://"), free_port(),
            objectives="{p95_ms: 2x baseline, rto_s: 1}",
            fault="{name: slow, type: latency, target: {proxy: svc}, latency_ms: 400, duration: 3s}",
        )
        result = run_drill(path, out=tmp_path / "run")
    assert result.verdict == "failed" and result.exit_code == 1
    missed = {o["name"] for o in result.results.document()["objectives"] if not o["passed"]}
    assert "p95_ms" in missed
    assert result.results.document()["cleanup"]["toxics_left"] == 0


@pytest.mark.slow
@pytest.mark.beside_drills  # an in-process service of its own: little CPU (tests/conftest.py)
def test_stop_condition_aborts_with_exit_3_and_cleans_up(tmp_path: Path, toxiproxy_url: str) -> None:
    with serve_in_thread(own_service()) as url:
        path = scenario(
            tmp_path, toxiproxy_url, url.removeprefix("http://"), free_port(),
            fault="{name: dead, type: down, target: {proxy: svc}, duration: 3s}",
            stop_when="stop_when: {error_rate: 0.5, for: 1s}",
        )
        result = run_drill(path, out=tmp_path / "run")
    assert result.verdict == "aborted" and result.exit_code == 3
    assert "stop condition" in (result.abort_reason or "")
    assert result.results.document()["cleanup"]["ok"] is True
    assert applied_faults(tmp_path / "run" / "journal.jsonl") == []


def test_unknown_proxy_is_bad_input_and_applies_nothing(tmp_path: Path, toxiproxy_url: str) -> None:
    path = scenario(
        tmp_path, toxiproxy_url, "127.0.0.1:1", free_port(),
        fault="{name: slow, type: latency, target: {proxy: nope}, latency_ms: 300}",
    )
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "proxy: nope" in text)
    with pytest.raises(ScenarioError, match=rf"own.yaml:{line} faults\[0\].target.proxy: unknown proxy 'nope'"):
        run_drill(path, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_proxy_missing_on_server_is_bad_input_and_applies_nothing(tmp_path: Path, toxiproxy_url: str) -> None:
    """Without `proxies:` the proxy must already exist on the user's Toxiproxy; checked before load."""
    path = tmp_path / "ghost.yaml"
    path.write_text(textwrap.dedent(f"""\
        apiVersion: drill/v1
        kind: Scenario
        name: ghost
        toxiproxy: {{url: {toxiproxy_url}}}
        load: {{host: http://127.0.0.1:{free_port()}}}
        faults: [{{name: slow, type: latency, target: {{proxy: ghost}}, latency_ms: 300}}]
        """))
    with pytest.raises(ScenarioError, match="no proxy 'ghost'"):
        run_drill(path, out=tmp_path / "run")
    journal = (tmp_path / "run" / "journal.jsonl").read_text()
    assert "fault.intent" not in journal and "load.starting" not in journal
    with ToxiproxyClient(toxiproxy_url) as client:
        assert client.proxies() == {}


def test_unhealthy_stack_aborts_before_any_fault(tmp_path: Path, toxiproxy_url: str) -> None:
    dead_upstream = f"127.0.0.1:{free_port()}"  # nothing listens there
    path = scenario(tmp_path, toxiproxy_url, dead_upstream, free_port())
    result = run_drill(path, out=tmp_path / "run")
    assert result.verdict == "aborted" and result.exit_code == 3
    assert "steady state" in (result.abort_reason or "")
    assert "fault.intent" not in (tmp_path / "run" / "journal.jsonl").read_text()
    with ToxiproxyClient(toxiproxy_url) as client:
        assert client.proxies() == {}


def cold_after_preflight(cold_s: float) -> web.Application:
    """A chat endpoint that answers the preflight's five requests at once, then holds every answer
    until ``cold_s`` after the first request that followed them (a model server loading its
    weights as load arrives), and answers at once from then on."""
    answered = 0
    warm_at: float | None = None

    async def chat(_: web.Request) -> web.Response:
        nonlocal answered, warm_at
        answered += 1
        if answered > 5:
            loop = asyncio.get_running_loop()
            warm_at = warm_at or loop.time() + cold_s
            await asyncio.sleep(max(0.0, warm_at - loop.time()))
        return web.json_response({"choices": []}, headers={"X-Served-By": "svc-1", "X-Tier": "hosted"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.mark.slow
@pytest.mark.beside_drills  # an in-process service of its own: little CPU (tests/conftest.py)
def test_a_first_answer_slower_than_the_loads_margin_keeps_the_load_to_the_end_of_the_phases(
    tmp_path: Path, toxiproxy_url: str
) -> None:
    """The phases begin at the first recorded answer. With a first answer 7 s away, longer than
    the load's 5 s self-stop margin (harness.load.runner.RUN_TIME_MARGIN_S), a load bounded from
    its own start to the phases' length fell silent before the recovery phase ended; the bound
    now leaves room for that wait."""
    listen = free_port()
    with serve_in_thread(cold_after_preflight(7.0)) as upstream:
        path = tmp_path / "slow.yaml"
        path.write_text(textwrap.dedent(f"""\
            apiVersion: drill/v1
            kind: Scenario
            name: slow-answers
            toxiproxy: {{url: {toxiproxy_url}}}
            proxies:
              - {{name: svc, listen: 127.0.0.1:{listen}, upstream: {upstream.removeprefix("http://")}}}
            load:
              host: http://127.0.0.1:{listen}
              users: 1
              pace_hz: 10
              request: {{method: POST, path: /v1/chat/completions, json: {{model: chat}}}}
              timeout_s: 15
              probe_rate_hz: 2
            phases: {{baseline: 2s, fault: 2s, recovery: 3s}}
            faults:
              - {{name: slow, type: latency, target: {{proxy: svc}}, latency_ms: 100, duration: 2s}}
            objectives: {{max_error_rate: 1.0}}
            """))
        result = run_drill(path, out=tmp_path / "run")
    assert result.abort_reason is None, result.abort_reason
    assert result.exit_code == 0, result.results.document()["objectives"]
    phases = result.results.document()["phases"]
    end = datetime.fromisoformat(phases["recovery"]["end"]).timestamp()
    samples = read_samples(tmp_path / "run")
    last_probe = samples.loc[samples["source"] == "probe", "start"].max()
    assert phases["recovery"]["requests"] > 0, phases["recovery"]
    assert last_probe > end - 1.0, (last_probe, end)  # the probe kept its rate to the end


def test_a_probe_that_fails_at_preflight_aborts_with_nothing_applied(tmp_path: Path, toxiproxy_url: str) -> None:
    """The five preflight probes (sent at once) answer 503: exit 3 naming the status, no proxy's
    toxic added, no load started."""

    async def unavailable(_: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", unavailable)
    with serve_in_thread(app) as upstream:
        path = scenario(tmp_path, toxiproxy_url, upstream.removeprefix("http://"), free_port())
        result = run_drill(path, out=tmp_path / "run")
        with ToxiproxyClient(toxiproxy_url) as client:
            toxics = [t for p in client.proxies() for t in client.toxics(p)]
    assert result.exit_code == 3 and result.abort_reason is not None
    assert "steady state not met before any fault" in result.abort_reason and "HTTP 503" in result.abort_reason
    assert "Nothing was applied" in result.abort_reason
    assert toxics == []
    assert not (tmp_path / "run" / "samples" / "probe.csv").exists()
