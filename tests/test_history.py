"""drill history: trends, quarter-over-quarter and regressions from past results.json files alone.

The runs are the real latency run (tests/data/latency-run, results recomputed as `drill report`
does) placed in four quarters, with one regression planted: a run whose RTO is 60 % worse.
"""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.errors import EXIT_BAD_INPUT
from harness.report.history import collect, write_history
from harness.results import RunResults, compute_results
from harness.results import write_results as write_typed

LATENCY_RUN = Path(__file__).parent / "data" / "latency-run"
DRILL = [sys.executable, "-m", "harness.cli"]
QUARTERS = ("2026-01-15T10:00:00Z", "2026-04-15T10:00:00Z", "2026-07-15T10:00:00Z", "2026-10-15T10:00:00Z")


@pytest.fixture(scope="module")
def real_results() -> dict[str, Any]:
    results = compute_results(LATENCY_RUN)[0].document()
    return json.loads(json.dumps(results, default=str))


def write_results(run_dir: Path, document: dict[str, Any]) -> Path:
    """Write a results.json document (a real run's, edited here) through the typed model."""
    return write_typed(run_dir, RunResults.from_document(document))


def place(reports: Path, results: dict[str, Any], started: str, run_id: str, rto_factor: float = 1.0) -> dict[str, Any]:
    r = copy.deepcopy(results)
    r["started_at"], r["run_id"] = started, run_id
    for fault in r["faults"]:
        if fault.get("rto_s") is not None:
            fault["rto_s"] = fault["rto_s"] * rto_factor
    write_results(reports / r["scenario"]["name"] / run_id, r)
    return r


def test_history_flags_the_planted_regression_and_draws_a_chart(tmp_path: Path, real_results: dict[str, Any]) -> None:
    reports = tmp_path / "reports"
    place(reports, real_results, QUARTERS[0], "q1")
    place(reports, real_results, QUARTERS[1], "q2", rto_factor=1.05)  # within 20 %: not a regression
    place(reports, real_results, QUARTERS[2], "q3", rto_factor=1.6)  # planted
    place(reports, real_results, QUARTERS[3], "q4", rto_factor=1.6)
    proc = subprocess.run(DRILL + ["history", str(reports), "--out", str(tmp_path / "trends.html")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "4 run(s), 1 regression(s)" in proc.stdout
    assert "REGRESSION latency q3: RTO" in proc.stdout
    page = (tmp_path / "trends.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 1 and "<path" in page
    assert "1 regression(s)" in page and "2026-Q3" in page and "+52 %" in page
    rows = list(csv.DictReader((tmp_path / "trends.csv").open(encoding="utf-8")))
    assert [r["run_id"] for r in rows] == ["q1", "q2", "q3", "q4"]
    assert [bool(r["regressions"]) for r in rows] == [False, False, True, False]
    assert float(rows[2]["rto_s"]) == pytest.approx(real_results["faults"][0]["rto_s"] * 1.6)


def test_a_figure_no_longer_measured_is_a_regression(tmp_path: Path, real_results: dict[str, Any]) -> None:
    reports = tmp_path / "reports"
    place(reports, real_results, QUARTERS[0], "before")
    broken = place(reports, real_results, QUARTERS[1], "after")
    broken["faults"][0]["rto_s"] = None
    write_results(reports / "latency" / "after", broken)
    history = collect(reports)
    assert [p.run_id for p, _, _ in history.regressions] == ["after"]
    assert "now not measured" in history.regressions[0][2]


def test_repeat_series_is_one_point_with_a_confidence_interval(tmp_path: Path, real_results: dict[str, Any]) -> None:
    reports = tmp_path / "reports"
    series = reports / "latency" / "repeat-x"
    for i, factor in enumerate((1.0, 1.02, 0.98)):
        r = copy.deepcopy(real_results)
        r["run_id"], r["started_at"] = f"r{i}", QUARTERS[0]
        r["faults"][0]["rto_s"] *= factor
        write_results(series / f"run-{i:02d}", r)
    (series / "repeat-summary.json").write_text("{}", encoding="utf-8")
    place(reports, real_results, QUARTERS[1], "later", rto_factor=1.1)  # above the CI, under 20 %
    history = collect(reports)
    series_point = [p for p in history.points if p.runs == 3][0]
    low, high = series_point.ci["rto_s"]
    assert low <= series_point.values["rto_s"] <= high
    assert [p.run_id for p, _, _ in history.regressions] == ["later"]
    assert "95 % CI" in history.regressions[0][2]


def test_csv_cells_never_become_formulas(tmp_path: Path, real_results: dict[str, Any]) -> None:
    reports = tmp_path / "reports"
    r = copy.deepcopy(real_results)
    r["scenario"]["name"] = "=HYPERLINK(\"http://x\")"
    place(reports, r, QUARTERS[0], "one")
    _, _, table = write_history(reports)
    assert "'=HYPERLINK" in table.read_text(encoding="utf-8")


def test_nothing_to_read_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x").mkdir()
    (tmp_path / "empty" / "x" / "results.json").write_text("{not json", encoding="utf-8")
    for target in (tmp_path / "nope", tmp_path / "empty"):
        proc = subprocess.run(DRILL + ["history", str(target)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == EXIT_BAD_INPUT and "bad input" in proc.stderr
        assert "Traceback" not in proc.stderr
