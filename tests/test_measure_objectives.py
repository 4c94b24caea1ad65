"""Objectives against measured figures, and whether they were all met."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.measure import (
    FaultTiming,
    MeasureSettings,
    ObjectiveResult,
    ObjectiveSpec,
    all_met,
    measure_run,
)
from harness.measure.testing import probe_stream, set_between

T0 = 3_000_020.0
RUN_START = T0 - 20.0
PHASES = {"baseline": (RUN_START, T0), "fault": (T0, T0 + 20), "recovery": (T0 + 20, T0 + 40)}


def drill(samples: pd.DataFrame, objectives: ObjectiveSpec, faults: list[FaultTiming] | None = None):
    if faults is None:
        faults = [FaultTiming("provider-down", "endpoint_kill", T0, "docker-event:die", 0.002, T0 + 20, ["hosted"])]
    return measure_run(samples, PHASES, faults, objectives, MeasureSettings(20.0))


def two_second_failover() -> pd.DataFrame:
    """20 ms at baseline; 2 s of 503 (10 % of the fault phase); then gpu at 30 ms."""
    samples = probe_stream(T0 + 40, 20.0, phase_s=RUN_START + 0.01)
    samples = set_between(samples, T0, T0 + 2.0, status=503)
    return set_between(samples, T0 + 2.0, T0 + 20.0, tier="gpu", latency_ms=30.0)


ALL = ObjectiveSpec(
    rto_s=5.0, max_error_rate=0.11, p95_baseline_factor=2.0, failover_to="gpu", max_lost_requests=0
)


def test_every_objective_passes_and_the_verdict_is_passed() -> None:
    result = drill(two_second_failover(), ALL)

    by_name = {o.name: o for o in result.objectives}
    assert list(by_name) == ["rto_s", "max_error_rate", "p95_ms", "failover_to", "max_lost_requests"]
    assert all(o.passed for o in result.objectives), result.objectives
    assert by_name["rto_s"].measured == pytest.approx(2.0, abs=0.05)
    assert by_name["max_error_rate"].measured == pytest.approx(0.1)
    assert by_name["p95_ms"].target == "2x baseline (= 40.0 ms)"
    assert by_name["p95_ms"].measured == pytest.approx(30.0)
    assert by_name["max_lost_requests"].measured == 0
    assert result.objectives_met


@pytest.mark.parametrize(
    ("objectives", "failing"),
    [
        (ObjectiveSpec(rto_s=1.5), "rto_s"),
        (ObjectiveSpec(max_error_rate=0.05), "max_error_rate"),
        (ObjectiveSpec(p95_baseline_factor=1.2), "p95_ms"),
        (ObjectiveSpec(p95_ms=25.0), "p95_ms"),
        (ObjectiveSpec(failover_to="cpu"), "failover_to"),
    ],
)
def test_each_missed_objective_fails_the_verdict(objectives: ObjectiveSpec, failing: str) -> None:
    result = drill(two_second_failover(), objectives)

    [objective] = result.objectives
    assert objective.name == failing and objective.passed is False
    assert not result.objectives_met


def test_rto_objective_is_checked_against_the_worst_fault() -> None:
    samples = set_between(two_second_failover(), T0 + 10.0, T0 + 14.0, status=503)
    faults = [
        FaultTiming("provider-down", "endpoint_kill", T0, "docker-event:die", 0.002, T0 + 5, ["hosted"]),
        FaultTiming("gpu-loss", "gpu_node_loss", T0 + 10.0, "hook-response", 0.01, T0 + 20, ["gpu-a1"]),
    ]

    result = drill(samples, ObjectiveSpec(rto_s=3.0), faults)

    assert [round(f.rto_s, 1) for f in result.faults] == [2.0, 4.0]
    [rto] = result.objectives
    assert rto.measured == pytest.approx(4.0, abs=0.05) and not rto.passed
    assert rto.note == "worst fault: gpu-loss"


def test_missing_measurements_fail() -> None:
    samples = probe_stream(T0, 20.0, phase_s=RUN_START)  # nothing after the baseline
    result = drill(samples, ObjectiveSpec(rto_s=10, max_error_rate=0.1, p95_ms=100.0))
    no_fault = drill(samples, ObjectiveSpec(rto_s=10, failover_to="gpu", max_lost_requests=0), faults=[])

    assert [(o.measured, o.passed) for o in result.objectives] == [(None, False)] * 3
    assert [(o.measured, o.passed) for o in no_fault.objectives] == [(None, False)] * 3
    assert all(o.note for o in result.objectives + no_fault.objectives)


def test_relative_p95_without_a_baseline_fails_and_says_why() -> None:
    samples = probe_stream(T0 + 40, 20.0, phase_s=T0 + 0.01)  # the baseline has no requests

    [p95] = drill(samples, ObjectiveSpec(p95_baseline_factor=2.0)).objectives

    assert p95.target == "2x baseline" and p95.measured == pytest.approx(20.0)
    assert p95.passed is False and "baseline" in (p95.note or "")


def test_all_met_helper() -> None:
    yes = ObjectiveResult("rto_s", 15.0, 3.0, True)
    no = ObjectiveResult("max_error_rate", 0.1, 0.2, False)

    assert all_met([yes, yes])
    assert not all_met([yes, no])
    assert all_met([])


def test_conflicting_p95_objectives_are_rejected() -> None:
    with pytest.raises(ValueError, match="not both"):
        ObjectiveSpec(p95_ms=100.0, p95_baseline_factor=2.0)


def test_latency_objective_over_fast_failures_is_not_measurable_and_fails() -> None:
    # Every fault-phase request fails fast (2.6 ms 503s): there is no latency to judge, and a p95
    # over the failures (2.6 ms) would "pass" an outage.
    samples = probe_stream(T0 + 40, 20.0, phase_s=RUN_START + 0.01)
    samples = set_between(samples, T0, T0 + 20.0, status=503, latency_ms=2.6)

    [p95] = drill(samples, ObjectiveSpec(p95_ms=100.0)).objectives

    assert p95.passed is False and p95.measured is None
    assert "not measurable: 0 successful probe requests" in (p95.note or "")
    assert "400 failed" in (p95.note or "")


def test_p95_after_failover_is_judged_from_when_traffic_moved() -> None:
    # Failover arrives at 2.03 s (gpu at 30 ms) and new requests are good from 2.01 s: the window
    # opens at 2.03 s and holds the 359 requests sent from 2.06 s to 19.96 s, all at 30 ms.
    samples = two_second_failover()

    [p95] = drill(samples, ObjectiveSpec(p95_baseline_factor=2.0, p95_during="after_failover")).objectives
    [fault_phase] = drill(samples, ObjectiveSpec(p95_ms=25.0)).objectives

    assert p95.passed is True and p95.measured == pytest.approx(30.0)
    assert "359 successful probe requests" in (p95.note or "")
    assert p95.target == "2x baseline (= 40.0 ms) during after_failover"
    assert fault_phase.passed is False and fault_phase.measured == pytest.approx(30.0)


def test_p95_after_failover_without_a_failover_is_not_measurable() -> None:
    samples = set_between(probe_stream(T0 + 40, 20.0, phase_s=RUN_START + 0.01), T0, T0 + 2.0, status=503)

    [p95] = drill(samples, ObjectiveSpec(p95_ms=100.0, p95_during="after_failover")).objectives

    assert p95.passed is False and "no failover was observed" in (p95.note or "")


def test_p95_after_failover_says_when_traffic_moved_only_after_the_fault_phase() -> None:
    # 503s for the whole 20 s fault phase and 1 s into recovery, then gpu answers: traffic moved
    # 1 s after the fault phase ended, so there is no after-failover window, and the note says so
    # instead of "no failover".
    samples = set_between(probe_stream(T0 + 40, 20.0, phase_s=RUN_START + 0.01), T0, T0 + 21.0, status=503)
    samples = set_between(samples, T0 + 21.0, T0 + 40, tier="gpu", latency_ms=30.0)

    [p95] = drill(samples, ObjectiveSpec(p95_ms=100.0, p95_during="after_failover")).objectives

    assert p95.passed is False and p95.measured is None
    assert "no failover" not in (p95.note or "")
    assert "s after the fault phase ended" in (p95.note or ""), p95.note
