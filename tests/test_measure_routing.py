"""Failover, failback, degraded time and lost requests from the tier columns of samples."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from harness.measure import FaultTiming, MeasureSettings, ObjectiveSpec, good_mask, measure_run, primary_tier
from harness.measure.testing import probe_stream, set_between

RATE_HZ = 20.0
PROBE_INTERVAL_S = 1 / RATE_HZ
T0 = 2_000_020.0
RUN_START = T0 - 20.0


def stream(end_after_onset_s: float = 45.0) -> pd.DataFrame:
    return probe_stream(T0 + end_after_onset_s, RATE_HZ, phase_s=RUN_START + 0.021)


NO_OBJECTIVES = ObjectiveSpec()


def measure(samples: pd.DataFrame, objectives: ObjectiveSpec = NO_OBJECTIVES, primary: str | None = None):
    phases = {"baseline": (RUN_START, T0), "fault": (T0, T0 + 15), "recovery": (T0 + 15, T0 + 45)}
    faults = [FaultTiming("provider-down", "endpoint_kill", T0, "docker-event:die", 0.002, T0 + 15, ["hosted"])]
    return measure_run(samples, phases, faults, objectives, MeasureSettings(RATE_HZ, primary_tier=primary))


def outage_with_failover() -> pd.DataFrame:
    """hosted until t0; 1 s of 503; gpu until 10 s; cpu (degraded) until 15 s; hosted again."""
    samples = set_between(stream(), T0, T0 + 1.0, status=503)
    samples = set_between(samples, T0 + 1.0, T0 + 10.0, tier="gpu")
    return set_between(samples, T0 + 10.0, T0 + 15.0, tier="cpu", degraded=1)


def test_failover_failback_and_degraded_time() -> None:
    result = measure(outage_with_failover())
    figures = result.faults[0]

    assert result.primary_tier == "hosted"
    assert abs(figures.failover_s - 1.0) <= PROBE_INTERVAL_S
    assert abs(figures.failback_s - 15.0) <= PROBE_INTERVAL_S
    assert figures.degraded_s == pytest.approx(5.0)
    assert abs(figures.rto_s - 1.0) <= PROBE_INTERVAL_S  # the fallback serves: recovered


def test_short_return_to_primary_is_not_a_failback() -> None:
    # After the failover, hosted serves for 2 s (< W), gpu again for 1 s, then hosted for good.
    samples = set_between(stream(), T0, T0 + 1.0, status=503)
    samples = set_between(samples, T0 + 1.0, T0 + 8.0, tier="gpu")
    samples = set_between(samples, T0 + 10.0, T0 + 11.0, tier="gpu")

    figures = measure(samples).faults[0]

    assert abs(figures.failback_s - 11.0) <= PROBE_INTERVAL_S


def test_mixed_buckets_do_not_count_as_served_by_the_primary() -> None:
    samples = set_between(stream(), T0, T0 + 1.0, tier="gpu")
    offsets = samples["start"].to_numpy() - T0
    # From 1 s to 12 s every fifth request still goes to gpu: no bucket is primary-only.
    mixed = np.round(offsets * RATE_HZ) % 5 == 0
    samples = set_between(samples, T0 + 1.0, T0 + 12.0, tier="gpu", where=mixed)

    figures = measure(samples).faults[0]

    assert figures.failover_s <= PROBE_INTERVAL_S
    assert 11.75 <= figures.failback_s <= 12.0 + PROBE_INTERVAL_S


def test_traffic_already_on_the_alternate_at_the_onset_is_no_failover_of_the_fault() -> None:
    """A whole run on the compose stack: the gateway's latency breaker opened 5.1 s before the
    kill (the hosted p95 at 958 ms on a busy machine) and the first gpu answer after the onset
    read as a failover of 0.5 ms. Traffic already off the primary in the last second before the
    onset leaves failover (and failback) unmeasured, saying why."""
    samples = set_between(stream(), T0 - 5.0, T0 + 12.0, tier="gpu")

    figures = measure(samples).faults[0]

    assert figures.failover_s is None and figures.failback_s is None
    assert "already on gpu, not hosted" in figures.notes["failover_s"]
    assert figures.notes["failback_s"] == "no failover"


def test_an_alternate_answer_among_primary_ones_before_the_onset_keeps_the_failover() -> None:
    """One gpu answer in the second before the onset (a retry a gateway served elsewhere) does not
    mean traffic had moved: the primary still served beside it."""
    samples = set_between(stream(), T0 - 0.5, T0 - 0.45, tier="gpu")
    samples = set_between(samples, T0, T0 + 1.0, status=503)
    samples = set_between(samples, T0 + 1.0, T0 + 10.0, tier="gpu")

    figures = measure(samples).faults[0]

    assert abs(figures.failover_s - 1.0) <= PROBE_INTERVAL_S


def test_no_failover_means_no_failback_with_notes() -> None:
    figures = measure(set_between(stream(), T0, T0 + 3.0, status=503)).faults[0]

    assert figures.failover_s is None and figures.failback_s is None
    assert "other than hosted" in figures.notes["failover_s"]
    assert figures.notes["failback_s"] == "no failover"


def test_failover_that_never_returns_has_no_failback() -> None:
    figures = measure(set_between(stream(), T0 + 2.0, T0 + 45.0, tier="gpu")).faults[0]

    assert abs(figures.failover_s - 2.0) <= PROBE_INTERVAL_S
    assert figures.failback_s is None
    assert "never served by hosted alone" in figures.notes["failback_s"]


def test_a_slow_primary_is_still_the_primary_and_its_return_is_no_failover() -> None:
    """A CI run on the compose stack: beside another drill the hosted tier answered slowly in the
    baseline (beyond the latency bound), the gateway's breaker moved traffic to gpu 3 s before
    the kill, and hosted came back 11 s after it. Counting only good baseline answers named gpu
    the primary and read that return as the fault's failover (11.3 s); hosted is where traffic
    went, so traffic was already off it at the onset and the fault caused no failover."""
    samples = set_between(stream(), RUN_START, T0 - 3.0, latency_ms=700.0)
    samples = set_between(samples, T0 - 3.0, T0 + 11.0, tier="gpu")
    phases = {"baseline": (RUN_START, T0), "fault": (T0, T0 + 15), "recovery": (T0 + 15, T0 + 45)}
    faults = [FaultTiming("provider-down", "endpoint_kill", T0, "docker-event:die", 0.002, T0 + 15, ["hosted"])]
    settings = MeasureSettings(RATE_HZ, good_latency_ms=500.0)

    result = measure_run(samples, phases, faults, NO_OBJECTIVES, settings)

    assert result.primary_tier == "hosted"
    figures = result.faults[0]
    assert figures.failover_s is None and "already on gpu, not hosted" in figures.notes["failover_s"]


def test_primary_tier_is_the_most_common_successful_baseline_tier() -> None:
    samples = stream()
    offsets = samples["start"].to_numpy() - RUN_START
    # A third of the baseline goes to gpu; the 503s carry no tier and do not count.
    samples = set_between(samples, RUN_START, T0, tier="gpu", where=np.round(offsets * RATE_HZ) % 3 == 0)
    samples = set_between(samples, RUN_START, T0, status=503, where=np.round(offsets * RATE_HZ) % 3 == 1)
    good = good_mask(samples, None)

    assert primary_tier(samples, good, (RUN_START, T0)) == "gpu"
    assert primary_tier(samples, good, None) is None
    assert measure(stream(), primary="cpu").primary_tier == "cpu"


def test_unknown_primary_tier_leaves_failover_unmeasured() -> None:
    samples = stream()
    samples["tier"] = ""

    figures = measure(samples).faults[0]

    assert figures.failover_s is None
    assert "primary tier unknown" in figures.notes["failover_s"]


def test_lost_requests_count_status_zero_after_onset_only() -> None:
    samples = stream()
    offsets = samples["start"].to_numpy() - T0
    before = (offsets > -5.0) & (offsets < -4.8)  # 4 lost before the onset: not counted
    after = (offsets > 3.0) & (offsets < 3.3)  # 6 lost after the onset
    samples = set_between(samples, RUN_START, T0 + 45, status=0, where=before | after)

    result = measure(samples, ObjectiveSpec(max_lost_requests=5))

    assert int(before.sum()) == 4 and int(after.sum()) == 6
    assert result.faults[0].lost_requests == 6
    assert result.lost_requests == 6
    [lost] = result.objectives
    assert (lost.name, lost.target, lost.measured, lost.passed) == ("max_lost_requests", 5, 6, False)


def test_failover_to_objective_needs_good_responses_from_that_tier() -> None:
    result = measure(outage_with_failover(), ObjectiveSpec(failover_to="gpu"))
    wrong = measure(outage_with_failover(), ObjectiveSpec(failover_to="region-b"))

    [seen] = result.objectives
    assert seen.passed and seen.measured.startswith("gpu after 1.0")
    [missing] = wrong.objectives
    assert not missing.passed and missing.measured is None


def test_failover_is_stamped_when_the_alternate_answer_arrives() -> None:
    """The first failed-over request is slow — it carries the failed attempt at the primary
    inside it — so a later request can arrive first. Failover is the first arrival, which is
    what a gateway's own routing log records."""
    samples = set_between(stream(), T0, T0 + 15, tier="gpu")
    starts = samples["start"].to_numpy()
    first = int(np.searchsorted(starts, T0))
    samples.loc[samples.index[first], ["end", "latency_ms"]] = [starts[first] + 1.27, 1270.0]
    figures = asdict(measure(samples).faults[0])
    second_arrival = samples["end"].to_numpy()[first + 1] - T0
    assert figures["failover_s"] == pytest.approx(second_arrival, abs=1e-6)
    assert figures["failover_s"] < starts[first] + 1.27 - T0


def test_a_request_in_flight_at_the_onset_can_carry_the_failover() -> None:
    """A request that started before the kill and was retried on the alternate tier: traffic
    moved when its answer arrived, even though it started before the onset."""
    samples = set_between(stream(), T0 + 1.0, T0 + 15, tier="gpu")
    starts = samples["start"].to_numpy()
    in_flight = int(np.searchsorted(starts, T0)) - 1
    retried_latency_ms = (T0 + 0.055 - starts[in_flight]) * 1000
    samples.loc[samples.index[in_flight], ["end", "latency_ms", "tier"]] = [T0 + 0.055, retried_latency_ms, "gpu"]
    figures = asdict(measure(samples).faults[0])
    assert figures["failover_s"] == pytest.approx(0.055, abs=1e-6)
