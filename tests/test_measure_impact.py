"""What users felt (harness/measure/impact.py), on synthetic samples: pure logic.

Affected time judges the very buckets the RTO judges, with the same evidence rule; where the two
figures differ, the one-line note says why. The runbook trigger's walk is the arithmetic the story
used to do itself."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure import FaultTiming, MeasureSettings, ObjectiveSpec, measure_run
from harness.measure.impact import RunbookTrigger, runbook_walk
from harness.measure.testing import probe_stream, set_between

T0 = 1_000_010.0  # the onset; the run starts at T0 - 10
PHASES = {"baseline": (T0 - 10, T0), "fault": (T0, T0 + 20), "recovery": (T0 + 20, T0 + 40)}
SETTINGS = MeasureSettings(probe_rate_hz=20.0)
OBJECTIVES = ObjectiveSpec(max_error_rate=0.10)


def _fault(reverted: float = T0 + 20) -> FaultTiming:
    return FaultTiming("down", "down", T0, "toxiproxy-api", 0.001, reverted, ["toxiproxy:p"])


def test_affected_time_uses_the_rtos_evidence_rule() -> None:
    """An outage of 2 s, then one lone failure in each of eight later buckets: 1 bad of 5 is over
    the 10 % objective but not evidence (>= 2 bad, Wilson lower bound > 10 %), so the lone failures
    are not affected time, exactly as they do not keep the RTO open."""
    samples = set_between(probe_stream(T0 + 40, phase_s=T0 - 10 + 0.01), T0, T0 + 2.0, status=503)
    for k in range(8):
        lo = T0 + 25 + k * 0.5
        starts = samples["start"].to_numpy()
        first = np.flatnonzero((starts >= lo) & (starts < lo + 0.25))[:1]
        samples = set_between(samples, lo, lo + 0.25, status=503, where=np.isin(np.arange(len(samples)), first))
    m = measure_run(samples, PHASES, [_fault()], OBJECTIVES, SETTINGS)
    impact, fault = m.impact, m.faults[0]
    assert impact is not None and fault.rto_s is not None
    assert impact.failed == 40 + 8
    assert impact.unhealthy_buckets == 8 and impact.affected_s == pytest.approx(2.0)
    assert impact.judged_buckets == 160  # whole buckets from the onset to the end of the data
    assert fault.rto_s == pytest.approx(2.0, abs=0.06)
    assert impact.note is None  # they agree within a bucket


def test_a_healthy_gap_inside_the_incident_is_said_in_one_line() -> None:
    """Bad 0-1 s and 2-3 s: the RTO spans the healthy second between (4 healthy buckets);
    affected time counts the 8 unhealthy ones."""
    samples = probe_stream(T0 + 40, phase_s=T0 - 10 + 0.01)
    samples = set_between(set_between(samples, T0, T0 + 1.0, status=503), T0 + 2.0, T0 + 3.0, status=503)
    m = measure_run(samples, PHASES, [_fault()], OBJECTIVES, SETTINGS)
    assert m.impact is not None and m.faults[0].rto_s == pytest.approx(3.0, abs=0.06)
    assert m.impact.affected_s == pytest.approx(2.0)
    assert m.impact.note is not None and "\n" not in m.impact.note
    assert m.impact.note.startswith("Users were affected for less than the RTO (2.00 s against 3.0")
    assert "4 healthy buckets inside the incident" in m.impact.note


def test_a_second_incident_after_recovery_is_said_too() -> None:
    """Bad 0-1 s, healthy 10 s (past the 5 s window: the incident ended), bad again 11-12 s: the RTO
    is the first incident's; affected time holds both."""
    samples = probe_stream(T0 + 40, phase_s=T0 - 10 + 0.01)
    samples = set_between(set_between(samples, T0, T0 + 1.0, status=503), T0 + 11.0, T0 + 12.0, status=503)
    m = measure_run(samples, PHASES, [_fault()], OBJECTIVES, SETTINGS)
    assert m.impact is not None and m.impact.affected_s == pytest.approx(2.0)
    assert m.impact.note is not None
    assert m.impact.note.startswith("Users were affected for longer than the RTO (2.00 s against 1.0")
    assert "4 unhealthy buckets came after service had been healthy for 5 s" in m.impact.note


def test_no_fault_no_impact() -> None:
    m = measure_run(probe_stream(T0 + 40, phase_s=T0 - 10 + 0.01), PHASES, [], OBJECTIVES, SETTINGS)
    assert m.impact is None


def _outage(bad_from_s: float = 10.0, bad_until_s: float = 15.0):  # type: ignore[no-untyped-def]
    """A 30 s probe stream at 20 Hz from T0 - 10, every request failing between the two offsets."""
    samples = probe_stream(T0 + 20, phase_s=T0 - 10)
    return set_between(samples, T0 - 10 + bad_from_s, T0 - 10 + bad_until_s, status=503)


def test_runbook_fires_when_the_window_error_rate_passes_the_trigger() -> None:
    walk = runbook_walk(_outage(), RunbookTrigger(0.10, 40.0, 10.0), T0, T0 + 20, 0.25)
    # 10 s window at 20 Hz holds 200 answers: more than 10 % bad needs 21 failures, i.e. 1.05 s of
    # the outage; the walk steps 0.25 s, so it fires at +1.25 s.
    assert walk.fired_at == pytest.approx(T0 + 1.25)
    assert walk.fired_by == "error_rate" and walk.fired_answers == 200
    # Clears once fewer than 21 of the 100 failures remain in the window: 14 s after onset.
    assert walk.cleared_at == pytest.approx(T0 + 14.25)
    assert walk.stream == "the constant-rate probe stream"


def test_a_shorter_window_fires_on_fewer_answers() -> None:
    walk = runbook_walk(_outage(), RunbookTrigger(0.5, 100.0, 2.0), T0, T0 + 20, 0.25)
    assert walk.fired_at == pytest.approx(T0 + 1.25)  # 21 of 40 answers in 2 s are bad at +1.05 s


def test_no_impact_means_the_trigger_never_fires() -> None:
    walk = runbook_walk(_outage(0, 0), RunbookTrigger(0.10, 40.0, 10.0), T0, T0 + 20, 0.25)
    assert walk.fired_at is None and walk.reason is None
    assert runbook_walk(_outage(), RunbookTrigger(0.10, None, 10.0), None, None, 0.25).reason == "no fault took effect"
