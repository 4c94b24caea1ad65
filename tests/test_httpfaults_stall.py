"""A stream stall drilled through the real HTTP fault proxy (mitmdump + harness/httpfaults/addon.py)
and the real engine: the stall holds its full ``stall_ms`` on a provider that is still sending
(docs/http-faults.md), and the drill's own samples show it.

The provider streams 16 events 200 ms apart (3.2 s an answer); the fault stalls each stream for
1.5 s after 3 events. Every stream the proxy began while the fault was active shows a gap of at
least 1.5 s between two tokens and still completes with all 16 tokens; no stream before the fault
does. That holds at any phase length (it is a property of each stream), so the phases are short
(3 s / 6 s / 4 s). Needs the heavy lock (mitmdump, a real-time drill):
``heavy .venv/bin/pytest tests/test_httpfaults_stall.py``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiohttp import web

from harness.engine import run_drill
from harness.httpfaults.proxy import HttpRoute, running_http_fault_proxy
from harness.testing import free_port, require_mitmdump, serve_in_thread
from harness.testing.drills import fault_window

TOKENS = 16
INTERVAL_S = 0.2
STALL_MS = 1500
AFTER_EVENTS = 3


def slow_provider() -> web.Application:
    """An OpenAI-style stream of TOKENS chunks INTERVAL_S apart, then [DONE]."""

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(TOKENS):
            chunk = {"choices": [{"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await asyncio.sleep(INTERVAL_S)
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.mark.slow
def test_a_stall_holds_its_full_length_on_a_provider_still_sending(tmp_path: Path) -> None:
    require_mitmdump()
    with serve_in_thread(slow_provider()) as upstream:
        route = HttpRoute("hosted", free_port(), upstream)
        with running_http_fault_proxy([route], tmp_path / "mitmdump.log") as client:
            scenario = tmp_path / "stall.yaml"
            scenario.write_text(f"""\
apiVersion: drill/v1
kind: Scenario
name: provider-stall
http_fault_proxy: {{url: {route.url}}}
load:
  host: {route.url}
  users: 1
  request: {{method: POST, path: /v1/chat/completions, json: {{stream: true}}}}
  probe_rate_hz: 5
  timeout_s: 10
phases: {{baseline: 3s, fault: 6s, recovery: 4s}}
faults:
  - {{name: stall, type: stream_stall, target: {{route: hosted}}, after_events: {AFTER_EVENTS},
     stall_ms: {STALL_MS}, duration: 6s}}
objectives: {{max_error_rate: 0.5}}
""")
            result = run_drill(scenario, out=tmp_path / "run")
            assert client.faults() == [], "the stall was left on the proxy"
    rows = pd.concat([pd.read_csv(p) for p in sorted((result.run_dir / "samples").glob("*.csv"))])
    streams = rows[rows["stream"] == 1]
    applied, revert = fault_window(result.run_dir)
    # A stream the proxy answered before the fault existed streams on undisturbed.
    before = streams[streams["end"] < applied]
    assert len(before) >= 3 and (before["max_gap_ms"] < STALL_MS).all(), before["max_gap_ms"].describe()
    # Every stream begun while the fault was active (0.2 s of margin either side: the request
    # reaches the proxy a little after its start) stalled for at least stall_ms, yet lost nothing:
    # the provider was still sending when the stall ended.
    during = streams[(streams["start"] > applied + 0.2) & (streams["start"] < revert - 0.2)]
    assert len(during) >= 10, len(during)
    assert (during["max_gap_ms"] >= STALL_MS).all(), during[["start", "max_gap_ms"]]
    assert (during["stream_completed"] == 1).all() and (during["tokens"] == TOKENS).all(), during
    r: dict[str, Any] = result.results.document()
    assert r["cleanup"]["ok"] is True
