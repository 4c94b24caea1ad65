"""`drill init` (harness/init.py): a working scenario for the user's own service.

The end-to-end test starts a small service and its dependency on free 127.0.0.1 ports, runs
`drill init` -> `drill validate` -> `drill run` and gets a verdict. It starts Toxiproxy: run it
under the machine-wide lock (`flock /tmp/drill-integration.lock`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from harness.errors import ScenarioError
from harness.init import parse_dependency, plan_scenario, write_scenario
from harness.scenario import load_scenario
from harness.testing import VENV_BIN, free_port, require, serve_in_thread, toxiproxy_binary

DRILL = str(VENV_BIN / "drill")


def test_dependency_flag_is_name_host_port() -> None:
    dep = parse_dependency("provider=127.0.0.1:9000")
    assert (dep.name, dep.host, dep.port) == ("provider", "127.0.0.1", 9000)
    for bad in ("provider", "provider=127.0.0.1", "provider=127.0.0.1:99999", "Bad Name=127.0.0.1:1"):
        with pytest.raises(ScenarioError, match="--dependency"):
            parse_dependency(bad)


def test_written_scenario_loads_and_names_the_proxy_plan(tmp_path: Path) -> None:
    port = free_port()
    plan = plan_scenario(url=f"http://127.0.0.1:{port}/v1/chat?x=1", dependency=f"models=127.0.0.1:{port}",
                         body='{"model": "chat"}', fault_type="down", p95_ms="2x baseline")
    assert plan.method == "POST" and plan.path == "/v1/chat?x=1"
    scenario, stack = write_scenario(plan, tmp_path / "mine.yaml")
    spec = load_scenario(scenario).spec
    assert spec.faults[0].type == "down" and spec.faults[0].target.proxy == "models"
    assert spec.load.request is not None and spec.load.request.json_body == {"model": "chat"}
    assert stack.name == "mine.stack.yaml"
    assert f"upstream: '127.0.0.1:{port}'" in stack.read_text()
    assert plan.the_change() == f"call models at 127.0.0.1:{plan.listen_port} instead of 127.0.0.1:{port}"
    with pytest.raises(ScenarioError, match="already exist"):
        write_scenario(plan, tmp_path / "mine.yaml")


def test_missing_flags_off_a_terminal_exit_2_naming_the_flag(tmp_path: Path) -> None:
    done = subprocess.run([DRILL, "init", "--dependency", "p=127.0.0.1:9000"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "missing --url" in done.stderr
    assert list(tmp_path.iterdir()) == []


def dependency_app() -> web.Application:
    async def answer(_: web.Request) -> web.Response:
        return web.json_response({"answer": 42})

    app = web.Application()
    app.router.add_get("/answer", answer)
    return app


def service_app(dependency_url: str) -> web.Application:
    """The user's service: each request calls its dependency (through the proxy once the one
    config change is made) and answers 502 when that fails."""

    async def handle(_: web.Request) -> web.Response:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
                async with session.get(f"{dependency_url}/answer") as reply:
                    body = await reply.json()
            return web.json_response({"from_dependency": body})
        except (aiohttp.ClientError, TimeoutError):
            return web.json_response({"error": "dependency failed"}, status=502)

    app = web.Application()
    app.router.add_get("/work", handle)
    return app


@pytest.mark.slow
@pytest.mark.toxiproxy
def test_init_then_validate_then_run_gives_a_verdict(tmp_path: Path) -> None:
    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")
    listen_port, toxiproxy_port = free_port(), free_port()
    with serve_in_thread(dependency_app()) as dependency_url, \
            serve_in_thread(service_app(f"http://127.0.0.1:{listen_port}")) as service_url:
        dependency = dependency_url.removeprefix("http://")
        init = subprocess.run(
            [DRILL, "init", "--url", f"{service_url}/work", "--dependency", f"answers={dependency}",
             "--fault", "latency", "--latency-ms", "300", "--rto-s", "10", "--max-error-rate", "0.5",
             "--baseline", "2s", "--fault-duration", "3s", "--recovery", "4s", "--users", "2",
             "--listen-port", str(listen_port), "--toxiproxy-port", str(toxiproxy_port), "--out", "mine.yaml"],
            capture_output=True, text=True, cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert init.returncode == 0, init.stderr
        assert f"answers  127.0.0.1:{listen_port} -> {dependency}" in init.stdout
        assert f"call answers at 127.0.0.1:{listen_port} instead of {dependency}" in init.stdout

        validate = subprocess.run([DRILL, "validate", "mine.yaml"], capture_output=True, text=True,
                                  cwd=tmp_path, timeout=60)
        assert validate.returncode == 0, validate.stdout + validate.stderr

        run = subprocess.run([DRILL, "run", "mine.yaml", "--reports-dir", "reports"], capture_output=True,
                             text=True, cwd=tmp_path, timeout=120)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    results = sorted((tmp_path / "reports").glob("*/*/results.json"))
    assert len(results) == 1
    assert '"verdict": "' in results[0].read_text()


def test_on_a_terminal_missing_answers_are_asked_for(tmp_path: Path) -> None:
    """stdin a terminal (a pty): --url and --dependency are prompted for, --fault takes its default."""
    import os

    leader, follower = os.openpty()
    try:
        proc = subprocess.Popen([DRILL, "init", "--out", "asked.yaml", "--listen-port", str(free_port())],
                                stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=tmp_path)
        os.write(leader, b"http://127.0.0.1:8000/v1/chat\nprovider=127.0.0.1:9000\n\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert proc.returncode == 0, err
    assert "Your service's URL" in out and "The dependency to break" in out
    spec = load_scenario(tmp_path / "asked.yaml").spec
    assert spec.faults[0].type == "latency" and spec.load.host == "http://127.0.0.1:8000"
