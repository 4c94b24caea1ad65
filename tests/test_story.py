"""The story a report tells first: plain-words summary, impact counts, runbook view and event
timeline. On the real latency run's files (tests/data/latency-run) and, for the runbook
arithmetic, on samples built here (pure logic)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.report.story import (
    DEFAULT_RUNBOOK,
    build_story,
    event_timeline,
    impact_counts,
    runbook_spec,
    runbook_view,
    stack_events,
    summary_sentences,
)
from harness.rundir.frames import read_samples

ONSET = 1_000_010.0  # epoch seconds; the run starts at 1_000_000


def synthetic(
    bad_from_s: float = 10.0, bad_until_s: float = 15.0, rate_hz: float = 20.0
) -> tuple[dict[str, Any], pd.DataFrame]:
    """A 30 s probe stream at 20 Hz, every request failing between the two offsets."""
    start = 1_000_000.0 + np.arange(0, 30, 1 / rate_hz)
    failing = (start >= 1_000_000 + bad_from_s) & (start < 1_000_000 + bad_until_s)
    samples = pd.DataFrame({"source": "probe", "start": start, "end": start + 0.02, "ok": (~failing).astype(int),
                            "latency_ms": 20.0, "status": np.where(failing, 503, 200)})
    results = {
        "phases": {"baseline": {"start": 1_000_000.0, "end": ONSET, "p95_ms": 20.0},
                   "fault": {"start": ONSET, "end": 1_000_030.0}},
        "faults": [{"name": "down", "type": "down", "targets": ["toxiproxy:p"], "onset_at": ONSET,
                    "rto_s": 5.0, "failover_s": None, "time_to_detect_s": 0.02}],
        "measurement": {"bucket_s": 0.25, "latency_bound_ms": 40.0},
        "objectives": [{"name": "max_error_rate", "target": 0.1, "measured": 0.16, "passed": False}],
    }
    return results, samples


def test_runbook_fires_when_the_window_error_rate_passes_the_trigger() -> None:
    results, samples = synthetic()
    view = runbook_view(results, samples, DEFAULT_RUNBOOK)
    # 10 s window at 20 Hz holds 200 answers: more than 10 % bad needs 21 failures, i.e. 1.05 s of
    # the outage; the walk steps 0.25 s, so it fires at +1.25 s.
    assert view.fired_at == pytest.approx(ONSET + 1.25)
    assert "error rate" in (view.fired_because or "")
    # Clears once fewer than 21 of the 100 failures remain in the window: 14 s after onset.
    assert view.cleared_at == pytest.approx(ONSET + 14.25)


def test_a_declared_runbook_window_is_used(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text("runbook: {error_rate: 0.5, window: 2s, p95: 100}\n")
    spec = runbook_spec(tmp_path)
    assert spec == {"error_rate": 0.5, "p95": 100, "window_s": 2.0}
    results, samples = synthetic()
    view = runbook_view(results, samples, spec)
    assert view.fired_at == pytest.approx(ONSET + 1.25)  # 21 of 40 answers in 2 s are bad at +1.05 s
    assert "p95 > 100 ms" in view.rule and "2.00 s" in view.rule


def test_no_impact_means_the_trigger_never_fires() -> None:
    results, samples = synthetic(bad_from_s=0, bad_until_s=0)
    view = runbook_view(results, samples, DEFAULT_RUNBOOK)
    assert view.fired_at is None and view.reason is None
    impact = impact_counts(results, samples)
    assert impact is not None and impact.failed == 0 and impact.affected_s == 0


def test_impact_counts_match_the_samples(latency_run: Callable[..., Path]) -> None:
    run_dir = latency_run()
    results = json.loads((run_dir / "results.json").read_text())
    samples = read_samples(run_dir)
    impact = impact_counts(results, samples)
    onset = pd.Timestamp(results["faults"][0]["onset_at"]).timestamp()
    after = samples[samples["end"] >= onset]
    bound = results["measurement"]["latency_bound_ms"]
    assert impact is not None
    assert impact.requests == len(after)
    assert impact.failed == int((after["ok"] != 1).sum())
    assert impact.slow == int(((after["ok"] == 1) & (after["latency_ms"] > bound)).sum())
    assert 0 < impact.slow < impact.requests


def test_summary_says_what_broke_when_and_against_which_target(latency_run: Callable[..., Path]) -> None:
    run_dir = latency_run()
    results = json.loads((run_dir / "results.json").read_text())
    story = build_story(results, run_dir, read_samples(run_dir))
    text = " ".join(story.summary)
    assert "The hosted-model link was slowed by 2.00 s at +10.0 s" in text
    # drill.rto/v2 on this run: failover at the arrival of the first gpu answer; the RTO is when
    # the last slow answer arrived; the fault-phase p95 (short form) judges the slow window.
    assert "moved traffic to the gpu tier 1.03 s after onset" in text
    assert "RTO objective 10.0 s: passed (measured 2.80 s)" in text
    assert "traffic moved back 0.39 s after the revert" in text
    assert "p95 latency objective 2x baseline (= 45.9 ms): FAILED" in text
    sources = {e["source"] for e in story.timeline}
    assert sources == {"journal", "measured", "runbook"}
    texts = [e["text"] for e in story.timeline]
    assert texts.index("fault provider-slow applied (onset; source toxiproxy-api)") < texts.index(
        "fault provider-slow reverted (scheduled)")


def test_stack_events_join_the_timeline(tmp_path: Path) -> None:
    results, _ = synthetic()
    results["faults"][0]["agreement"] = {"source": "gateway /admin/events", "failover_s": 1.5, "delta_s": 0.1}
    event = {"ts": ONSET + 0.7, "event": "breaker_open", "tier": "hosted"}
    (tmp_path / "stack-events.jsonl").write_text(json.dumps(event) + "\n")
    events = event_timeline(results, [], stack_events(tmp_path, results, []))
    stack = [(e.at - ONSET, e.text) for e in events if e.source == "stack"]
    assert stack[0] == (pytest.approx(0.7), "breaker_open hosted")
    assert stack[1][0] == pytest.approx(1.5) and "harness differs by 0.10 s" in stack[1][1]


def test_summary_of_a_fault_that_never_took_effect() -> None:
    results = {"faults": [{"name": "x", "type": "down", "onset_at": None, "impact": "not applied"}],
               "verdict": "aborted", "abort_reason": "stack unhealthy"}
    text = " ".join(summary_sentences(results))
    assert "never took effect" in text and "aborted: stack unhealthy" in text


def test_report_tells_the_story_first_and_tables_its_chart_data(latency_run: Callable[..., Path]) -> None:
    page = (latency_run() / "report.html").read_text(encoding="utf-8")
    order = [page.index(marker) for marker in ('id="story"', 'id="impact"', 'id="runbook"', 'id="events"',
                                               'id="objectives"', 'id="charts"', 'id="chart-data"')]
    assert order == sorted(order)
    data = page[page.index('id="chart-data"'):page.index("</details>", page.index('id="chart-data"'))]
    assert data.count("<tr>") > 40  # a 50 s run in 1 s slices, header included
    assert "tier gpu" in data and "tier hosted" in data


def test_runbook_trigger_is_drawn_on_the_timeline_chart(latency_run: Callable[..., Path]) -> None:
    page = (latency_run() / "report.html").read_text(encoding="utf-8")
    chart = page[page.index('aria-label="Error rate and p95 latency over time"'):]
    chart = chart[:chart.index("</svg>")]
    assert "runbook trigger fires" in chart and "runbook trigger clears" in chart


def test_provider_faults_and_streams_are_told_in_plain_words() -> None:
    """Pure: a 429 storm and a stream cut say what the provider did; the streams' ends are counted."""
    faults = [
        {"name": "storm", "type": "http_error", "targets": ["http-route:hosted-model"],
         "onset_at": "2026-01-14T10:00:10Z"},
        {"name": "cut", "type": "stream_cut", "targets": ["http-route:hosted-model"],
         "onset_at": "2026-01-14T10:00:20Z"},
    ]
    results = {
        "phases": {"baseline": {"start": "2026-01-14T10:00:00Z"}},
        "faults": faults,
        "measurement": {"streaming": {"completion": {
            "streams": 3523, "completed": 3498, "failed_mid_stream": 25, "failed_before_first_token": 0,
            "cut_after_tokens_p50": 3.0}}},
        "objectives": [{"name": "min_stream_completion", "target": 0.9, "measured": 0.993, "passed": True}],
        "verdict": "passed",
    }
    params = {"storm": {"status": 429, "share": 0.5, "retry_after_s": 5}, "cut": {"after_events": 3}}
    text = " ".join(summary_sentences(results, None, params))
    assert "The provider behind route hosted-model answered HTTP 429 to 50.0 % of calls with Retry-After 5.00 s" in text
    assert "The provider behind route hosted-model cut its streams after 3 events" in text
    assert ("Of 3,523 streamed answers in the fault and recovery phases, 3,498 completed; "
            "25 broke mid-stream (after a median of 3 tokens).") in text
    assert "Stream completion objective 90.0 %: passed" in text
