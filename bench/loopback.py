"""Small helpers the benches share: a free loopback port, and waiting for an HTTP endpoint."""

from __future__ import annotations

import socket
import time

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float) -> None:
    """Poll ``url`` until it answers at all (any status), or raise the last error at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
