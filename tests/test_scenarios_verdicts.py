"""The shipped latency drills, run for real on the local runtime (free ports): the figures the
measurement issue promised — detection on the visible clock, RTO not below it, the same RTO from
the probe alone and from every request, failover in agreement with the gateway's own routing
log, and a latency objective that follows what users saw."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.testing.drills import SCENARIOS, fault, need_local, objective, rebased, run_local, shortened, verdict_text


@pytest.mark.slow
def test_default_drill_figures_are_consistent_and_agree_with_the_gateway(tmp_path: Path) -> None:
    """Shortened: the incident (about 2.6 s, set by the gateway's breaker) fits the short fault
    phase; the shipped length runs in bench/ and as the README's first command."""
    result, _ = run_local("latency.yaml", tmp_path, short=True)
    r = result.results.document()
    assert result.exit_code == 0, verdict_text(r)
    slow = fault(r, "provider-slow")
    resolution_s = slow["resolution_s"]
    bound_s = r["measurement"]["latency_bound_ms"] / 1000
    baseline_p95_s = r["phases"]["baseline"]["p95_ms"] / 1000

    # Nothing is visible before an answer is overdue: at least the bound after the onset, less
    # at most one baseline latency for a request already in flight at the onset.
    assert slow["time_to_detect_s"] >= bound_s - baseline_p95_s
    assert slow["rto_s"] >= slow["time_to_detect_s"]
    assert slow["rto_s"] == max(slow["service_restored_s"], slow["last_impacted_answer_s"])
    by_stream = slow["rto_by_stream"]
    assert abs(by_stream["probe"] - by_stream["all"]) <= resolution_s, by_stream
    # The fault phase's p95 (constant-rate probe) shows the slow window the users saw.
    assert r["phases"]["fault"]["stream"] == "probe"
    assert r["phases"]["fault"]["p95_ms"] > r["measurement"]["latency_bound_ms"]
    agreement = slow["agreement"]
    assert agreement["failover_delta_s"] is not None and abs(agreement["failover_delta_s"]) <= resolution_s, agreement
    assert objective(r, "p95_ms")["passed"] is True


@pytest.mark.slow
def test_control_with_a_slow_fallback_fails_naming_the_latency_objective(tmp_path: Path) -> None:
    """The shipped control with its GPU pool 400 ms late instead of 150 ms, answers good up to
    1 s (so the slow fallback is no incident and rto_s holds), and the p95 bound 300 ms instead of
    2x baseline. The suite runs drills side by side, and a busy neighbour raised the 4 s
    baseline's p95 so that 2x baseline let the fallback pass: to 324 ms (2x: 649 ms) against a
    400 ms fallback in one whole run (30 ms alone); a 150 ms fallback so in an earlier one. The
    GPU pool cannot go later: at 800 ms its health checks (500 ms) take it out and traffic moves
    to the CPU tier. An injected 400 ms is a floor no host takes back, so 300 ms fails whatever
    the host; the relative bound is tests/test_measure_objectives.py's."""
    from harness.engine import run_drill

    need_local()
    scenario, _ = rebased(SCENARIOS / "controls/slow-fallback.yaml", tmp_path)
    text = scenario.read_text(encoding="utf-8")
    assert text.count("latency_ms: 150") == 2
    text = text.replace("latency_ms: 150", "latency_ms: 400") + "measurement: {good_latency_floor_ms: 1000}\n"
    assert "p95_ms: {max: 2x baseline, during: after_failover}" in text
    text = text.replace("p95_ms: {max: 2x baseline,", "p95_ms: {max: 300,")
    scenario.write_text(shortened(text), encoding="utf-8")
    result = run_drill(scenario, out=tmp_path / "run")
    r = result.results.document()
    assert result.exit_code == 1, verdict_text(r)
    failed = [o["name"] for o in r["objectives"] if not o["passed"]]
    assert failed == ["p95_ms"], verdict_text(r)
    assert objective(r, "p95_ms")["measured"] > 400  # the GPU pool answers 400 ms late
