"""Distributions over repeated runs."""

from __future__ import annotations

import pytest

from harness.measure.repeats import distribution, summarize_repeats


def test_distribution_of_known_values() -> None:
    d = distribution([3.0, 1.0, 2.0, None, 5.0, 4.0])
    assert (d["n"], d["missing"]) == (5, 1)
    assert (d["median"], d["min"], d["max"]) == (3.0, 1.0, 5.0)
    assert d["min"] <= d["ci_low"] <= d["median"] <= d["ci_high"] <= d["max"]
    assert distribution([3.0, 1.0, 2.0, 5.0, 4.0]) == {k: v for k, v in d.items() if k != "missing"} | {"missing": 0}


def test_constant_values_have_a_zero_width_interval() -> None:
    d = distribution([2.5] * 7)
    assert d["ci_low"] == d["ci_high"] == 2.5


def test_nothing_measured() -> None:
    assert distribution([None, None])["median"] is None


def test_summary_keys_per_fault_and_phase() -> None:
    runs = [
        {"run_id": "a", "verdict": "passed", "faults": [{"name": "f", "rto_s": 1.0}],
         "phases": {"fault": {"p95_ms": 10.0}}},
        {"run_id": "b", "verdict": "failed", "faults": [{"name": "f", "rto_s": 3.0}],
         "phases": {"fault": {"p95_ms": 30.0}}},
    ]
    s = summarize_repeats(runs)
    assert s["verdicts"] == {"passed": 1, "failed": 1, "inconclusive": 0, "aborted": 0}
    assert s["figures"]["faults.f.rto_s"]["median"] == pytest.approx(2.0)
    assert s["figures"]["faults.f.rto_s"]["values"] == [1.0, 3.0]
    assert s["figures"]["phases.fault.p95_ms"]["max"] == 30.0


def test_streamed_runs_summarise_ttft_p95_and_completion() -> None:
    runs = [
        {"run_id": "a", "verdict": "passed", "faults": [],
         "phases": {"fault": {"p95_ms": 10.0, "streaming": {"ttft_p95_ms": 200.0, "completion_rate": 0.9}}}},
        {"run_id": "b", "verdict": "passed", "faults": [],
         "phases": {"fault": {"p95_ms": 12.0, "streaming": {"ttft_p95_ms": 400.0, "completion_rate": 0.7}}}},
    ]
    figures = summarize_repeats(runs)["figures"]
    assert figures["phases.fault.ttft_p95_ms"]["median"] == pytest.approx(300.0)
    assert figures["phases.fault.stream_completion"]["values"] == [0.9, 0.7]
    plain = summarize_repeats([{"run_id": "c", "verdict": "passed", "phases": {"fault": {"p95_ms": 1.0}}}])
    assert not [k for k in plain["figures"] if "ttft" in k or "stream" in k]
