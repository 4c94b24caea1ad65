"""Starting the HTTP fault proxy: ``mitmdump`` in reverse mode, one listener per provider route,
and optionally one forward (regular-mode) listener with TLS interception for an unmodified gateway.

Each route is a reverse proxy ``127.0.0.1:LISTEN -> UPSTREAM`` with a name faults refer to (as
Toxiproxy proxies have names). The forward listener (:class:`HttpForward`) maps declared
destinations (``api.provider.example:443``) to named routes and their 127.0.0.1 upstreams; it
intercepts TLS with mitmproxy's own CA, made in ``confdir`` (the run's folder) and trusted only by
the processes given :func:`forward_client_env`. The addon (harness/httpfaults/addon.py) answers its
control API on every listener. mitmdump lives in its own virtualenv (``scripts/mitmproxy-setup``).
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

__all__ = [
    "ADDON_PATH",
    "CA_CERT_FILE",
    "HttpForward",
    "HttpRoute",
    "find_mitmdump",
    "forward_client_env",
    "make_ca",
    "mitmdump_argv",
    "running_http_fault_proxy",
]

ADDON_PATH = Path(__file__).with_name("addon.py")
REPO_VENV_MITMDUMP = Path(__file__).resolve().parents[2] / ".venv-mitm" / "bin" / "mitmdump"
LISTEN_HOST = "127.0.0.1"  # the network rule: the proxy is reachable from this machine only
# mitmproxy writes its CA into confdir at start; this file is the CA's certificate alone (PEM),
# what a client trusts (https://docs.mitmproxy.org/stable/concepts/certificates/).
CA_CERT_FILE = "mitmproxy-ca-cert.pem"


@dataclass(frozen=True)
class HttpRoute:
    """One provider route through the proxy: ``name`` faults target, its listen port, its upstream URL."""

    name: str
    listen_port: int
    upstream: str

    @property
    def url(self) -> str:
        return f"http://{LISTEN_HOST}:{self.listen_port}"


@dataclass(frozen=True)
class HttpForward:
    """The forward listener: ``listen_port`` on 127.0.0.1, and per declared destination
    (``host:port``, lowercase) the route name and the http(s)://127.0.0.1:PORT upstream it goes to;
    ``confdir`` is where mitmproxy makes (or finds) its CA."""

    listen_port: int
    hosts: dict[str, tuple[str, str]]
    confdir: Path

    @property
    def url(self) -> str:
        return f"http://{LISTEN_HOST}:{self.listen_port}"

    @property
    def ca_cert(self) -> Path:
        return self.confdir / CA_CERT_FILE


def forward_client_env(forward: HttpForward) -> dict[str, str]:
    """What a process drilled through the forward listener gets: its HTTPS calls go to the proxy
    (``HTTPS_PROXY``, both spellings: libraries read one or the other), its TLS trusts mitmproxy's
    CA and nothing else (``SSL_CERT_FILE`` for OpenSSL/httpx/aiohttp, ``REQUESTS_CA_BUNDLE`` for
    requests, ``NODE_EXTRA_CA_CERTS`` for Node), and loopback calls never go through the proxy."""
    ca = str(forward.ca_cert.resolve())
    return {
        "HTTPS_PROXY": forward.url, "https_proxy": forward.url,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca, "NODE_EXTRA_CA_CERTS": ca,
    }


def find_mitmdump() -> str:
    """``$DRILL_MITMDUMP``, else the repository's ``.venv-mitm``, else ``mitmdump`` on PATH."""
    for candidate in (os.environ.get("DRILL_MITMDUMP"), str(REPO_VENV_MITMDUMP), shutil.which("mitmdump")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FaultError(
        "the HTTP fault proxy (mitmdump) is not installed: run scripts/mitmproxy-setup "
        "(or scripts/bootstrap), or set DRILL_MITMDUMP to a mitmdump 11.x"
    )


def make_ca(confdir: Path) -> Path:
    """Make mitmproxy's CA in ``confdir`` now, with mitmproxy's own code (the interpreter of the
    installed mitmdump; what mitmdump itself does at start when the folder has none), so a
    process drill does not start can trust it before the first drill. Returns the CA's
    certificate file; a CA already there is kept."""
    python = Path(find_mitmdump()).parent / "python"
    if not python.exists():
        raise FaultError(f"no Python beside {find_mitmdump()} to make mitmproxy's CA with; run scripts/mitmproxy-setup")
    confdir.mkdir(parents=True, exist_ok=True)
    # key size 2048: mitmproxy's default (its key_size option).
    code = "import sys; from mitmproxy import certs; certs.CertStore.from_store(sys.argv[1], 'mitmproxy', 2048)"
    done = subprocess.run([str(python), "-c", code, str(confdir)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not (confdir / CA_CERT_FILE).is_file():
        raise FaultError(f"could not make mitmproxy's CA in {confdir}: {done.stderr.strip()[-500:]}")
    return confdir / CA_CERT_FILE


def mitmdump_argv(binary: str, routes: list[HttpRoute], forward: HttpForward | None = None) -> list[str]:
    """The command line: quiet, one reverse-mode listener per route, the forward listener when
    there is one, the addon and its route names.

    ``connection_strategy=lazy`` opens a server connection only when a request needs one, after
    the addon's ``request`` hook rewrote its destination; ``upstream_cert=false`` makes the
    intercepting certificate from the client's SNI without first connecting to the named host
    (mitmproxy's default is to look the real one up). Together: the proxy never connects to a
    destination a gateway names, only to the declared 127.0.0.1 upstream it maps to."""
    argv = [binary, "--quiet", "--set", "connection_strategy=lazy"]
    for route in routes:
        argv += ["--mode", f"reverse:{route.upstream}@{LISTEN_HOST}:{route.listen_port}"]
    names = {route.name: route.listen_port for route in routes}
    argv += ["-s", str(ADDON_PATH), "--set", f"drill_proxies={json.dumps(names)}"]
    if forward is not None:
        hosts = {key: {"route": route, "upstream": upstream} for key, (route, upstream) in forward.hosts.items()}
        argv += ["--mode", f"regular@{LISTEN_HOST}:{forward.listen_port}",
                 "--set", "upstream_cert=false", "--set", f"confdir={forward.confdir}",
                 "--set", f"drill_forward={json.dumps({'listen_port': forward.listen_port, 'hosts': hosts})}"]
        if any(upstream.startswith("https://") for _, upstream in forward.hosts.values()):
            # The upstream hop to a local TLS provider: mitmproxy's ssl_insecure is one switch for
            # every upstream, and every upstream here is a declared 127.0.0.1 address (the schema
            # and the addon refuse others). The certificate the gateway checks is mitmproxy's,
            # made from its CA; the local provider's self-signed one is made at its own start,
            # after the proxy's, so there is no file to pin when mitmdump starts.
            argv += ["--set", "ssl_insecure=true"]
    return argv


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
def running_http_fault_proxy(routes: list[HttpRoute], log_path: Path | None = None,
                             forward: HttpForward | None = None) -> Iterator[HttpFaultClient]:
    """Start mitmdump for ``routes`` (and ``forward``), yield a control client, and always stop it
    (benches, tests)."""
    if not routes and forward is None:
        raise ValueError("the HTTP fault proxy needs at least one route or a forward listener")
    control = routes[0].url if routes else forward.url if forward is not None else ""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(mitmdump_argv(find_mitmdump(), routes, forward), stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        wait_ready(control, process)
        with HttpFaultClient(control) as client:
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
