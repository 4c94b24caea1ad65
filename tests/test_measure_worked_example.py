"""The worked example of docs/method.md, number for number, so the page and the code agree."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from harness.measure import FaultTiming, MeasureSettings, ObjectiveSpec, measure_run
from harness.measure.testing import probe_stream, set_between

T0 = 1_800_000_000.0


def test_worked_example_of_the_method_page() -> None:
    samples = probe_stream(T0 + 60, 20.0, phase_s=T0 - 20 + 0.010)
    samples = set_between(samples, T0, T0 + 6.40, status=503)
    samples = set_between(samples, T0 + 6.40, T0 + 31.0, tier="gpu")
    samples = set_between(samples, T0 + 7.50, T0 + 7.60, status=503)
    phases = {"baseline": (T0 - 20, T0), "fault": (T0, T0 + 30), "recovery": (T0 + 30, T0 + 60)}
    fault = FaultTiming("provider-down", "endpoint_kill", T0, "docker-event:die", 0.002, T0 + 30, ["hosted"])
    objectives = ObjectiveSpec(rto_s=15, max_error_rate=0.10, p95_baseline_factor=2.0, failover_to="gpu")

    result = measure_run(samples, phases, [fault], objectives, MeasureSettings(20.0))
    figures = asdict(result.faults[0])

    # The first bad request starts at 0.01 s; its 503 arrives 20 ms later: visible at 0.03 s.
    assert figures["time_to_detect_s"] == pytest.approx(0.03)
    # The incident closes in bucket 30 (2 of 5 bad: Wilson lower bound 0.143 > 0.10); its last bad
    # request starts at 7.56 s and its answer arrives at 7.58 s; the next request (7.61 s) is good.
    assert figures["service_restored_s"] == pytest.approx(7.61)
    assert figures["last_impacted_answer_s"] == pytest.approx(7.58)
    assert figures["rto_s"] == pytest.approx(7.61)
    assert figures["failover_s"] == pytest.approx(6.43)
    assert figures["failback_s"] == pytest.approx(31.03)
    assert (figures["degraded_s"], figures["lost_requests"], figures["impact"]) == (0.0, 0, "recovered")
    assert figures["resolution_s"] == pytest.approx(0.25)
    outcome = {o.name: (o.measured, o.passed) for o in result.objectives}
    assert outcome["rto_s"] == (pytest.approx(7.61), True)
    assert outcome["p95_ms"] == (20.0, True)
    assert outcome["failover_to"] == ("gpu after 6.43 s", True)
    assert outcome["max_error_rate"] == (pytest.approx(130 / 600, abs=1e-6), False)
    assert result.objectives[2].target == "2x baseline (= 40.0 ms)"
    assert not result.objectives_met
