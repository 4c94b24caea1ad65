"""The story a report tells first: plain-words summary, impact, runbook view and event timeline.

The story renders what harness/measure/ computed (results ``impact`` and ``runbook``); it never
counts buckets itself. On the real latency run's files (tests/data/latency-run) and on results
built here (pure logic)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.engine.outputs import write_outputs
from harness.report.story import build_story, event_timeline, stack_events, summary_sentences
from harness.results import RunResults, compute_results, read_results
from harness.rundir import STACK_EVENTS_FILE
from harness.rundir.frames import read_samples
from harness.verdict import Verdict

DATA = Path(__file__).parent / "data"
EXAMPLE = DATA / "results-example.json"


def typed(document: dict[str, Any]) -> RunResults:
    return RunResults.from_document(document)


def example() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return document


def todays_story_affected_s(samples: pd.DataFrame, onset: float, bucket_s: float, threshold: float,
                            bound_ms: float) -> float:
    """What report/story.py computed before measure/impact.py: every bucket whose bad share
    exceeded the error objective, with no evidence rule (one bad request of five was enough)."""
    after = samples[samples["end"].to_numpy(dtype=float) >= onset]
    ok = after["ok"].to_numpy(dtype=int) == 1
    bad = ~ok | (ok & (after["latency_ms"].to_numpy(dtype=float) > bound_ms))
    bucket = np.floor((np.maximum(after["start"].to_numpy(dtype=float), onset) - onset) / bucket_s).astype(np.int64)
    counts = np.bincount(bucket)
    bad_counts = np.bincount(bucket, weights=bad.astype(float), minlength=len(counts))
    return float(((counts > 0) & (bad_counts / np.maximum(counts, 1) > threshold)).sum()) * bucket_s


def lone_failures_run(tmp_path: Path) -> Path:
    """The latency run with one failed probe request in each of ten buckets of its recovery
    phase: one bad request of five is over the 10 % error objective, but not evidence of an
    incident (at least 2 bad requests and a Wilson lower bound above 10 %)."""
    run_dir = tmp_path / "lone-failures"
    shutil.copytree(DATA / "latency-run", run_dir)
    path = run_dir / "samples" / "probe.csv"
    probe = pd.read_csv(path, keep_default_na=False)
    recovery_start = float(probe["start"].min()) + 32.0  # baseline 10 s + fault 20 s + 2 s
    for k in range(10):
        lo = recovery_start + 2 * k * 0.25
        row = probe.index[(probe["start"] >= lo) & (probe["start"] < lo + 0.25)][0]
        probe.loc[row, ["ok", "status", "error"]] = [0, 503, ""]
    probe.to_csv(path, index=False, float_format="%.6f")
    return run_dir


def test_the_report_follows_measure_where_todays_story_saw_other_unhealthy_buckets(tmp_path: Path) -> None:
    run_dir = lone_failures_run(tmp_path)
    results, timeline = compute_results(run_dir)
    write_outputs(run_dir, results, timeline)
    impact, fault = results.impact, results.faults[0]
    assert impact is not None and fault.onset_epoch is not None
    samples = read_samples(run_dir)
    bound = results.measurement.latency_bound_ms
    assert bound is not None
    before = todays_story_affected_s(samples, fault.onset_epoch, 0.25, 0.10, bound)
    # The old count takes the ten lone failures for ten unhealthy buckets; measure, like the RTO,
    # does not (the RTO is the recorded run's: the lone failures changed nothing there).
    assert before == pytest.approx(impact.affected_s + 10 * 0.25)
    assert fault.rto_s == pytest.approx(2.79501)
    assert impact.unhealthy_buckets == 7 and impact.affected_s == pytest.approx(1.75)
    assert impact.failed == 10
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    affected = re.search(r"time users were affected \(7 of \d+ 0\.25 s buckets unhealthy on evidence, the RTO&#39;s "
                         r"rule\)</th><td class=\"num\">([^<]+)</td>", page)
    assert affected is not None and affected.group(1) == "1.75 s"
    assert "users were affected for 1.75 s" in page and "users were affected for 4.25 s" not in page
    # ... and says in one line why that is not the RTO.
    note = re.search(r'<p class="why" id="impact-note">([^<]+)</p>', page)
    assert note is not None
    assert note.group(1).startswith("Users were affected for less than the RTO (1.75 s against 2.80 s)")


def test_impact_counts_match_the_samples(latency_run: Callable[..., Path]) -> None:
    run_dir = latency_run()
    results = read_results(run_dir)
    samples = read_samples(run_dir)
    assert results.impact is not None and results.faults[0].onset_epoch is not None
    after = samples[samples["end"] >= results.faults[0].onset_epoch]
    bound = results.measurement.latency_bound_ms
    assert results.impact.requests == len(after)
    assert results.impact.failed == int((after["ok"] != 1).sum())
    assert results.impact.slow == int(((after["ok"] == 1) & (after["latency_ms"] > bound)).sum())
    assert 0 < results.impact.slow < results.impact.requests


def test_summary_says_what_broke_when_and_against_which_target(latency_run: Callable[..., Path]) -> None:
    run_dir = latency_run()
    story = build_story(read_results(run_dir), run_dir)
    text = " ".join(story.summary)
    assert "The hosted-model link was slowed by 2.00 s at +10.0 s" in text
    # drill.rto/v2 on this run: failover at the arrival of the first gpu answer; the RTO is when
    # the last slow answer arrived; the fault-phase p95 (short form) judges the slow window.
    assert "moved traffic to the gpu tier 1.03 s after onset" in text
    assert "RTO objective 10.0 s: passed (measured 2.80 s)" in text
    assert "traffic moved back 0.39 s after the revert" in text
    assert "p95 latency objective 2x baseline (= 45.9 ms): FAILED" in text
    assert "users were affected for 1.75 s (see Impact for why that is not the RTO)." in text
    assert story.impact_note is not None and story.impact_note.startswith("Users were affected for less than the RTO")
    sources = {e["source"] for e in story.timeline}
    assert sources == {"journal", "measured", "runbook"}
    texts = [e["text"] for e in story.timeline]
    assert texts.index("fault provider-slow applied (onset; source toxiproxy-api)") < texts.index(
        "fault provider-slow reverted (scheduled)")


def test_the_runbook_view_renders_results_runbook(latency_run: Callable[..., Path]) -> None:
    run_dir = latency_run()
    results = read_results(run_dir)
    assert results.runbook is not None and results.runbook.fired_by == "p95"
    rows = dict(build_story(results, run_dir).runbook)
    assert rows["trigger"] == ("error rate > 10.0 % or p95 > 2x baseline (46 ms), over the last 10.0 s, "
                               "on the constant-rate probe stream")
    assert rows["would have fired"].startswith("+11.5 s (2026-11-30 07:40:12.878 UTC, 1.50 s after onset)") and "p95 1,016 ms over 180 answers" in rows["would have fired"]


def test_a_declared_runbook_comes_from_the_typed_scenario(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(DATA / "latency-run", run_dir)
    scenario = run_dir / "scenario.yaml"
    scenario.write_text(scenario.read_text(encoding="utf-8") + "runbook: {error_rate: 0.5, window: 2s, p95: 100}\n",
                        encoding="utf-8")
    results, _ = compute_results(run_dir)
    assert results.runbook is not None
    assert (results.runbook.error_rate, results.runbook.window_s, results.runbook.p95_limit_ms) == (0.5, 2.0, 100.0)
    rule = dict(build_story(results, run_dir).runbook)["trigger"]
    assert "error rate > 50.0 % or p95 > 100 ms, over the last 2.00 s" in rule


def test_results_written_before_impact_say_so_and_still_render(latency_run: Callable[..., Path]) -> None:
    document = json.loads((latency_run() / "results.json").read_text(encoding="utf-8"))
    del document["impact"], document["runbook"]
    story = build_story(typed(document), None)
    assert story.impact is None and "drill report" in (story.impact_reason or "")
    assert "drill report" in dict(story.runbook)["would have fired"]
    assert not any("users were affected" in s for s in story.summary)


def test_stack_events_come_from_the_run_directorys_reader(tmp_path: Path) -> None:
    results = example()
    onset = typed(results).faults[0].onset_epoch
    assert onset is not None
    results["faults"][0]["agreement"] = {
        "source": "gateway /admin/events", "resolution_s": 0.25, "failover_s": 1.5, "failover_delta_s": 0.1,
        "failback_s": None, "failback_delta_s": None, "agrees": True}
    events = {"events": [{"ts": onset + 0.7, "event": "breaker_open", "tier": "hosted"}]}
    (tmp_path / STACK_EVENTS_FILE).write_text(json.dumps(events), encoding="utf-8")
    (tmp_path / "stack-events.jsonl").write_text(json.dumps({"ts": onset + 0.9, "event": "ignored"}) + "\n")
    stack = [(e.at - onset, e.text) for e in event_timeline(typed(results), [], stack_events(
        tmp_path, typed(results), [])) if e.source == "stack"]
    assert stack[0] == (pytest.approx(0.7), "breaker_open hosted")
    assert stack[1][0] == pytest.approx(1.5) and "harness differs by 0.10 s" in stack[1][1]
    assert len(stack) == 2  # one reader, one file name: harness/rundir's


def test_summary_of_a_fault_that_never_took_effect() -> None:
    results = example()
    results["faults"] = [{
        "name": "x", "type": "down", "targets": [], "onset_at": None, "onset_source": None,
        "onset_uncertainty_s": None, "reverted_at": None, "time_to_detect_s": None, "rto_s": None,
        "failover_s": None, "failback_s": None, "degraded_s": None, "impact": "not applied"}]
    results.update(verdict="aborted", abort_reason="stack unhealthy")
    text = " ".join(summary_sentences(typed(results)))
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
    results = example()
    base = {key: None for key in ("onset_source", "onset_uncertainty_s", "reverted_at", "time_to_detect_s",
                                  "rto_s", "failover_s", "failback_s", "degraded_s")}
    results["faults"] = [
        base | {"name": "storm", "type": "http_error", "targets": ["http-route:hosted-model"],
                "onset_at": "2026-01-14T10:00:10Z", "impact": "none"},
        base | {"name": "cut", "type": "stream_cut", "targets": ["http-route:hosted-model"],
                "onset_at": "2026-01-14T10:00:20Z", "impact": "none"},
    ]
    completion = {"streams": 3523, "completed": 3498, "completion_rate": 0.993, "cut": 25, "failed_mid_stream": 25,
                  "failed_before_first_token": 0, "cut_after_tokens_p50": 3.0, "cut_after_tokens_max": 5,
                  "ttft_stream": "probe", "ttft_samples": 3500, "ttft_p50_ms": 10.0, "ttft_p95_ms": 20.0,
                  "failed_over": 0}
    results["measurement"]["streaming"] = {"method": "m", "ttft_clock": "send", "completion_window_start": "a",
                                           "completion_window_end": "b", "completion": completion}
    results["objectives"] = [{"name": "min_stream_completion", "target": 0.9, "measured": 0.993, "passed": True}]
    params = {"storm": {"status": 429, "share": 0.5, "retry_after_s": 5}, "cut": {"after_events": 3}}
    text = " ".join(summary_sentences(typed(results), params))
    assert "The provider behind route hosted-model answered HTTP 429 to 50.0 % of calls with Retry-After 5.00 s" in text
    assert "The provider behind route hosted-model cut its streams after 3 events" in text
    assert ("Of 3,523 streamed answers in the fault and recovery phases, 3,498 completed; "
            "25 broke mid-stream (after a median of 3 tokens).") in text
    assert "Stream completion objective 90.0 %: passed" in text


def test_the_tabletop_sheet_carries_the_same_impact_and_why(latency_run: Callable[..., Path]) -> None:
    from harness.evidence.tabletop import PackedRun, render_tabletop

    run_dir = latency_run()
    sheet = render_tabletop([PackedRun(run_dir, "run/", read_results(run_dir))], title="latency", approver=None,
                            participants=[], created_at="2026-12-06T14:00:00Z", key_id=None)
    assert "<td>1.75 s</td>" in sheet
    assert "<th>why that is not the RTO</th><td>Users were affected for less than the RTO (1.75 s" in sheet


def test_the_tabletop_sheet_shows_an_undecided_objective_as_undecided_not_missed(
    latency_run: Callable[..., Path],
) -> None:
    """When the instrument's own trouble could flip an objective, the sheet neither calls it met
    nor missed, says why, and its finding asks for a rerun."""
    from harness.evidence.tabletop import PackedRun, render_tabletop

    run_dir = latency_run()
    results = read_results(run_dir)
    objective = results.objectives[0]
    objective.passed = False
    objective.undecided = ["a host stall of 0.70 s overlaps the recovery window"]
    results.verdict = Verdict.INCONCLUSIVE
    sheet = render_tabletop([PackedRun(run_dir, "run/", results)], title="latency", approver=None,
                            participants=[], created_at="2026-12-06T14:00:00Z", key_id=None)
    assert "UNDECIDED" in sheet
    assert f"Objective {objective.name} undecided: the measurement could not carry it" in sheet
    assert f"Objective {objective.name} missed" not in sheet
    assert "a host stall of 0.70 s overlaps the recovery window" in sheet
    assert "Verdict inconclusive" in sheet
