"""INCONCLUSIVE end to end without a stack: the decision rule, results.json from a run directory
whose probe went late, the verdict line, JUnit, the report's health section and the pytest item
(skipped outside CI, failed under CI=true)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import EXIT_INCONCLUSIVE
from harness.report.html import render_report
from harness.report.junit import build_junit
from harness.report.reasons import reasons, verdict_line
from harness.results import compute_results
from harness.rundir.frames import read_samples, records_schedule
from harness.rundir.health import append_trouble
from harness.verdict import CLEANUP_NOT_VERIFIED, Verdict, decide_verdict

DATA = Path(__file__).parent / "data"
CAUSE = "probe schedule slipped 0.70 s (12 probes sent late) at +12.3 s, inside the recovery window that decides rto_s"


@pytest.mark.parametrize(
    ("met", "abort", "cleanup", "undecided", "verdict"),
    [
        (True, None, True, [CAUSE], Verdict.INCONCLUSIVE),
        (False, None, True, [CAUSE], Verdict.FAILED),       # a decided miss: exit 1 stays "objectives failed"
        (True, "stop condition met", True, [CAUSE], Verdict.ABORTED),
        (True, None, False, [CAUSE], Verdict.ABORTED),       # a fault may still be applied: never inconclusive
        (True, None, True, [], Verdict.PASSED),
    ],
)
def test_the_decision_rule(met: bool, abort: str | None, cleanup: bool, undecided: list[str], verdict: Verdict) -> None:
    decision = decide_verdict(objectives_met=met, abort_reason=abort, cleanup_verified=cleanup, undecided=undecided)
    assert decision.verdict == verdict
    assert decision.undecided == tuple(undecided)
    if not cleanup and not abort:
        assert decision.abort_reason == CLEANUP_NOT_VERIFIED
    assert Verdict.INCONCLUSIVE.exit_code == EXIT_INCONCLUSIVE == 6


def _with_schedule(dest: Path) -> Path:
    """latency-run (recorded before ``intended`` existed) given the column, every probe on schedule."""
    run_dir = dest / "latency-run"
    shutil.copytree(DATA / "latency-run", run_dir)
    path = run_dir / "samples" / "probe.csv"
    probes = pd.read_csv(path, keep_default_na=False, dtype=str)
    probes["intended"] = probes["start"]
    probes.to_csv(path, index=False)
    return run_dir


def test_recorded_runs_without_intended_have_no_health(tmp_path: Path) -> None:
    run_dir = tmp_path / "latency-run"
    shutil.copytree(DATA / "latency-run", run_dir)
    assert not records_schedule(run_dir)
    assert read_samples(run_dir)["intended"].isna().all()
    results, _ = compute_results(run_dir)
    assert "health" not in results.document()["measurement"]  # type: ignore[operator]


def test_a_run_on_schedule_has_an_empty_health_record_and_keeps_its_figures(tmp_path: Path) -> None:
    before, _ = compute_results(_copy(tmp_path / "a"))
    run_dir = _with_schedule(tmp_path / "b")
    assert records_schedule(run_dir)
    after, _ = compute_results(run_dir)
    doc = after.document()
    health = doc["measurement"].pop("health")  # type: ignore[union-attr]
    assert health["problems"] == [] and health["undecided"] == []  # type: ignore[index]
    assert health["probe_schedule"]["late"] == 0  # type: ignore[index]
    expected = before.document()
    for key in ("phases", "faults", "objectives", "verdict"):
        assert doc[key] == expected[key], key
    html = render_report(after.document(), None)
    assert "Measurement health" in html and "The instrument saw the whole run" in html


def _copy(dest: Path) -> Path:
    shutil.copytree(DATA / "latency-run", dest)
    return dest


def _first_onset(run_dir: Path) -> float:
    for line in (run_dir / "journal.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == "fault.applied":
            return float(record["onset_at"])
    raise AssertionError("no onset")


def test_a_recorded_host_stall_inside_the_recovery_window_is_inconclusive_everywhere(tmp_path: Path) -> None:
    run_dir = _with_schedule(tmp_path / "c")
    before, _ = compute_results(run_dir)
    fault = before.faults[0]
    assert fault.rto_s is not None
    onset = _first_onset(run_dir)
    # A stall as long as the RTO's distance to a target just above it: that target could flip.
    append_trouble(run_dir, "host_stall", onset + fault.rto_s - 0.3, onset + fault.rto_s + 0.4, 0.7,
                   "host stalled 0.70 s")
    scenario = run_dir / "scenario.yaml"
    text = scenario.read_text()
    target = round(fault.rto_s + 0.2, 1)
    import re

    scenario.write_text(re.sub(r"rto_s: [0-9.]+", f"rto_s: {target}", text, count=1))
    results, _ = compute_results(run_dir)
    doc = results.document()
    rto = next(o for o in doc["objectives"] if o["name"] == "rto_s")  # type: ignore[union-attr, index]
    assert rto["undecided"] and "host stalled 0.70 s at +" in rto["undecided"][0]  # type: ignore[index]
    assert "decides rto_s" in rto["undecided"][0]  # type: ignore[index]
    if results.verdict == Verdict.INCONCLUSIVE:
        line = verdict_line(doc)
        assert line.startswith("INCONCLUSIVE: host stalled 0.70 s at +")
        suite = build_junit(doc).getroot().find("testsuite")
        assert suite is not None
        names = {c.get("name"): c for c in suite.iter("testcase")}
        assert names["inconclusive"].find("error") is not None
        assert names["rto_s"].find("skipped") is not None
    else:  # another objective of this recorded run was missed, decided: still FAILED
        assert results.verdict == Verdict.FAILED
        assert any(r.startswith("undecided: host stalled") for r in reasons(doc))
    html = render_report(doc, None)
    assert "host stalled 0.70 s" in html and "Undecided objectives" in html


def test_verdict_line_and_junit_of_an_inconclusive_document() -> None:
    doc = {
        "verdict": "inconclusive", "scenario": {"name": "latency"},
        "objectives": [
            {"name": "rto_s", "target": 3, "measured": 3.23, "passed": False, "undecided": [CAUSE]},
            {"name": "max_error_rate", "target": 0.1, "measured": 0.05, "passed": True},
        ],
        "cleanup": {"ok": True},
    }
    assert verdict_line(doc) == f"INCONCLUSIVE: {CAUSE}"
    root = build_junit(doc).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "1", "1")
    error = [c for c in suite.iter("testcase") if c.get("name") == "inconclusive"][0].find("error")
    assert error is not None and error.get("type") == "Inconclusive" and CAUSE in (error.get("message") or "")


CONFTEST = '''
from pathlib import Path
import harness.engine
from harness.engine.result import RunResult
from harness.verdict import Verdict

CAUSE = {cause!r}

def fake_run_drill(path, **kwargs):
    results = {{"verdict": "inconclusive", "objectives": [
        {{"name": "rto_s", "target": 3, "measured": 3.23, "passed": False, "undecided": [CAUSE]}}],
        "faults": [], "cleanup": {{"ok": True}}}}
    return RunResult(Path("run"), Verdict.INCONCLUSIVE, 6, results)

harness.engine.run_drill = fake_run_drill
'''

ROOT = Path(__file__).parent.parent
SCENARIO = (ROOT / "scenarios" / "latency.yaml").read_text(encoding="utf-8").replace(
    "../targets/local-stack.yaml", str(ROOT / "targets" / "local-stack.yaml"))


@pytest.mark.parametrize(("ci", "outcome"), [("", "skipped"), ("true", "failed")])
def test_pytest_item_of_an_inconclusive_drill_is_never_a_plain_pass(tmp_path: Path, ci: str, outcome: str) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST.format(cause=CAUSE))
    (tmp_path / "stalled.yaml").write_text(SCENARIO)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci else {})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "stalled.yaml", "-p", "no:cacheprovider", "-rs", "-q",
         f"--junitxml={tmp_path / 'junit.xml'}", "--rootdir", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env,
    )
    out = done.stdout + done.stderr
    assert f"1 {outcome}" in out, out
    assert "INCONCLUSIVE" in out and "decides rto_s" in out, out
    assert "drill: 1 inconclusive" in out, out
    assert (done.returncode == 0) == (outcome == "skipped")
    case = ET.parse(tmp_path / "junit.xml").getroot().find(".//testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props.get("verdict") == "inconclusive" and props.get("exit_code") == "6"


def test_series_count_inconclusive_apart() -> None:
    from harness.campaign import CampaignResult, CampaignRun
    from harness.measure.repeats import summarize_repeats
    from harness.report.history import Point, passed_text, series_verdict

    assert series_verdict({"passed", "inconclusive"}) == "inconclusive"
    assert series_verdict({"failed", "inconclusive"}) == "failed"
    assert series_verdict({"passed"}) == "passed"
    points = [Point("s", "", str(i), 0.0, v, "p", 1, {}, {}, None) for i, v in
              enumerate(["passed", "inconclusive", "passed", "failed"])]
    assert passed_text(points) == "2 of 4 (1 inconclusive)"
    summary = summarize_repeats([{"verdict": "passed"}, {"verdict": "inconclusive"}])
    assert summary["verdicts"] == {"passed": 1, "failed": 0, "inconclusive": 1, "aborted": 0}

    def campaign(*codes: int) -> CampaignResult:
        runs = [CampaignRun(f"s{i}.yaml", code, Verdict.from_exit_code(code).value, None) for i, code in enumerate(codes)]
        return CampaignResult(name="q", campaign_dir=Path("."), runs=runs, started_at="", ended_at="")

    assert campaign(0, 6).exit_code == 6 and campaign(0, 6).verdict == Verdict.INCONCLUSIVE
    assert campaign(1, 6).exit_code == 1  # a decided failure outranks an inconclusive run
    assert campaign(3, 6).exit_code == 3
    assert campaign(0, 6, 6).to_dict()["verdicts"] == {"passed": 1, "failed": 0, "inconclusive": 2, "aborted": 0}


def test_a_series_exits_with_its_worst_run() -> None:
    from harness.verdict import worst_exit_code

    assert worst_exit_code([0, 6, 0]) == 6
    assert worst_exit_code([6, 1]) == 1  # --repeat: a decided failure outranks an inconclusive run
    assert worst_exit_code([6, 3, 1]) == 3
    assert worst_exit_code([]) == 0
