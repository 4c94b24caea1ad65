"""The shipped provider drills (issue 13), run for real on the local runtime (free ports) with
shorter phases: the HTTP fault proxy (mitmdump) in front of the hosted provider, the streaming
model servers and gateway, streaming Locust users and the streaming probe.

The compose twins run in tests/test_docker_staging.py; the full-length runs of every scenario and
control on both runtimes are `bench/provider_drills.py` (figures in docs/performance.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.rundir import REPORT_FILE, STACK_EVENTS_FILE
from harness.testing.drills import failed_objectives, objective, run_short, verdict_text

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"


@pytest.mark.slow
def test_stream_cut_local_counts_the_cut_streams_as_the_gateway_logged_them(tmp_path: Path) -> None:
    result, _ = run_short("stream-cut.local.yaml", tmp_path)
    r = result.results.document()
    assert result.exit_code == 0, verdict_text(r)
    baseline, during = r["phases"]["baseline"]["streaming"], r["phases"]["fault"]["streaming"]
    assert baseline["streams"] > 0
    samples = pd.concat([pd.read_csv(p) for p in sorted((result.run_dir / "samples").glob("*.csv"))])
    # The baseline was healthy: a baseline stream (placed by its send time) that did not complete
    # was still open at the onset, and the fault cut it (2 of 224 in three whole runs: sent up to
    # 24 ms before the fault phase). The objective's window counts those too.
    onset, baseline_start, fault_start = (pd.Timestamp(iso).timestamp() for iso in (
        r["faults"][0]["onset_at"], r["phases"]["baseline"]["start"], r["phases"]["fault"]["start"]))
    sent_before = samples[(samples["stream"] == 1) & (samples["start"] >= baseline_start) & (samples["start"] < fault_start)]
    unfinished = sent_before[sent_before["stream_completed"] != 1]
    assert (unfinished["end"] > onset).all(), unfinished
    assert baseline["completed"] == baseline["streams"] - len(unfinished)
    # The proxy cut the hosted provider's streams after 3 events, each one token: the gateway
    # relayed the 3 tokens, then its error event. Those streams are counted, not hidden.
    assert during["cut"] > 0 and during["failed_mid_stream"] > 0
    assert during["cut_after_tokens_max"] == 3
    assert objective(r, "min_stream_completion")["passed"] is True
    assert objective(r, "failover_to")["passed"] is True

    # The same count in the stack's own record: one `stream_broken` per cut stream in the
    # gateway's routing log (no other cause can cut a stream in this drill).
    cut_rows = samples[(samples["stream"] == 1) & (samples["cut_after_tokens"] >= 0)]
    assert set(cut_rows["cut_after_tokens"]) == {3}
    logged = json.loads((result.run_dir / STACK_EVENTS_FILE).read_text())["events"]
    broken = [e for e in logged if e["event"] == "stream_broken"]
    assert len(broken) == len(cut_rows), (len(broken), len(cut_rows))
    assert {e["tokens_sent"] for e in broken} == {3}

    # The report charts TTFT and completion over time.
    page = (result.run_dir / REPORT_FILE).read_text(encoding="utf-8")
    assert "Time to first token" in page and "Streams completed, and cut streams" in page
    assert page.count("<svg") >= 2
    # Nothing left on the proxy: the fault was removed, then read back (verify) before the stack stopped.
    assert r["cleanup"]["ok"] is True
    journal = [json.loads(line) for line in (result.run_dir / "journal.jsonl").read_text().splitlines()]
    reverted = [e for e in journal if e["event"] == "fault.reverted"]
    assert [e["fault_id"] for e in reverted] == ["0-provider-stream-cut"], reverted


@pytest.mark.slow
def test_control_rate_limited_without_fallback_exits_1_naming_stream_completion(tmp_path: Path) -> None:
    result, _ = run_short("controls/provider-rate-limited.local.yaml", tmp_path)
    r = result.results.document()
    assert result.exit_code == 1, verdict_text(r)
    failed = failed_objectives(r)
    assert {"min_stream_completion", "max_error_rate"} <= failed, verdict_text(r)
    completion = r["measurement"]["streaming"]["completion"]
    assert completion["completion_rate"] < 0.99 and completion["failed_before_first_token"] > 0
    assert r["cleanup"]["ok"] is True
