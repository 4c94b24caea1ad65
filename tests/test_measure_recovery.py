"""RTO, time to detect and impact by the sustained-window rule (docs/method.md), on synthetic
probe streams at 20 Hz whose request grid is deliberately not aligned with the onset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.measure import FaultTiming, MeasureSettings, ObjectiveSpec, measure_run, resolution_s
from harness.measure.testing import drop_between, probe_stream, set_between

RATE_HZ = 20.0
PROBE_INTERVAL_S = 1 / RATE_HZ
T0 = 1_000_020.0  # onset, epoch seconds
RUN_START = T0 - 20.0
PHASE_S = 0.013  # probe grid offset: requests never start exactly at the onset


def stream(end_after_onset_s: float = 40.0) -> pd.DataFrame:
    return probe_stream(T0 + end_after_onset_s, RATE_HZ, phase_s=RUN_START + PHASE_S)


def fault(uncertainty_s: float = 0.002) -> FaultTiming:
    return FaultTiming("provider-down", "endpoint_kill", T0, "docker-event:die", uncertainty_s, T0 + 10, ["hosted"])


def measure(samples: pd.DataFrame, objectives: ObjectiveSpec = ObjectiveSpec(), **settings: float):
    phases = {"baseline": (RUN_START, T0), "fault": (T0, T0 + 10), "recovery": (T0 + 10, T0 + 40)}
    return measure_run(samples, phases, [fault()], objectives, MeasureSettings(RATE_HZ, **settings))


@pytest.mark.parametrize("outage_s", [3.0, 7.6, 12.25])
def test_known_outage_gives_rto_within_one_probe_interval(outage_s: float) -> None:
    samples = set_between(stream(), T0, T0 + outage_s, status=503)

    figures = measure(samples).faults[0]

    assert figures.impact == "recovered"
    assert abs(figures.rto_s - outage_s) <= PROBE_INTERVAL_S
    assert 0 <= figures.time_to_detect_s <= PROBE_INTERVAL_S
    assert figures.recovered_at == pytest.approx(T0 + figures.rto_s)


def test_error_objective_sets_bucket_threshold_and_rto_is_unchanged() -> None:
    samples = set_between(stream(), T0, T0 + 6.0, status=503)

    figures = measure(samples, ObjectiveSpec(max_error_rate=0.1)).faults[0]

    assert abs(figures.rto_s - 6.0) <= PROBE_INTERVAL_S
    assert "bad ratio > 0.1" in figures.method


def test_alternating_failing_buckets_are_not_a_recovery() -> None:
    # Outage for 10 s, then 10 s in which every other bucket fails completely (half the
    # requests): any 5 s window over that stretch is 50 % healthy, none is healthy throughout.
    samples = set_between(stream(), T0, T0 + 10.0, status=503)
    bucket = np.floor((samples["start"].to_numpy() - T0) / 0.25)
    samples = set_between(samples, T0 + 10.0, T0 + 20.0, status=503, where=bucket % 2 == 0)

    figures = measure(samples).faults[0]

    # The last failing bucket is [19.5, 19.75): recovery is the first good request after it.
    assert figures.rto_s > 19.5
    assert abs(figures.rto_s - 19.75) <= PROBE_INTERVAL_S


def test_97_percent_healthy_window_is_not_a_recovery() -> None:
    # After the outage one request in 40 still fails (one per 2 s): every 5 s window is
    # 97.5 % healthy, yet buckets holding a failure are unhealthy under a 10 % error objective.
    samples = set_between(stream(), T0, T0 + 5.0, status=503)
    offsets = samples["start"].to_numpy() - T0
    sparse = (offsets >= 5.0) & (offsets < 15.0) & (np.round(offsets * RATE_HZ) % 40 == 0)
    samples = set_between(samples, T0 + 5.0, T0 + 15.0, status=503, where=sparse)
    last_bad_offset_s = float(offsets[sparse].max())

    figures = measure(samples, ObjectiveSpec(max_error_rate=0.1)).faults[0]

    window = samples[(offsets >= 5.0) & (offsets < 10.0)]
    assert window["ok"].mean() >= 0.97  # the trap is real
    assert figures.rto_s > last_bad_offset_s
    assert abs(figures.rto_s - (last_bad_offset_s + PROBE_INTERVAL_S)) <= 1e-6


def test_no_impact_gives_rto_zero_and_says_so() -> None:
    figures = measure(stream()).faults[0]

    assert figures.impact == "none"
    assert figures.rto_s == 0.0
    assert figures.time_to_detect_s is None
    assert "no observed impact" in figures.notes["time_to_detect_s"]


def test_isolated_errors_below_the_error_objective_are_no_impact() -> None:
    samples = stream()
    offsets = samples["start"].to_numpy() - T0
    one_per_bucket_at_most = (offsets > 0) & (np.round(offsets * RATE_HZ) % 40 == 0)
    samples = set_between(samples, T0, T0 + 10, status=500, where=one_per_bucket_at_most)

    # One bad of 5 per bucket is 20 %: within a 25 % objective, beyond a 10 % one.
    assert measure(samples, ObjectiveSpec(max_error_rate=0.25)).faults[0].impact == "none"
    assert measure(samples, ObjectiveSpec(max_error_rate=0.1)).faults[0].impact == "recovered"


def test_never_recovering_gives_no_rto_and_fails_the_objective() -> None:
    samples = set_between(stream(), T0, T0 + 40.0, status=503)

    result = measure(samples, ObjectiveSpec(rto_s=15.0))
    figures = result.faults[0]

    assert figures.impact == "unrecovered"
    assert figures.rto_s is None and figures.recovered_at is None
    assert "never healthy for 5 s" in figures.notes["rto_s"]
    [rto] = result.objectives
    assert (rto.name, rto.measured, rto.passed) == ("rto_s", None, False)
    assert result.verdict == "failed"


def test_healthy_for_less_than_the_window_before_data_ends_is_unrecovered() -> None:
    samples = set_between(stream(40.0), T0, T0 + 36.0, status=503)  # 4 s healthy at the end

    assert measure(samples).faults[0].impact == "unrecovered"
    assert measure(samples, window_s=3.0).faults[0].impact == "recovered"


def test_impact_that_starts_late_is_measured_from_the_onset() -> None:
    # The stack keeps serving for 6 s (longer than W), then fails for 4 s.
    samples = set_between(stream(), T0 + 6.0, T0 + 10.0, status=503)

    figures = measure(samples).faults[0]

    assert figures.impact == "recovered"
    assert abs(figures.time_to_detect_s - 6.0) <= PROBE_INTERVAL_S
    assert abs(figures.rto_s - 10.0) <= PROBE_INTERVAL_S


def test_slow_ok_responses_are_bad_only_with_a_latency_bound() -> None:
    samples = set_between(stream(), T0, T0 + 8.0, latency_ms=900.0)

    absolute = measure(samples, ObjectiveSpec(p95_ms=200.0)).faults[0]
    relative = measure(samples, ObjectiveSpec(p95_baseline_factor=2.0)).faults[0]
    unbounded = measure(samples).faults[0]

    assert absolute.impact == relative.impact == "recovered"
    assert abs(absolute.rto_s - 8.0) <= PROBE_INTERVAL_S
    assert abs(relative.rto_s - 8.0) <= PROBE_INTERVAL_S
    assert "latency <= 40.0 ms" in relative.method  # 2 x the 20 ms baseline p95
    assert unbounded.impact == "none" and unbounded.rto_s == 0.0


def test_gap_after_the_outage_cannot_make_the_stack_look_recovered_earlier() -> None:
    # Failing until 4 s, no data from 4 s to 7 s, healthy after: the stack may have recovered
    # anywhere in the gap; the conservative recovery instant is the first good request after it.
    samples = drop_between(set_between(stream(), T0, T0 + 4.0, status=503), T0 + 4.0, T0 + 7.0)

    figures = measure(samples).faults[0]

    assert figures.impact == "recovered"
    assert 7.0 <= figures.rto_s <= 7.0 + PROBE_INTERVAL_S
    assert figures.data_gaps_s == pytest.approx(3.0)


def test_gap_inside_the_healthy_window_restarts_the_window() -> None:
    samples = set_between(stream(), T0, T0 + 5.0, status=503)
    samples = drop_between(samples, T0 + 7.0, T0 + 8.0)  # 2 s healthy, 1 s gap, then healthy

    figures = measure(samples).faults[0]

    assert 8.0 <= figures.rto_s <= 8.0 + PROBE_INTERVAL_S


def test_gap_in_the_middle_of_the_outage_changes_nothing() -> None:
    samples = drop_between(set_between(stream(), T0, T0 + 6.0, status=503), T0 + 2.0, T0 + 3.0)

    figures = measure(samples).faults[0]

    assert abs(figures.rto_s - 6.0) <= PROBE_INTERVAL_S
    assert figures.data_gaps_s == pytest.approx(1.0)


def test_gap_without_any_bad_request_is_no_observed_impact() -> None:
    samples = drop_between(stream(), T0 + 1.0, T0 + 2.0)

    figures = measure(samples).faults[0]

    assert figures.impact == "none"
    assert figures.data_gaps_s == pytest.approx(1.0)


def test_no_requests_after_onset_is_unrecovered() -> None:
    samples = stream()
    samples = samples[samples["start"] < T0].reset_index(drop=True)

    figures = measure(samples).faults[0]

    assert figures.impact == "unrecovered" and figures.rto_s is None
    assert "no requests started after the onset" in figures.notes["rto_s"]


def test_resolution_is_probe_interval_plus_onset_uncertainty_or_the_bucket() -> None:
    settings_fine = MeasureSettings(RATE_HZ, bucket_s=0.01, window_s=5.0)
    settings_default = MeasureSettings(RATE_HZ)

    assert resolution_s(settings_fine, 0.03) == pytest.approx(0.05 + 0.03)
    assert resolution_s(settings_default, 0.03) == pytest.approx(0.25)
    assert resolution_s(MeasureSettings(2.0), 0.1) == pytest.approx(0.6)
