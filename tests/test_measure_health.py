"""measure/health.py (pure): problems from troubles, probe lag, skipped probes and sample gaps;
widened fault figures; undecided objectives; the verdict they lead to."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from harness.measure import FaultTiming, Measurement, MeasureSettings, ObjectiveSpec, measure_run
from harness.measure.health import LAG_PROBLEM_S, find_problems, latency_from_intended, probe_schedule
from harness.measure.model import HarnessTrouble
from harness.measure.testing import concat_samples, probe_segment, scheduled, stall_probes
from harness.verdict import Verdict, decide_verdict

PHASES = {"baseline": (0.0, 10.0), "fault": (10.0, 30.0), "recovery": (30.0, 40.0)}
ONSET = FaultTiming("provider-down", "down", 10.0, "toxiproxy-api", 0.0, 30.0)
SETTINGS = MeasureSettings(probe_rate_hz=20)


def outage_run() -> pd.DataFrame:
    """Healthy, then 503s from the onset for 2.6 s, then healthy: RTO about 2.6 s."""
    return scheduled(concat_samples(
        probe_segment(0.0, 10.0), probe_segment(10.0, 2.6, status=503), probe_segment(12.6, 27.4, tier="gpu"),
    ))


def measure(samples: pd.DataFrame, rto_s: float, troubles: list[HarnessTrouble] | None = None,
            **objectives: Any) -> Measurement:
    return measure_run(samples, PHASES, [ONSET], ObjectiveSpec(rto_s=rto_s, **objectives), SETTINGS,
                       troubles=[] if troubles is None else troubles)


def verdict_of(m: Measurement) -> Verdict:
    return decide_verdict(objectives_met=m.decided_objectives_met, abort_reason=None,
                          cleanup_verified=True, undecided=m.undecided).verdict


def test_a_run_on_schedule_has_no_problem_and_passes() -> None:
    m = measure(outage_run(), rto_s=3)
    assert m.health is not None
    assert m.health.problems == [] and m.health.undecided == []
    assert m.health.schedule.late == 0 and m.health.schedule.probes == 800
    assert verdict_of(m) == Verdict.PASSED


def test_a_stall_around_recovery_leaves_a_tight_rto_undecided_naming_it() -> None:
    stalled = stall_probes(outage_run(), 12.3, 0.7)
    m = measure(stalled, rto_s=3)
    fault = m.faults[0]
    assert fault.rto_s > 2.9  # the burst after the stall is what the samples show
    health = m.health
    (lag,) = [p for p in health.problems if p.kind == "probe_lag"]
    assert lag.magnitude_s == pytest.approx(0.7, abs=0.01)
    assert lag.start_s == pytest.approx(12.3, abs=0.01)
    assert health.undecided_names == ["rto_s"]
    (line,) = m.undecided
    assert line.startswith("probe schedule slipped 0.70 s (12 probes sent late) at +12.3 s")
    assert line.endswith("inside the recovery window that decides rto_s")
    assert verdict_of(m) == Verdict.INCONCLUSIVE
    (widened,) = [f for f in health.figures if f.figure == "rto_s"]
    assert widened.widened_resolution_s == pytest.approx(widened.resolution_s + 0.7, abs=0.01)


def test_the_same_stall_cannot_flip_a_loose_rto() -> None:
    m = measure(stall_probes(outage_run(), 12.3, 0.7), rto_s=10)
    assert m.health.problems
    assert m.health.undecided == []
    assert verdict_of(m) == Verdict.PASSED


def test_a_stall_far_from_the_deciding_window_decides_nothing() -> None:
    m = measure(stall_probes(outage_run(), 35.0, 0.7), rto_s=3)  # in the recovery phase, after W
    assert [p.kind for p in m.health.problems] == ["probe_lag"]
    assert m.health.undecided == []


def test_a_decided_failure_stays_failed_beside_an_undecided_objective() -> None:
    # rto_s 3 is undecided by the stall; max_lost_requests 0 is clearly missed (no lost request
    # can be hidden by a stall), so exit 1 still means "an objective failed".
    samples = stall_probes(outage_run(), 12.3, 0.7)
    samples.loc[samples["start"].between(20.0, 20.5), ["status", "ok"]] = 0
    m = measure(samples, rto_s=3, max_lost_requests=0)
    assert "rto_s" in m.health.undecided_names
    assert verdict_of(m) == Verdict.FAILED


def test_a_partial_trouble_leaves_every_later_objective_undecided() -> None:
    write_error = HarnessTrouble("write_error", 15.0, 15.0, 0.0, "writing probe.csv failed: No space left on device",
                                partial=True)
    m = measure(outage_run(), rto_s=10, troubles=[write_error], max_error_rate=0.5)
    assert sorted(m.health.undecided_names) == ["max_error_rate", "rto_s"]
    assert all("data after it may be missing" in line for line in m.undecided)
    assert verdict_of(m) == Verdict.INCONCLUSIVE


def test_a_partial_trouble_after_every_window_decides_nothing() -> None:
    late = HarnessTrouble("write_error", 39.0, 39.0, 0.0, "disk full", partial=True)
    m = measure(outage_run(), rto_s=10, troubles=[late], max_error_rate=0.5)
    assert m.health.undecided == []


def test_a_recorded_host_stall_inside_the_fault_phase_can_void_a_close_error_rate() -> None:
    stall = HarnessTrouble("host_stall", 15.0, 16.5, 1.5, "host stalled 1.50 s")
    m = measure(outage_run(), rto_s=10, troubles=[stall], max_error_rate=0.14)  # measured 0.13
    assert "max_error_rate" in m.health.undecided_names
    far = measure(outage_run(), rto_s=10, troubles=[stall], max_error_rate=0.5)
    assert far.health.undecided == []


def test_a_missed_p95_is_undecided_only_when_the_stall_explains_the_excess() -> None:
    samples = outage_run()
    slow = (samples["start"] >= 20.0) & (samples["start"] < 21.5)  # 30 probes of 20 s of fault: 7.5 %
    samples.loc[slow, "latency_ms"] = 900.0
    samples.loc[slow, "end"] = samples.loc[slow, "start"] + 0.9
    stall = HarnessTrouble("host_stall", 20.0, 22.5, 0.9, "host stalled 0.90 s")
    m = measure(samples, rto_s=10, troubles=[stall], p95_ms=100.0)
    assert m.objectives[1].passed is False
    assert "p95_ms" in m.health.undecided_names
    clean = measure(samples, rto_s=10, p95_ms=100.0)
    assert clean.health.undecided == []


def test_sample_gaps_are_listed_unless_a_trouble_explains_them() -> None:
    samples = outage_run()
    gap = samples[~samples["start"].between(20.0, 22.0)]
    problems = find_problems(gap, [], PHASES, 0.05)
    assert [(p.kind, round(p.start_s, 2), round(p.length_s, 2)) for p in problems] == [("sample_gap", 19.95, 2.1)]
    explained = find_problems(gap, [HarnessTrouble("host_stall", 20.0, 22.0, 2.0, "host stalled 2.00 s")], PHASES, 0.05)
    assert [p.kind for p in explained] == ["host_stall"]


def test_schedule_counts_late_and_skipped_probes() -> None:
    samples = stall_probes(outage_run(), 5.0, 0.2)
    skipped = samples["start"].between(6.0, 6.12)
    samples.loc[skipped, ["status", "ok"]] = 0
    samples.loc[skipped, "error"] = "skipped: too many probes in flight"
    schedule = probe_schedule(samples)
    assert schedule is not None
    assert schedule.late == 4 and schedule.skipped == 3
    assert schedule.lag_max_ms == pytest.approx(200.0, abs=1)
    kinds = [p.kind for p in find_problems(samples, [], PHASES, 0.05)]
    assert kinds == ["probe_lag", "probe_skipped"]
    assert LAG_PROBLEM_S < 0.2


def test_latency_from_the_intended_instant_adds_the_lag() -> None:
    stalled = stall_probes(outage_run(), 5.0, 0.7)
    actual = latency_from_intended(outage_run(), PHASES)["baseline"]
    late = latency_from_intended(stalled, PHASES)["baseline"]
    assert actual.p50_ms == pytest.approx(20.0)
    assert late.p99_ms is not None and actual.p99_ms is not None and late.p99_ms > actual.p99_ms + 300


def test_a_run_without_schedules_has_no_health() -> None:
    m = measure_run(outage_run(), PHASES, [ONSET], ObjectiveSpec(rto_s=3), SETTINGS)
    assert m.health is None and m.undecided == []


def test_no_gap_before_the_first_or_after_the_last_request() -> None:
    samples = outage_run()
    stopped_early = samples[samples["start"] < 25.0]  # an abort: load stopped, the phase ran on
    assert find_problems(stopped_early, [], PHASES, 0.05) == []
