"""Every incident of a fault (harness/measure/incidents.py), on synthetic samples: pure logic.

The LiteLLM case of issue 26: nothing for 13.75 s after a 429 storm began, then a quarter second
of slow answers when a cooldown ended. The RTO says 14 s; the incidents say what users felt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import ScenarioError
from harness.measure import FaultTiming, MeasureSettings, ObjectiveSpec, measure_run
from harness.measure.agreement import cooldown_events
from harness.measure.goodness import good_mask, visible_at
from harness.measure.incidents import INCIDENT_GAP_S, find_incidents, summarise
from harness.measure.model import HarnessTrouble
from harness.measure.testing import probe_stream, set_between
from harness.results.compute import objective_spec
from harness.scenario import load_scenario
from harness.verdict import Verdict, decide_verdict

T0 = 1_000_010.0  # the onset; the run starts at T0 - 10
PHASES = {"baseline": (T0 - 10, T0), "fault": (T0, T0 + 20), "recovery": (T0 + 20, T0 + 40)}
SETTINGS = MeasureSettings(probe_rate_hz=20.0, good_latency_ms=500.0)
BOUND_MS = 500.0


def _fault() -> FaultTiming:
    return FaultTiming("storm", "http_error", T0, "http-fault-proxy-api", 0.001, T0 + 20, ["route:hosted-model"])


def _samples(*slow: tuple[float, float]) -> object:
    """A healthy 20 Hz probe stream from T0 - 10 to T0 + 40, slow (900 ms) in each (from, to)."""
    samples = probe_stream(T0 + 40, phase_s=T0 - 10 + 0.01)
    for lo, hi in slow:
        samples = set_between(samples, T0 + lo, T0 + hi, latency_ms=900.0)
    return samples


def test_a_late_quarter_second_is_one_short_incident_although_the_rto_is_14_s() -> None:
    samples = _samples((13.75, 14.0))
    m = measure_run(samples, PHASES, [_fault()], ObjectiveSpec(rto_s=5, max_impact_s=1), SETTINGS)
    fault = m.faults[0]
    assert fault.rto_s == pytest.approx(14.86, abs=0.001)  # the last slow answer (sent +13.96) arrives
    [incident] = fault.incidents
    # Visible when the first slow answer passed the 500 ms bound (+13.76 + 0.5), over when the
    # last one arrived (+13.96 + 0.9).
    assert incident.start_s == pytest.approx(14.26, abs=0.001)
    assert incident.end_s == pytest.approx(14.86, abs=0.001)
    assert incident.length_s == pytest.approx(0.6, abs=0.001)
    assert (incident.requests, incident.bad, incident.slow, incident.failed) == (5, 5, 5, 0)
    assert incident.worst_latency_ms == pytest.approx(900.0)
    assert incident.unhealthy_buckets == 1 and incident.cause is None
    objectives = {o.name: o for o in m.objectives}
    assert objectives["rto_s"].passed is False
    assert objectives["max_impact_s"].passed is True
    assert objectives["max_impact_s"].measured == pytest.approx(0.6, abs=0.001)
    assert "1 incident: first at +14.26 s" in (objectives["max_impact_s"].note or "")


def test_incidents_further_apart_than_the_gap_are_apart_and_closer_ones_are_one() -> None:
    # Two slow stretches 3 s apart, and a third 0.5 s after the second (one incident with it).
    samples = _samples((1.0, 1.5), (4.5, 5.0), (5.5, 6.0))
    m = measure_run(samples, PHASES, [_fault()], ObjectiveSpec(max_impact_s=10), SETTINGS)
    incidents = m.faults[0].incidents
    assert len(incidents) == 2
    first, second = incidents
    assert first.unhealthy_buckets == 2 and second.unhealthy_buckets == 4
    # The healthy buckets between the second and third stretch belong to the incident.
    assert second.requests == 30 and second.bad == 20
    assert 0.5 < INCIDENT_GAP_S < 3.0
    summary = m.impact.incidents if m.impact is not None else None
    assert summary is not None and summary.incidents == 2 and not summary.open
    assert summary.total_s == pytest.approx(first.length_s + second.length_s)
    assert summary.first_s == first.start_s and summary.last_s == second.end_s


def test_one_slow_request_in_a_bucket_is_no_incident() -> None:
    """The RTO's evidence rule: one bad among five is not enough."""
    samples = probe_stream(T0 + 40, phase_s=T0 - 10 + 0.01)
    one = np.zeros(len(samples), dtype=bool)
    one[int(np.searchsorted(samples["start"].to_numpy(), T0 + 3.0))] = True
    samples = set_between(samples, T0 + 3.0, T0 + 3.25, latency_ms=900.0, where=one)
    m = measure_run(samples, PHASES, [_fault()], ObjectiveSpec(max_impact_s=0), SETTINGS)
    assert m.faults[0].incidents == ()
    [objective] = m.objectives
    assert objective.passed is True and objective.measured == 0.0 and objective.note == "no incident"


def test_an_incident_still_open_at_the_end_fails_max_impact_as_a_lower_bound() -> None:
    samples = set_between(probe_stream(T0 + 40, phase_s=T0 - 10 + 0.01), T0 + 30, T0 + 41, status=503)
    m = measure_run(samples, PHASES, [_fault()], ObjectiveSpec(max_impact_s=60), SETTINGS)
    [incident] = m.faults[0].incidents
    assert incident.open and incident.end_s is None
    assert incident.length_s == pytest.approx(10.0 - incident.start_s + 30.0, abs=0.06)
    [objective] = m.objectives
    assert objective.passed is False and "still open" in (objective.note or "")


def test_the_cause_is_the_stacks_event_just_before_users_saw_it_never_one_in_the_middle() -> None:
    samples = _samples((0.0, 3.0), (13.75, 14.25))
    events = [
        {"ts": T0 + 0.05, "event": "breaker_open", "tier": "hosted", "detail": "p95"},
        {"ts": T0 + 1.5, "event": "breaker_half_open", "tier": "hosted", "detail": "cool-down of 5s over"},
        {"ts": T0 + 13.8, "event": "breaker_half_open", "tier": "hosted", "detail": "cool-down of 5s over"},
    ]
    m = measure_run(samples, PHASES, [_fault()], ObjectiveSpec(), SETTINGS, stack_events=events)
    first, late = m.faults[0].incidents
    assert first.cause is None  # the re-probe at +1.5 s came in the middle of the outage
    assert late.cause is not None and late.cause.startswith("breaker half-open")
    assert "hosted: cool-down of 5s over" in late.cause and "+13.80 s" in late.cause


def test_a_failure_is_seen_at_its_arrival_and_in_flight_requests_belong_to_the_first_incident() -> None:
    samples = set_between(probe_stream(T0 + 40, phase_s=T0 - 10 + 0.01), T0 - 0.1, T0 + 1.0, status=503)
    samples = set_between(samples, T0 - 0.1, T0, latency_ms=150.0)  # in flight at the onset
    good = good_mask(samples, BOUND_MS)
    visible = visible_at(samples, BOUND_MS)
    [incident] = find_incidents(samples, good, visible, T0, T0 + 30, SETTINGS, None)
    # The first failure sent after the onset (+0.01) arrives at +0.03, before those in flight.
    assert incident.start_s == pytest.approx(0.03, abs=0.001)
    # Two failures were in flight at the onset (sent -0.09 s and -0.04 s, 150 ms each).
    assert incident.bad == 20 + 2 and incident.failed == 22 and incident.requests == 22
    assert summarise([]).incidents == 0 and summarise([]).first_s is None


def test_max_impact_is_undecided_when_a_stall_inside_the_run_could_flip_it() -> None:
    """0.60 s of impact against a 0.6 s bound, with a 0.3 s host stall in the fault phase: the sum
    could move by a bucket and the stall, so the run is inconclusive, not passed or failed."""
    samples = _samples((13.75, 14.0))
    samples["intended"] = samples["start"]
    spec = ObjectiveSpec(max_impact_s=0.6)
    m = measure_run(samples, PHASES, [_fault()], spec, SETTINGS,
                    troubles=[HarnessTrouble("host_stall", T0 + 5, T0 + 5.3, 0.3, "host stalled 0.30 s")])
    assert m.health is not None and m.health.undecided_names == ["max_impact_s"]
    decision = decide_verdict(objectives_met=m.decided_objectives_met, abort_reason=None, cleanup_verified=True,
                              undecided=m.undecided)
    assert decision.verdict == Verdict.INCONCLUSIVE
    # Far from the bound, the same stall decides nothing.
    far = measure_run(samples, PHASES, [_fault()], ObjectiveSpec(max_impact_s=5), SETTINGS,
                      troubles=[HarnessTrouble("host_stall", T0 + 5, T0 + 5.3, 0.3, "host stalled 0.30 s")])
    assert far.health is not None and far.health.undecided_names == []


SCENARIO = """\
apiVersion: drill/v1
kind: Scenario
name: demo
toxiproxy: {url: http://127.0.0.1:8474}
proxies:
  - {name: upstream, listen: 127.0.0.1:19999, upstream: 127.0.0.1:18999}
load: {host: http://127.0.0.1:19999, users: 2}
phases: {baseline: 2s, fault: 3s, recovery: 2s}
faults:
  - {name: slow, type: latency, target: {proxy: upstream}, latency_ms: 300, duration: 3s}
objectives:
  rto_s: 20
  max_impact_s: IMPACT
"""


@pytest.mark.parametrize(("given", "seconds"), [("2s", 2.0), ("500ms", 0.5), ("1.5", 1.5)])
def test_max_impact_reads_as_a_duration(given: str, seconds: float, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("IMPACT", given), encoding="utf-8")
    loaded = load_scenario(path)
    assert loaded.spec.objectives.max_impact_s == pytest.approx(seconds)
    assert objective_spec(loaded.spec).max_impact_s == pytest.approx(seconds)


@pytest.mark.parametrize("given", ["soon", "-1s"])
def test_a_bad_max_impact_is_bad_input_naming_file_line_and_field(given: str, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("IMPACT", given), encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.exit_code == 2
    assert f"{path}:13 objectives.max_impact_s:" in str(info.value)


def test_incidents_whose_spans_overlap_are_one_and_their_time_is_counted_once() -> None:
    """A 5 s timeout sent in the first stretch is still in flight when the second (2 s later)
    is seen (recorded in a real LiteLLM stream-cut drill): one incident, from the first start to
    the last end."""
    samples = _samples((1.0, 1.5), (3.0, 3.5))
    one = np.zeros(len(samples), dtype=bool)
    one[int(np.searchsorted(samples["start"].to_numpy(), T0 + 1.26))] = True
    samples = set_between(samples, T0 + 1.25, T0 + 1.3, status=0, latency_ms=5000.0, where=one)
    m = measure_run(samples, PHASES, [_fault()], ObjectiveSpec(max_impact_s=10), SETTINGS)
    [incident] = m.faults[0].incidents
    assert incident.start_s == pytest.approx(1.51, abs=0.001) and incident.end_s == pytest.approx(6.26, abs=0.001)
    assert incident.failed == 1 and incident.slow == 19 and incident.worst_latency_ms == 5000.0
    assert incident.unhealthy_buckets == 4
    assert m.impact is not None and m.impact.incidents is not None
    assert m.impact.incidents.total_s == pytest.approx(incident.length_s)


def test_a_gateways_record_of_calls_names_a_cooldown_ending_as_the_cause() -> None:
    """LiteLLM's record (one line per deployment call): the hosted deployment fails, is left
    alone for 5 s (cooled down), is called again at +13.7 s, and users are hurt right after."""
    calls = [(T0 + 0.1 * k, False) for k in range(20)] + [(T0 + 13.7, False), (T0 + 13.8, True)]
    events = cooldown_events(calls, min_quiet_s=2.0, tier="hosted")
    assert [round(e["ts"] - T0, 2) for e in events] == [13.7]
    assert events[0]["event"] == "cooldown_end" and "after 11.8 s without one" in events[0]["detail"]
    assert cooldown_events([(T0, True), (T0 + 9.0, True)], 2.0) == []  # healthy calls: no cooldown
    samples = _samples((13.75, 14.0))
    m = measure_run(samples, PHASES, [_fault()], ObjectiveSpec(), SETTINGS, stack_events=events)
    [incident] = m.faults[0].incidents
    assert incident.cause is not None and incident.cause.startswith("cooldown ended")
    assert "+13.70 s" in incident.cause
