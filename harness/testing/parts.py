"""Real parts for tests, each on a free loopback port, and the rule for a part that is missing:
under ``CI=true`` the test fails (never a silent green), elsewhere it skips saying how to get it."""

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

# The source checkout this package runs from (scenarios/, compose/, scripts/, tests/data/): only
# meaningful for an editable install or a PYTHONPATH checkout, as drill's own suite runs.
REPO = Path(__file__).resolve().parents[2]
# The virtualenv's bin/ (drill, toxiproxy-server after scripts/bootstrap).
VENV_BIN = Path(sys.executable).parent


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


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now (the OS's pick on 127.0.0.1), never one this process was
    already given: two picks in a row can get the same port back from the OS, and a stack file
    with a port declared twice is refused."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def network_spec(name: str, type: str, proxy: str, params: dict[str, object]) -> NetworkFaultSpec:
    """A network fault's spec model, as a scenario's ``faults`` entry would give it."""
    spec = parse_fault_spec({"name": name, "type": type, "target": {"proxy": proxy}, **params})
    assert isinstance(spec, (LatencySpec, JitterSpec, BandwidthSpec, BlackholeSpec, ResetSpec, DownSpec))
    return spec


def wait_http(url: str, timeout_s: float = 10.0) -> None:
    """Return once ``url`` answers at all (any status); TimeoutError naming the last error."""
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


@contextlib.contextmanager
def toxiproxy_server() -> Iterator[str]:
    """A real toxiproxy-server of the test's own on a free loopback port; yields its API URL and
    stops it afterwards. Requires the binary (see :func:`require`)."""
    binary = toxiproxy_binary()
    require(binary is not None, "toxiproxy-server", "run scripts/bootstrap")
    assert binary is not None
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


# --- processes and clocks ------------------------------------------------------------------------

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def faketime_env(stamp_file: Path) -> dict[str, str]:
    """The environment that makes a process (and its children) read the wall clock through
    libfaketime, offset by what ``stamp_file`` says now (``+0``, then ``+2`` for a step)."""
    require(LIBFAKETIME.exists(), "libfaketime", "apt-get install -y faketime libfaketime")
    stamp_file.write_text("+0\n")
    env = dict(os.environ)
    env.update(LD_PRELOAD=str(LIBFAKETIME), FAKETIME_TIMESTAMP_FILE=str(stamp_file), FAKETIME_NO_CACHE="1")
    return env
