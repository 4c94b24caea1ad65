"""Real parts for tests, each on a free loopback port, and the rule for a part that is missing:
under ``CI=true`` the test fails (never a silent green), elsewhere it skips saying how to get it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
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
# Tests' ports come from 10000-32767 less the reference stacks' defaults (8080, 8474, 18xxx,
# 19xxx, 28xxx) and outside the OS's ephemeral range (Linux's default: 32768-60999), where the OS
# also picks the local port of every outgoing connection. A port the OS picked there and let go
# was taken, before the compose stack that was given it could bind it, by some connection of the
# busy machine (December 2026: "port(s) already in use"). Each pick is also reserved for every
# process of the machine for PORT_HOLD_S (a file per port in a directory of the user's), so two
# pytest-xdist workers, or an inner pytest run, are never handed the same port while one of them
# is still to bind it.


def _ephemeral_ports() -> range:
    try:
        low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


_EPHEMERAL = _ephemeral_ports()
PORTS = [port for port in range(10000, 32768)
         if not 18000 <= port < 20000 and not 28000 <= port < 29000 and port not in _EPHEMERAL]
PORT_HOLD_S = 300.0
PORT_RESERVATIONS = Path(tempfile.gettempdir()) / f"drill-test-ports-{os.getuid()}"


def free_port() -> int:
    """A port nothing listens on now, outside the OS's ephemeral range, that no process of this
    machine was handed in the last :data:`PORT_HOLD_S` and this process never was: two picks in a
    row can otherwise get the same port back, and a stack file with a port declared twice is
    refused. Falls back to the OS's pick if every candidate is taken."""
    PORT_RESERVATIONS.mkdir(exist_ok=True)
    for port in random.sample(PORTS, min(2000, len(PORTS))):
        if port in _HANDED_OUT or not _reserve(PORT_RESERVATIONS / str(port)):
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _reserve(path: Path) -> bool:
    """Create ``path`` (this process holds the port), or take it over once its holder's
    reservation is older than :data:`PORT_HOLD_S`."""
    for _ in range(2):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return True
        except FileExistsError:
            try:
                if time.time() - path.stat().st_mtime < PORT_HOLD_S:
                    return False
                path.unlink()
            except FileNotFoundError:
                pass
    return False


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
