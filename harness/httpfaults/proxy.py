"""Starting the HTTP fault proxy: ``mitmdump`` in reverse mode, one listener per provider route.

Each route is a reverse proxy ``127.0.0.1:LISTEN -> UPSTREAM`` with a name faults refer to (as
Toxiproxy proxies have names). The addon (harness/httpfaults/addon.py) answers its control API on
every listener. mitmdump lives in its own virtualenv (``scripts/mitmproxy-setup``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.errors import FaultError
from harness.httpfaults.client import HttpFaultClient, HttpFaultProxyError

__all__ = ["ADDON_PATH", "HttpRoute", "find_mitmdump", "mitmdump_argv", "running_http_fault_proxy"]

ADDON_PATH = Path(__file__).with_name("addon.py")
REPO_VENV_MITMDUMP = Path(__file__).resolve().parents[2] / ".venv-mitm" / "bin" / "mitmdump"
LISTEN_HOST = "127.0.0.1"  # the network rule: the proxy is reachable from this machine only


@dataclass(frozen=True)
class HttpRoute:
    """One provider route through the proxy: ``name`` faults target, its listen port, its upstream URL."""

    name: str
    listen_port: int
    upstream: str

    @property
    def url(self) -> str:
        return f"http://{LISTEN_HOST}:{self.listen_port}"


def find_mitmdump() -> str:
    """``$DRILL_MITMDUMP``, else the repository's ``.venv-mitm``, else ``mitmdump`` on PATH."""
    for candidate in (os.environ.get("DRILL_MITMDUMP"), str(REPO_VENV_MITMDUMP), shutil.which("mitmdump")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FaultError(
        "the HTTP fault proxy (mitmdump) is not installed: run scripts/mitmproxy-setup "
        "(or scripts/bootstrap), or set DRILL_MITMDUMP to a mitmdump 11.x"
    )


def mitmdump_argv(binary: str, routes: list[HttpRoute]) -> list[str]:
    """The command line: quiet, one reverse-mode listener per route, the addon and its route names."""
    argv = [binary, "--quiet", "--set", "connection_strategy=lazy"]
    for route in routes:
        argv += ["--mode", f"reverse:{route.upstream}@{LISTEN_HOST}:{route.listen_port}"]
    names = {route.name: route.listen_port for route in routes}
    return argv + ["-s", str(ADDON_PATH), "--set", f"drill_proxies={json.dumps(names)}"]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Until the control API answers; the process exiting first is an error naming its log."""
    deadline = time.monotonic() + timeout_s
    with HttpFaultClient(url, timeout_s=1.0) as client:
        while True:
            if process.poll() is not None:
                raise FaultError(f"the HTTP fault proxy exited at start (code {process.returncode})")
            try:
                client.health()
                return
            except HttpFaultProxyError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)


@contextmanager
def running_http_fault_proxy(routes: list[HttpRoute], log_path: Path | None = None) -> Iterator[HttpFaultClient]:
    """Start mitmdump for ``routes``, yield a control client, and always stop it (benches, tests)."""
    if not routes:
        raise ValueError("the HTTP fault proxy needs at least one route")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(mitmdump_argv(find_mitmdump(), routes), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(routes[0].url, process)
        with HttpFaultClient(routes[0].url) as client:
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path and not isinstance(log, int):
            log.close()
