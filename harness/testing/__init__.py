"""Helpers for tests of drills, shipped with the package (like ``structlog.testing``).

drill's own suite imports its helpers from here, never from another test module; a user's own
pytest drills can use the same real parts:

    from harness.testing import free_port, serve_in_thread, toxiproxy_server

    def test_my_service_fails_over(tmp_path):
        with toxiproxy_server() as toxiproxy_url, serve_in_thread(my_app()) as upstream:
            ...

- ``harness.testing`` (this module): real parts on free loopback ports (an aiohttp app in a
  thread, a private toxiproxy-server), waiting for them, and ``require``: a missing part fails
  under ``CI=true`` and skips elsewhere, saying how to get it.
- ``harness.testing.drills``: small scenarios for a service of the test's own, the shipped drills
  moved onto free ports (``rebased``) and shortened, run in-process or as a `drill run`
  subprocess awaited through its journal.
- ``harness.testing.stacks``: a small local stack file; the reference programs (targets/) as
  processes; the compose reference stack under its own project on free ports.
- ``harness.testing.runs``: run directories without a stack: the recorded latency run, its
  streamed variant, the example results and their timeline, hostile and damaged inputs.

Helpers that name files of drill's source tree (``REPO``: scenarios/, compose/, tests/data/) need
a checkout (an editable install or ``PYTHONPATH``); the parts above need only the package.
"""

from __future__ import annotations

from harness.testing.parts import (
    REPO,
    VENV_BIN,
    free_port,
    network_spec,
    require,
    require_mitmdump,
    serve_in_thread,
    toxiproxy_binary,
    toxiproxy_server,
    under_ci,
    wait_http,
)

__all__ = [
    "REPO",
    "VENV_BIN",
    "free_port",
    "network_spec",
    "require",
    "require_mitmdump",
    "serve_in_thread",
    "toxiproxy_binary",
    "toxiproxy_server",
    "under_ci",
    "wait_http",
]
