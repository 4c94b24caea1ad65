"""Stacks for tests: a small local stack file, the reference programs (targets/) as processes,
and the compose reference stack under a project of its own. Every port is a free one, so tests
on parallel pytest-xdist workers and a reference stack left up on the default ports never meet.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from harness.testing.parts import REPO, free_port, require, under_ci, wait_http

if TYPE_CHECKING:
    from harness.runtime.compose import ComposeRuntime

# --- a small local stack -------------------------------------------------------------------------


def small_stack(tmp_path: Path, with_toxiproxy: bool = True) -> tuple[Path, dict[str, int]]:
    """toxiproxy + one hosted model server behind a proxy + a gpu node + a gateway, free ports."""
    ports = {name: free_port() for name in ("toxiproxy", "proxy", "hosted", "gpu", "gateway")}
    hosted_url = f"http://127.0.0.1:{ports['proxy'] if with_toxiproxy else ports['hosted']}"
    upstreams = (
        f'[{{"name": "hosted", "url": "{hosted_url}", "tier": "hosted", "region": "external"}},'
        f' {{"name": "gpu-a1", "url": "http://127.0.0.1:{ports["gpu"]}", "tier": "gpu", "region": "region-a"}}]'
    )
    stack: dict[str, object] = {
        "apiVersion": "drill/v1",
        "kind": "Stack",
        "name": "test-stack",
        "stop_grace_s": 3,
        "processes": [
            {
                "name": "hosted",
                "argv": ["python", "-m", "targets.model_server"],
                "env": {"HOST": "127.0.0.1", "PORT": ports["hosted"], "TIER": "hosted", "NODE_ID": "hosted"},
                "port": ports["hosted"],
                "health": f"http://127.0.0.1:{ports['hosted']}/health",
                "labels": {"service": "hosted-model", "tier": "hosted"},
            },
            {
                "name": "gpu-a1",
                "argv": ["python", "-m", "targets.model_server"],
                "env": {"HOST": "127.0.0.1", "PORT": ports["gpu"], "TIER": "gpu", "NODE_ID": "gpu-a1"},
                "port": ports["gpu"],
                "health": f"http://127.0.0.1:{ports['gpu']}/health",
                "labels": {"tier": "gpu", "region": "region-a"},
            },
            {
                "name": "gateway",
                "argv": ["python", "-m", "targets.gateway"],
                "env": {"HOST": "127.0.0.1", "PORT": ports["gateway"], "UPSTREAMS": upstreams},
                "port": ports["gateway"],
                "health": f"http://127.0.0.1:{ports['gateway']}/health",
                "labels": {"service": "gateway"},
                "start_after": ["hosted", "gpu-a1"],
            },
        ],
    }
    if with_toxiproxy:
        stack["toxiproxy"] = {"listen": f"127.0.0.1:{ports['toxiproxy']}"}
        stack["proxies"] = [
            {"name": "hosted", "listen": f"127.0.0.1:{ports['proxy']}", "upstream": f"127.0.0.1:{ports['hosted']}"}
        ]
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    return path, ports


# --- the reference programs as processes ---------------------------------------------------------


@dataclass
class Program:
    url: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path


Spawn = Callable[..., Program]


@contextlib.contextmanager
def programs(log_dir: Path) -> Iterator[Spawn]:
    """Yields ``spawn(module, port=None, **env)``: start ``python -m targets.<module>`` on a free
    port (or ``port``) with ``env``, wait for its /health; every one is killed on the way out."""
    started: list[Program] = []

    def spawn(module: str, port: int | None = None, **env: Any) -> Program:
        port = port or free_port()
        log = log_dir / f"{module}-{port}.log"
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "HOST": "127.0.0.1", "PORT": str(port)}
        full_env.update({key: str(value) for key, value in env.items()})
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", f"targets.{module}"], env=full_env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        program = Program(url=f"http://127.0.0.1:{port}", port=port, popen=popen, log=log)
        started.append(program)
        try:
            wait_http(program.url + "/health", timeout_s=15)
        except TimeoutError:
            raise AssertionError(f"{module} did not start:\n{log.read_text()}") from None
        return program

    try:
        yield spawn
    finally:
        for program in started:
            if program.popen.poll() is None:
                os.killpg(program.popen.pid, signal.SIGKILL)
            program.popen.wait(timeout=10)


def model_server(spawn: Spawn, node: str, tier: str, region: str = "region-a", **env: Any) -> Program:
    return spawn("model_server", NODE_ID=node, TIER=tier, REGION=region, **env)


def upstream(name: str, url: str, tier: str, region: str) -> dict[str, str]:
    return {"name": name, "url": url, "tier": tier, "region": region}


def gateway(spawn: Spawn, upstreams: list[dict[str, str]], **env: Any) -> Program:
    """The gateway over ``upstreams`` with quick health checks and breaker (``env`` overrides)."""
    settings: dict[str, Any] = {
        "UPSTREAMS": json.dumps(upstreams),
        "HEALTH_INTERVAL_MS": 200,
        "HEALTH_TIMEOUT_MS": 300,
        "BREAKER_COOLDOWN_S": 1,
        "BREAKER_WINDOW_S": 2,
        "BREAKER_MIN_SAMPLES": 5,
        "BREAKER_BASELINE_MIN_SAMPLES": 10,
    }
    settings.update(env)
    return spawn("gateway", **settings)


def poll(check: Callable[[], Any], timeout_s: float, what: str, step_s: float = 0.05) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(step_s)


def events(base: str, kind: str | None = None) -> list[dict[str, Any]]:
    """A reference program's own event log (GET /admin/events), of ``kind`` when given."""
    found: list[dict[str, Any]] = httpx.get(base + "/admin/events").json()
    return [e for e in found if kind is None or e["event"] == kind]


# --- the compose reference stack -----------------------------------------------------------------

STAGING_FILE = REPO / "compose/staging.yaml"
IMAGES = ("drill-targets:latest", "drill-toxiproxy:latest", "drill-http-fault-proxy:latest")
PORT_VARIABLES = {
    "gateway": "DRILL_PORT_GATEWAY",
    "toxiproxy": "DRILL_PORT_TOXIPROXY",
    "hosted-model": "DRILL_PORT_HOSTED_MODEL",
    "gpu-a1": "DRILL_PORT_GPU_A1",
    "gpu-a2": "DRILL_PORT_GPU_A2",
    "gpu-a3": "DRILL_PORT_GPU_A3",
    "gpu-b1": "DRILL_PORT_GPU_B1",
    "cpu-fallback": "DRILL_PORT_CPU_FALLBACK",
    "cloud-api": "DRILL_PORT_CLOUD_API",
    "autoscaler": "DRILL_PORT_AUTOSCALER",
    "prometheus": "DRILL_PORT_PROMETHEUS",  # the stack's own metrics (docs/metrics.md)
    "http-fault-proxy": "DRILL_PORT_HTTP_FAULT_PROXY",  # provider faults (docs/http-faults.md)
}


def _images_present() -> bool:
    import docker.errors

    from harness.errors import DrillError
    from harness.runtime.compose import docker_client

    try:
        client = docker_client()
        for image in IMAGES:
            client.images.get(image)
    except (DrillError, docker.errors.DockerException):
        return False
    return True


def staging_ready() -> bool:
    """Engine up and the stack's images built; under CI=true, scripts/docker-setup makes them."""
    if _images_present():
        return True
    if under_ci():
        subprocess.run([str(REPO / "scripts/docker-setup")], check=False, timeout=1800)
        return _images_present()
    return False


def require_staging() -> None:
    require(staging_ready(), "Docker engine with the drill-targets and drill-toxiproxy images",
            "run scripts/docker-setup")


def compose_env(ports: dict[str, int]) -> dict[str, str]:
    """The DRILL_PORT_* variables that publish the staging services on ``ports``."""
    return {PORT_VARIABLES[service]: str(port) for service, port in ports.items()}


@contextlib.contextmanager
def staging_stack(log_dir: Path, prefix: str = "drill-staging-test") -> Iterator[tuple[ComposeRuntime, dict[str, int]]]:
    """compose/staging.yaml up and healthy under project ``PREFIX-<random>`` with every published
    port on a free one (the DRILL_PORT_* variables are set meanwhile); (runtime, service -> port).
    Taken down on the way out."""
    from harness.runtime.compose import ComposeRuntime

    require_staging()
    ports = {service: free_port() for service in PORT_VARIABLES}
    with pytest.MonkeyPatch.context() as patch:
        for variable, value in compose_env(ports).items():
            patch.setenv(variable, value)
        runtime = ComposeRuntime(STAGING_FILE, f"{prefix}-{uuid.uuid4().hex[:8]}", log_dir)
        try:
            runtime.up(wait_s=180)
            yield runtime, ports
        finally:
            runtime.down()


def compose_problems(runtime: ComposeRuntime, run_dir: Path) -> list[str]:
    """What a drill left behind on the compose stack: stopped services, faults in its ledger,
    active faults on the stack. Empty when nothing."""
    from harness.rundir import JOURNAL_FILE
    from harness.rundir.journal import applied_faults
    from harness.safety.strays import active_faults

    problems = [f"not running: {name}" for name in runtime.not_running()]
    left = applied_faults(run_dir / JOURNAL_FILE)
    if left:
        problems.append(f"ledger not empty: {[e.fault_id for e in left]}")
    strays = active_faults(None, runtime)
    if strays:
        problems.append(f"active faults: {strays}")
    return problems


# --- the compose staging stack's gateway and shipped drills ---------------------------------------

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def chat(gateway_port: int) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{gateway_port}/v1/chat/completions", json=CHAT, timeout=5.0)


def wait_for_tier(gateway_port: int, tier: str, timeout_s: float = 60.0) -> httpx.Response:
    """Send requests until one is answered by ``tier``; bounded in time (about 20 requests/s)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = chat(gateway_port)
            if response.status_code == 200 and response.headers.get("X-Tier") == tier:
                return response
            last = f"{response.status_code} X-Tier={response.headers.get('X-Tier')}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise AssertionError(f"gateway never answered from tier {tier} within {timeout_s}s; last: {last}")


def shipped_drill(runtime: ComposeRuntime, ports: dict[str, int], name: str, tmp_path: Path) -> Path:
    """A copy of the shipped compose drill ``scenarios/<name>.yaml`` on this module's project and
    ports, with 6 s / 10 s / 8 s phases (its fault lasting the fault phase). Longer than the local
    drills' 4/8/4 s: at 8 s the compose provider drill once measured no time to first token after
    its failover (a dozen containers' health checks share the two cores)."""
    scenario = tmp_path / f"{name}.yaml"
    shipped = (REPO / f"scenarios/{name}.yaml").read_text()
    scenario.write_text(
        shipped.replace("file: ../compose/staging.yaml, project: drill-staging",
                        f"file: {STAGING_FILE}, project: {runtime.project}")
        .replace("http://127.0.0.1:28080", f"http://127.0.0.1:{ports['gateway']}")
        .replace("phases: {baseline: 10s, fault: 20s, recovery: 15s}",
                 "phases: {baseline: 6s, fault: 10s, recovery: 8s}")
        .replace("duration: 20s", "duration: 10s")
    )
    return scenario


def kill9_stack(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """toxiproxy + one model server behind Toxiproxy proxy hosted-model + the HTTP fault proxy
    route hosted-model in front of it (the reference topology, one tier), on free ports."""
    ports = {name: free_port() for name in ("toxiproxy", "proxy", "hosted", "route")}
    path = tmp_path / "stack.yaml"
    path.write_text(textwrap.dedent(f"""\
        kind: Stack
        name: http-kill9
        stop_grace_s: 3
        toxiproxy: {{listen: 127.0.0.1:{ports['toxiproxy']}}}
        proxies:
          - {{name: hosted-model, listen: 127.0.0.1:{ports['proxy']}, upstream: 127.0.0.1:{ports['hosted']}}}
        http_fault_proxy:
          routes:
            - {{name: hosted-model, listen: 127.0.0.1:{ports['route']}, upstream: http://127.0.0.1:{ports['proxy']}}}
        processes:
          - name: hosted-model
            argv: [python, -m, targets.model_server]
            env: {{HOST: 127.0.0.1, PORT: {ports['hosted']}, NODE_ID: hosted-model, TIER: hosted}}
            port: {ports['hosted']}
            health: http://127.0.0.1:{ports['hosted']}/health
        """))
    return path, ports
