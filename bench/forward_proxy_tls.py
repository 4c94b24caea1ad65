"""What the forward proxy with TLS interception costs a call, beside a reverse route and a direct call.

    heavy .venv/bin/python bench/forward_proxy_tls.py [--requests 300]

Two reference model servers on loopback (targets/model_server.py, non-streamed answers, 5 ms
service time): one plain HTTP, one HTTPS with a certificate made at its start (TLS_CERT_NAMES).
One mitmdump (drill's addon loaded, no fault active) serves a reverse route to the plain one and
a forward listener mapping ``plain.example:443`` to the plain server and ``tls.example:443`` to the
HTTPS one. The same httpx client code calls, in alternating blocks of 50 so drift hits all alike:

- ``direct``: the plain server, keep-alive;
- ``reverse``: through the reverse route (what a re-pointed gateway does), keep-alive;
- ``forward-tls``: ``https://plain.example`` through ``HTTPS_PROXY`` (TLS between client and proxy
  only), keep-alive;
- ``forward-tls-tls``: ``https://tls.example`` (TLS on both hops), keep-alive;
- ``forward-new-conn``: as the last, a new connection (CONNECT + two TLS handshakes) per call.

p50 / p99 per path. Every request goes to 127.0.0.1 (the names are mapped by the proxy and never
resolved); every loop is bounded by its count.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.httpfaults.proxy import HttpForward, HttpRoute, running_http_fault_proxy  # noqa: E402
from harness.runtime.ports import port_in_use  # noqa: E402
from harness.testing import free_port  # noqa: E402

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
BLOCK = 50


def model_server(folder: Path, tls: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOST": "127.0.0.1", "PORT": str(port), "TIER": "hosted",
           "NODE_ID": f"bench-{port}", "SERVICE_TIME_MS": "5", "DRILL_STACK_LOG_DIR": str(folder)}
    if tls:
        env["TLS_CERT_NAMES"] = "tls.example,127.0.0.1"
    popen = subprocess.Popen([sys.executable, "-m", "targets.model_server"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 20
    while not port_in_use(port):
        if popen.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("a model server did not start")
        time.sleep(0.05)
    return popen, port


def timed(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    response = client.post(url, json=CHAT)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="drill-bench-forward-"))
    servers = [model_server(folder, tls=False), model_server(folder, tls=True)]
    (_, plain_port), (_, tls_port) = servers
    try:
        route = HttpRoute("reverse", free_port(), f"http://127.0.0.1:{plain_port}")
        forward = HttpForward(listen_port=free_port(), confdir=folder / "ca", hosts={
            "plain.example:443": ("forward-plain", f"http://127.0.0.1:{plain_port}"),
            "tls.example:443": ("forward-tls", f"https://127.0.0.1:{tls_port}")})
        with running_http_fault_proxy([route], folder / "mitm.log", forward):
            trust = ssl.create_default_context(cafile=forward.ca_cert)
            path = "/v1/chat/completions"
            clients = {
                "direct": (httpx.Client(trust_env=False, timeout=10), f"http://127.0.0.1:{plain_port}{path}"),
                "reverse": (httpx.Client(trust_env=False, timeout=10), f"{route.url}{path}"),
                "forward-tls": (httpx.Client(proxy=forward.url, verify=trust, timeout=10), f"https://plain.example{path}"),
                "forward-tls-tls": (httpx.Client(proxy=forward.url, verify=trust, timeout=10),
                                    f"https://tls.example{path}"),
            }
            results: dict[str, list[float]] = {name: [] for name in [*clients, "forward-new-conn"]}
            for client, url in clients.values():  # warm: connections and the proxy's certificates
                timed(client, url)
            for _ in range(max(1, args.requests // BLOCK)):
                for name, (client, url) in clients.items():
                    results[name] += [timed(client, url) for _ in range(BLOCK)]
                for _ in range(BLOCK // 5):  # a fifth as many: each makes a new connection
                    with httpx.Client(proxy=forward.url, verify=trust, timeout=10) as fresh:
                        results["forward-new-conn"].append(timed(fresh, f"https://tls.example{path}"))
            for client, _ in clients.values():
                client.close()
    finally:
        for popen, _ in servers:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=10)
    print(f"{'path':<18} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values in results.items():
        array = np.array(values)
        print(f"{name:<18} {len(array):>6} {np.percentile(array, 50):>8.2f} {np.percentile(array, 99):>8.2f}")
    p50 = {name: float(np.percentile(np.array(v), 50)) for name, v in results.items()}
    print(" ".join(f"{name}_p50_ms={value:.2f}" for name, value in p50.items()))


if __name__ == "__main__":
    main()
