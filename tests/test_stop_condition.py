"""The stop condition (``stop_when``): the live watch over sample rows (pure), what a run records
about it (results.json ``stop``), the report's mark, and a real drill that trips it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, serve_in_thread
from test_engine import own_service, scenario
from test_report import example_results, example_timeline

from harness.engine import run_drill
from harness.load.stopwatch import StopWatch
from harness.report.charts import stop_mark_s, timeline_svg
from harness.report.formatting import parse_utc
from harness.report.html import render_report
from harness.results import stop_figures
from harness.rundir.events import FaultRevertIntent, LoadStopped, StopTripped
from harness.rundir.journal import applied_faults, read_journal


def rows(start: float, stop: float, step: float, ok: int) -> list[dict[str, Any]]:
    out, t = [], start
    while t < stop - 1e-9:
        out.append({"end": round(t, 6), "ok": ok})
        t += step
    return out


def test_holds_at_the_arrival_that_tips_the_window() -> None:
    watch = StopWatch(error_rate=0.5, for_s=1.0, min_requests=5)
    watch.add(rows(100.0, 102.0, 0.1, ok=1))  # 2 s healthy
    assert watch.check() is None
    watch.add(rows(102.0, 103.0, 0.1, ok=0))  # then every request fails
    trip = watch.check()
    assert trip is not None
    # Window (T-1, T]: 10 requests; at the 5th failure (t=102.4) 5 of 10 failed.
    assert trip.held_at == pytest.approx(102.4)
    assert (trip.bad_requests, trip.requests) == (5, 10) and trip.error_rate == pytest.approx(0.5)


def test_needs_a_full_window_and_enough_requests() -> None:
    early = StopWatch(error_rate=0.5, for_s=1.0, min_requests=5)
    early.add(rows(100.0, 100.9, 0.1, ok=0))  # failures from the first request on, but < 1 s seen
    assert early.check() is None
    sparse = StopWatch(error_rate=0.5, for_s=1.0, min_requests=5)
    sparse.add(rows(100.0, 105.0, 0.5, ok=0))  # two requests per window: too few to judge
    assert sparse.check() is None


def test_late_rows_from_the_other_file_still_count() -> None:
    watch = StopWatch(error_rate=0.5, for_s=1.0, min_requests=5)
    watch.add(rows(100.0, 101.5, 0.1, ok=1))
    assert watch.check() is None
    watch.add(rows(101.5, 102.5, 0.1, ok=0))  # the probe file's failures ...
    watch.add(rows(101.55, 102.45, 0.1, ok=0))  # ... and the users' file, flushed a moment later
    trip = watch.check()
    assert trip is not None and trip.held_at < 102.5


def test_a_good_request_leaving_the_window_can_be_the_moment() -> None:
    """With no arrival at all after the last failure, the condition holds when old good requests
    age out of the window, not at the next arrival."""
    watch = StopWatch(error_rate=0.9, for_s=1.0, min_requests=5)
    watch.add(rows(100.0, 100.95, 0.1, ok=1))  # 100.0 ... 100.9
    watch.add(rows(101.0, 101.45, 0.1, ok=0))  # 101.0 ... 101.4: 5 failures, then silence
    watch.add([{"end": 103.0, "ok": 1}])  # a much later arrival makes the instants in between known
    trip = watch.check()
    # Only when the last good request (100.9) leaves the window is the rate 5/5.
    assert trip is not None and trip.held_at == pytest.approx(101.9)
    assert (trip.bad_requests, trip.requests) == (5, 5)


def test_stop_figures_are_consistent() -> None:
    stop = stop_figures({"condition": "error rate ≥ 5.0 % for 1 s", "error_rate_threshold": 0.05, "for_s": 1.0,
                         "measured": 0.6, "bad_requests": 12, "requests": 20, "held_at": 1000.25,
                         "detected_at": 1000.4, "first_revert_at": 1000.5})
    assert stop.reaction_s == pytest.approx(0.25)
    assert parse_utc(stop.first_revert_at) - parse_utc(stop.held_at) == pytest.approx(0.25, abs=1e-5)


def test_report_marks_the_moment_and_says_the_reaction() -> None:
    results = example_results()
    origin = parse_utc(results["phases"]["baseline"]["start"])
    assert origin is not None
    results["verdict"] = "aborted"
    results["abort_reason"] = "stop condition met: error rate 60.0 % ≥ 5.0 % over the last 1 s"
    results["stop"] = stop_figures({"condition": "error rate ≥ 5.0 % for 1 s", "held_at": origin + 12.0,
                                    "detected_at": origin + 12.2, "first_revert_at": origin + 12.3}).model_dump()
    assert stop_mark_s(results) == pytest.approx(12.0, abs=1e-5)
    timeline = example_timeline(results)
    assert "stop condition held" in timeline_svg(results, timeline)
    html = render_report(results, timeline)
    assert "The stop condition (error rate ≥ 5.0 % for 1 s) held at" in html
    assert "first revert call followed 0.30 s later" in html


@pytest.mark.slow
def test_real_drill_trips_stop_when_and_records_its_reaction(tmp_path: Path, toxiproxy_url: str) -> None:
    said: list[str] = []
    with serve_in_thread(own_service()) as url:
        path = scenario(
            tmp_path, toxiproxy_url, url.removeprefix("http://"), free_port(),
            fault="{name: dead, type: down, target: {proxy: svc}, duration: 3s}",
            stop_when="stop_when: {error_rate: 0.05, for: 1s}",
        )
        result = run_drill(path, out=tmp_path / "run", say=said.append)
    assert result.verdict == "aborted" and result.exit_code == 3
    stop = json.loads((tmp_path / "run" / "results.json").read_text())["stop"]
    for key in ("condition", "measured", "requests", "bad_requests", "held_at", "detected_at",
                "first_revert_at", "reaction_s"):
        assert stop[key] is not None, key
    assert stop["condition"] == "error rate ≥ 5 % for 1 s"
    assert stop["measured"] >= 0.05 and stop["bad_requests"] / stop["requests"] == pytest.approx(stop["measured"])
    held, detected, first = (parse_utc(stop[k]) for k in ("held_at", "detected_at", "first_revert_at"))
    assert held is not None and detected is not None and first is not None
    assert held <= detected <= first  # observed, then decided, then reverted: in that order
    assert first - held == pytest.approx(stop["reaction_s"], abs=1e-5)
    # The abort line (condition and measured rate) comes before the rollback it causes.
    abort = next(i for i, line in enumerate(said) if "stop condition met: error rate" in line)
    reverted = next(i for i, line in enumerate(said) if "dead" in line and "reverted" in line)
    assert abort < reverted and "of" in said[abort] and "requests failed" in said[abort]
    events = [type(r.event) for r in read_journal(tmp_path / "run" / "journal.jsonl")]
    assert events.index(StopTripped) < events.index(FaultRevertIntent) < events.index(LoadStopped)
    assert applied_faults(tmp_path / "run" / "journal.jsonl") == []
