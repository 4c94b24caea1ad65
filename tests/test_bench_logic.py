"""The pure logic of the performance benches: the synthetic run of bench/analysis.py carries the
incident it claims, and bench/fault_latency.py reads a wire onset from request timings correctly.
No network, no stack: the benches themselves are run by hand (docs/performance.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import analysis  # noqa: E402
import fault_latency  # noqa: E402

from harness.results import compute_results  # noqa: E402


def test_synthetic_run_has_the_known_outage_as_its_rto(tmp_path: Path) -> None:
    run_dir = analysis.make_run(tmp_path / "run", 20_000)
    results = compute_results(run_dir)[0].document()
    fault = results["faults"][0]
    assert results["measurement"]["samples"] == 20_000
    assert fault["rto_s"] == pytest.approx(analysis.OUTAGE_S, abs=fault["resolution_s"])


def _load(call_s: float, onset_s: float, delay_s: float) -> np.ndarray:
    """Requests every 1 ms, 1 ms long; those whose answer passes the proxy after onset_s are
    delayed by delay_s."""
    starts = call_s - 0.05 + np.arange(400) / 1000
    passed = starts + 0.001
    ends = passed + np.where(passed >= onset_s, delay_s, 0.0)
    return np.column_stack([starts, ends])


def test_wire_onset_is_bracketed_by_the_last_clean_and_the_first_delayed_request() -> None:
    call_s, onset_s, delay_s = 1000.0, 1000.0042, 0.1
    applied = [fault_latency.Application(call_s=call_s, stated_at_s=call_s + 0.001, stated_u_s=0.001)]
    figures = fault_latency.analyse_toxic(_load(call_s, onset_s, delay_s), applied, latency_ms=100)
    assert figures.missed == 0
    # First delayed answer passed at 1000.005 (starts every ms, 1 ms to the proxy).
    assert figures.onset_ms[0] == pytest.approx(5.0, abs=1e-6)
    # The last clean request was sent at 1000.003 (its answer passed at 1000.004 < onset).
    assert figures.clean_after_ms[0] == pytest.approx(3.0, abs=1e-6)
    assert figures.stated_end_ms[0] == pytest.approx(2.0, abs=1e-6)


def test_an_application_without_a_delayed_answer_is_counted_as_missed() -> None:
    call_s = 1000.0
    applied = [fault_latency.Application(call_s=call_s, stated_at_s=call_s, stated_u_s=0.0)]
    figures = fault_latency.analyse_toxic(_load(call_s, call_s + 10, 0.1), applied, latency_ms=100)
    assert figures.missed == 1
    assert len(figures.onset_ms) == 0
