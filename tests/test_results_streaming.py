"""results.json for a run whose requests streamed: phases.*.streaming and measurement.streaming,
computed from the run directory alone, and `drill report` failing (exit 1) on a missed streaming
objective, naming it. Built from the recorded latency run (tests/streaming_run.py): no stack."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from streaming_run import CUT_AFTER_TOKENS, SLOW_MS, recorded_probe, streaming_run

from harness.cli import main
from harness.results import RunResults, compute_results
from harness.rundir.journal import utc_iso

FAULT_START = 1796024411.365958  # journal.jsonl phase.start fault
RECOVERY_START = 1796024431.365958
RECOVERY_END = 1796024446.365958


def expected_fault_phase() -> dict[str, object]:
    """The fault phase's stream figures, computed here from the recorded rows by their own rule."""
    probe = recorded_probe()
    rows = probe[(probe["start"] >= FAULT_START) & (probe["start"] < RECOVERY_START)]
    answered = rows["ok"] == 1
    cut = answered & (rows["latency_ms"] > SLOW_MS)
    ttft = (rows.loc[answered, "latency_ms"] / 2).round(3)
    return {
        "streams": len(rows),
        "completed": int((answered & ~cut).sum()),
        "cut": int(cut.sum()),
        "failed_mid_stream": int(cut.sum()),
        "failed_before_first_token": int((~answered).sum()),
        "ttft_samples": int(answered.sum()),
        "ttft_p95_ms": round(float(ttft.quantile(0.95)), 3),
    }


def test_streaming_figures_in_results(tmp_path: Path) -> None:
    results, timeline = compute_results(streaming_run(tmp_path))
    document = json.loads(json.dumps(results.document()))
    fault = document["phases"]["fault"]["streaming"]
    expected = expected_fault_phase()

    assert expected["cut"] and expected["completed"]  # the example has both
    assert {key: fault[key] for key in expected} == expected
    assert fault["cut_after_tokens_p50"] == CUT_AFTER_TOKENS and fault["cut_after_tokens_max"] == CUT_AFTER_TOKENS
    assert fault["ttft_stream"] == "probe"
    assert fault["completed"] + fault["failed_mid_stream"] + fault["failed_before_first_token"] == fault["streams"]
    streaming = document["measurement"]["streaming"]
    assert streaming["completion_window_start"] == utc_iso(FAULT_START)
    assert streaming["completion_window_end"] == utc_iso(RECOVERY_END)
    assert streaming["ttft_clock"].startswith("send clock")
    assert {"ttft_p50_ms", "ttft_p95_ms", "stream_completion", "streams_cut"} <= set(timeline.columns)
    assert RunResults.from_document({k: v for k, v in document.items()}).phases["fault"].streaming is not None


def test_min_stream_completion_window_share(tmp_path: Path) -> None:
    results, _ = compute_results(streaming_run(tmp_path))
    window = results.measurement.streaming
    probe = recorded_probe()
    rows = probe[(probe["start"] >= FAULT_START) & (probe["start"] < RECOVERY_END)]
    completed = int(((rows["ok"] == 1) & (rows["latency_ms"] <= SLOW_MS)).sum())

    assert window is not None
    assert (window.completion.streams, window.completion.completed) == (len(rows), completed)
    [objective] = [o for o in results.objectives if o.name == "min_stream_completion"]
    assert objective.measured == round(completed / len(rows), 6)
    assert objective.passed is (completed / len(rows) >= 0.95)


def test_drill_report_fails_naming_the_missed_streaming_objective(tmp_path: Path) -> None:
    run_dir = streaming_run(tmp_path, "  min_stream_completion: 0.99\n")

    outcome = CliRunner().invoke(main, ["report", str(run_dir)])

    assert outcome.exit_code == 1, outcome.output
    assert "FAILED: min_stream_completion" in " ".join(outcome.output.split())
    assert "streams fault:" in outcome.output  # the per-phase stream line
    written = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert written["verdict"] == "failed"
    assert [o["name"] for o in written["objectives"] if not o["passed"]] == ["min_stream_completion"]


def test_drill_report_passes_a_met_streaming_objective(tmp_path: Path) -> None:
    run_dir = streaming_run(tmp_path, "  min_stream_completion: 0.5\n  ttft_p95_ms: 5000\n")

    outcome = CliRunner().invoke(main, ["report", str(run_dir)])

    assert outcome.exit_code == 0, outcome.output
    written = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert all(o["passed"] for o in written["objectives"])


def test_a_run_without_streams_has_no_streaming_keys(tmp_path: Path) -> None:
    """The recorded runs have no streaming columns: no key appears (tests/test_results_recompute.py
    compares them byte for byte)."""
    import shutil

    shutil.copytree(Path(__file__).parent / "data" / "latency-run", tmp_path / "plain")
    results, timeline = compute_results(tmp_path / "plain")
    document = results.document()

    assert all("streaming" not in phase for phase in document["phases"].values())  # type: ignore[union-attr]
    assert "streaming" not in document["measurement"]  # type: ignore[operator]
    assert not [c for c in timeline.columns if str(c).startswith(("ttft", "stream"))]
    assert isinstance(timeline, pd.DataFrame)
