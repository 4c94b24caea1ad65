"""RTO against a target whose recovery time is known by construction, over real HTTP with the real
prober and Locust: the target answers 503 for exactly N seconds after a trigger, so the measured
RTO must be N within max(50 ms, 2 probe intervals)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from harness import measure
from harness.load import LoadPlan, LoadRunner, RequestSpec
from harness.rundir.frames import read_samples
from harness.testing import serve_in_thread

OUTAGE_S = 2.0
PROBE_RATE_HZ = 20.0


class OutageTarget:
    """Answers 200 with routing headers, or 503 for exactly OUTAGE_S after POST /trigger."""

    def __init__(self) -> None:
        self.triggered_at: float | None = None

    def app(self) -> web.Application:
        async def chat(_: web.Request) -> web.Response:
            t = self.triggered_at
            if t is not None and t <= time.time() < t + OUTAGE_S:
                return web.Response(status=503, text="provider down")
            return web.json_response({"ok": True}, headers={"X-Served-By": "m1", "X-Tier": "hosted"})

        async def trigger(_: web.Request) -> web.Response:
            self.triggered_at = time.time()
            return web.json_response({"at": self.triggered_at})

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_post("/trigger", trigger)
        return app


@pytest.mark.slow
def test_measured_rto_matches_known_outage(tmp_path: Path) -> None:
    target = OutageTarget()
    with serve_in_thread(target.app()) as url:
        plan = LoadPlan(
            host=url, users=2, spawn_rate=2, duration_s=12.0,
            request=RequestSpec(method="POST", path="/v1/chat/completions", json={"m": "x"}),
            timeout_s=2.0, probe_rate_hz=PROBE_RATE_HZ,
        )
        runner = LoadRunner(plan, tmp_path)
        runner.start()
        try:
            runner.wait_ready()
            baseline_start = time.time()
            time.sleep(4.0)  # baseline: a fixed span of load, not a wait for an event
            before = time.time()
            httpx.post(url + "/trigger", timeout=5).raise_for_status()
            after = time.time()
            fault_start = before
            time.sleep(OUTAGE_S + 5.5)  # recovery needs W = 5 s of healthy buckets to be seen
        finally:
            runner.stop()
        end = time.time()

    assert target.triggered_at is not None
    samples = read_samples(tmp_path)
    assert len(samples) > 100
    m = measure.measure_run(
        samples,
        {"baseline": (baseline_start, fault_start), "fault": (fault_start, fault_start + OUTAGE_S),
         "recovery": (fault_start + OUTAGE_S, end)},
        [measure.FaultTiming(name="outage", type="hook", onset_at=(before + after) / 2,
                             onset_source="hook-response", onset_uncertainty_s=(after - before) / 2,
                             reverted_at=None)],
        measure.ObjectiveSpec(rto_s=10),
        measure.MeasureSettings(probe_rate_hz=PROBE_RATE_HZ),
    )
    fault = asdict(m.faults[0])
    tolerance_s = max(0.05, 2 / PROBE_RATE_HZ)
    assert fault["impact"] == "recovered"
    assert fault["rto_s"] == pytest.approx(OUTAGE_S, abs=tolerance_s), fault
    assert fault["time_to_detect_s"] is not None and fault["time_to_detect_s"] <= tolerance_s
    assert m.objectives_met
