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


NO_OBJECTIVES = ObjectiveSpec()


def measure(samples: pd.DataFrame, objectives: ObjectiveSpec = NO_OBJECTIVES, **settings: float):
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


def test_a_bucket_is_unhealthy_only_on_evidence() -> None:
    # After a 5 s outage, one request in 40 still fails (one per 2 s, 2.5 %) under a 10 % error
    # objective: a bucket holding 1 bad of 5 is no evidence that more than 10 % fail (Wilson
    # lower bound 0.036 at 95 %), so those buckets are healthy and the outage ends at 5 s.
    samples = set_between(stream(), T0, T0 + 5.0, status=503)
    offsets = samples["start"].to_numpy() - T0
    sparse = (offsets >= 5.0) & (offsets < 15.0) & (np.round(offsets * RATE_HZ) % 40 == 0)
    samples = set_between(samples, T0 + 5.0, T0 + 15.0, status=503, where=sparse)

    figures = measure(samples, ObjectiveSpec(max_error_rate=0.1)).faults[0]

    assert abs(figures.rto_s - 5.0) <= PROBE_INTERVAL_S
    assert figures.rto_by_stream == {"probe": figures.rto_s, "all": figures.rto_s}


def test_two_bad_of_five_in_a_bucket_keep_the_incident_open() -> None:
    # After the outage, two of every five requests fail in one bucket per second (bucket
    # offsets 0.0-0.25 of each second) until 12 s: 2 of 5 has a Wilson lower bound of 0.143 >
    # 0.10, so the incident lasts until the last such bucket: [11.0, 11.25).
    samples = set_between(stream(), T0, T0 + 5.0, status=503)
    offsets = samples["start"].to_numpy() - T0
    in_first_bucket = (offsets >= 5.0) & (offsets < 12.0) & (np.mod(offsets, 1.0) < 0.25)
    two_of_five = in_first_bucket & (np.round(np.mod(offsets, 1.0) * RATE_HZ) < 2)
    samples = set_between(samples, T0 + 5.0, T0 + 12.0, status=503, where=two_of_five)
    last_bad = float(offsets[two_of_five].max())  # 11.063

    figures = measure(samples, ObjectiveSpec(max_error_rate=0.1)).faults[0]

    assert last_bad == pytest.approx(11.063)
    # Service restored at the next request (11.113); the last 503 arrived at 11.083.
    assert figures.service_restored_s == pytest.approx(11.113)
    assert figures.last_impacted_answer_s == pytest.approx(11.083)
    assert figures.rto_s == pytest.approx(11.113)


def test_no_impact_gives_rto_zero_and_says_so() -> None:
    figures = measure(stream()).faults[0]

    assert figures.impact == "none"
    assert figures.rto_s == 0.0
    assert figures.time_to_detect_s is None
    assert "no observed impact" in figures.notes["time_to_detect_s"]


def test_isolated_errors_below_the_error_objective_are_no_impact() -> None:
    samples = stream()
    offsets = samples["start"].to_numpy() - T0
    # Two bad of 5 in one bucket every 2 s for 10 s: 40 % in those buckets (Wilson lower bound
    # 0.143 at 95 %): beyond a 10 % objective, within a 20 % one.
    pair = (offsets > 0) & (offsets < 10) & (np.round(offsets * RATE_HZ) % 40 < 2)
    samples = set_between(samples, T0, T0 + 10, status=500, where=pair)

    assert measure(samples, ObjectiveSpec(max_error_rate=0.2)).faults[0].impact == "none"
    assert measure(samples, ObjectiveSpec(max_error_rate=0.1)).faults[0].impact == "recovered"


def test_never_recovering_gives_no_rto_and_fails_the_objective() -> None:
    samples = set_between(stream(), T0, T0 + 40.0, status=503)

    result = measure(samples, ObjectiveSpec(rto_s=15.0))
    figures = result.faults[0]

    assert figures.impact == "unrecovered"
    assert figures.rto_s is None and figures.recovered_at is None
    # The data ends at +40 s: the last whole bucket is [39.75, 40.0) with 5 of 5 503s.
    assert figures.notes["rto_s"] == (
        "never healthy for 5 s after bucket +39.75 s (5/5 bad: 5 HTTP 503); data ends at +40.00 s"
    )
    [rto] = result.objectives
    assert (rto.name, rto.measured, rto.passed) == ("rto_s", None, False)
    assert not result.objectives_met


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


def test_slow_ok_responses_are_bad_above_the_latency_bound() -> None:
    # 900 ms answers for requests sent in [0, 8 s). The last slow one is sent at 7.963 s and
    # arrives at 8.863 s; the next request (8.013 s) is fast.
    samples = set_between(stream(), T0, T0 + 8.0, latency_ms=900.0)

    default = measure(samples).faults[0]  # max(2 x 20 ms, 250 ms floor) = 250 ms
    absolute = measure(samples, good_latency_ms=200.0).faults[0]
    relative = measure(samples, good_latency_factor=2.0).faults[0]  # 2 x 20 ms = 40 ms
    lenient = measure(samples, good_latency_ms=1000.0).faults[0]

    for figures in (default, absolute, relative):
        assert figures.impact == "recovered"
        assert figures.service_restored_s == pytest.approx(8.013)
        assert figures.last_impacted_answer_s == pytest.approx(8.863)
        assert figures.rto_s == pytest.approx(8.863)  # users got slow answers until then
    # The first request after the onset (0.013 s) becomes too slow at send + bound.
    assert default.time_to_detect_s == pytest.approx(0.013 + 0.250)
    assert absolute.time_to_detect_s == pytest.approx(0.013 + 0.200)
    assert "latency <= 250.0 ms" in default.method and "latency <= 40.0 ms" in relative.method
    assert lenient.impact == "none" and lenient.rto_s == 0.0


def test_requests_in_flight_at_the_onset_belong_to_the_incident() -> None:
    # The request sent 37 ms before the onset (-0.037 s) is slowed to 900 ms: too slow at
    # -0.037 + 0.250 = 0.213 s, earlier than any request sent after the onset (0.263 s).
    samples = set_between(stream(), T0 - 0.04, T0 + 8.0, latency_ms=900.0)

    figures = measure(samples).faults[0]

    assert figures.time_to_detect_s == pytest.approx(0.213)


def test_a_request_already_too_slow_before_the_onset_is_not_detection() -> None:
    # Sent 0.537 s before the onset and answered 900 ms later: it was overdue at -0.287 s, before
    # the fault, so it says nothing about the fault. Detection comes from the requests after it.
    samples = set_between(stream(), T0 - 0.54, T0 - 0.5, latency_ms=900.0)
    samples = set_between(samples, T0, T0 + 8.0, latency_ms=900.0)

    figures = measure(samples).faults[0]

    assert figures.time_to_detect_s == pytest.approx(0.013 + 0.250)


def test_samples_after_the_data_end_and_a_partial_last_bucket_decide_nothing() -> None:
    # A clean run whose last 60 ms (as the load stops, after the recovery phase ends at +40 s)
    # holds slow and failed answers: they must not turn "no impact" into "unrecovered".
    samples = stream(40.06)
    samples = set_between(samples, T0 + 39.94, T0 + 40.06, latency_ms=900.0)
    samples = set_between(samples, T0 + 40.0, T0 + 40.06, status=0)

    figures = measure(samples).faults[0]

    assert figures.impact == "none" and figures.rto_s == 0.0


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
