"""Shared fixtures. Tests that need real parts (Toxiproxy, Docker) *fail* under CI=true when the
part is missing, and skip with the reason elsewhere — never a silent green."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from harness.scenario.fault_specs import (
    BandwidthSpec,
    BlackholeSpec,
    DownSpec,
    JitterSpec,
    LatencySpec,
    NetworkFaultSpec,
    ResetSpec,
    parse_fault_spec,
)

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Each test gets its own drill state directory (locks, the register of runs), so
    `drill recover --all` in one test never touches another test's runs (some tests leave a run
    unrecoverable on purpose: Toxiproxy killed mid-drill). Drills started as subprocesses
    inherit it through the environment."""
    path = tmp_path_factory.mktemp("drill-state")
    previous = os.environ.get("DRILL_STATE_DIR")
    os.environ["DRILL_STATE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("DRILL_STATE_DIR", None)
    else:
        os.environ["DRILL_STATE_DIR"] = previous


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(available: bool, what: str, how: str) -> None:
    """Fail under CI=true, skip elsewhere, when a real part a test needs is missing."""
    if available:
        return
    message = f"{what} is not available: {how}"
    if under_ci():
        pytest.fail(message + " (CI=true: a missing part fails the suite)", pytrace=False)
    pytest.skip(message)  # only outside CI: under CI=true the missing part failed just above


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def network_spec(name: str, type: str, proxy: str, params: dict[str, object]) -> NetworkFaultSpec:
    """A network fault's spec model, as a scenario's ``faults`` entry would give it."""
    spec = parse_fault_spec({"name": name, "type": type, "target": {"proxy": proxy}, **params})
    assert isinstance(spec, (LatencySpec, JitterSpec, BandwidthSpec, BlackholeSpec, ResetSpec, DownSpec))
    return spec


def wait_http(url: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError as exc:
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s: {last}")


def require_mitmdump() -> None:
    """The HTTP fault proxy (mitmdump) is installed, or the test fails (CI=true) / skips, saying how."""
    from harness.errors import FaultError
    from harness.httpfaults.proxy import find_mitmdump

    try:
        find_mitmdump()
    except FaultError:
        require(False, "mitmdump (the HTTP fault proxy)", "run scripts/mitmproxy-setup")


def toxiproxy_binary() -> str | None:
    for candidate in (VENV_BIN / "toxiproxy-server", REPO / ".venv/bin/toxiproxy-server"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("toxiproxy-server")


@pytest.fixture
def toxiproxy_url():
    """A real toxiproxy-server on a free loopback port, stopped after the test."""
    binary = toxiproxy_binary()
    require(binary is not None, "toxiproxy-server", "run scripts/bootstrap")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-host", "127.0.0.1", "-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/version")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Serve an aiohttp app on a free loopback port from a thread with its own event loop."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


# --- a real run's files (tests/data/latency-run), for report, pack and history tests -------------

LATENCY_RUN = REPO / "tests" / "data" / "latency-run"


@pytest.fixture
def latency_run(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A factory: ``latency_run(parent, name)`` copies the journal, scenario and probe samples of
    a real `drill run scenarios/latency.yaml` to ``parent/name`` and writes results.json,
    junit.xml and report.html from them exactly as `drill report` does."""

    def make(parent: Path | None = None, name: str = "run") -> Path:
        from harness.engine.outputs import write_outputs
        from harness.results import compute_results

        run_dir = (parent or tmp_path) / name
        shutil.copytree(LATENCY_RUN, run_dir)
        results, timeline = compute_results(run_dir)
        write_outputs(run_dir, results, timeline)
        return run_dir

    return make
