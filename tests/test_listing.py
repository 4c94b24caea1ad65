"""`drill list [DIR]` (harness/listing.py): drills with their faults, objectives and last verdict."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from harness.listing import last_verdict, list_entries
from harness.testing import REPO, VENV_BIN

SCENARIO = """\
apiVersion: drill/v1
kind: Scenario
name: provider-slow
toxiproxy: {url: http://127.0.0.1:9}
load: {host: http://127.0.0.1:9}
faults: [{name: hosted-slow, type: latency, target: {proxy: p}, latency_ms: 100}]
objectives: {rto_s: 15, max_error_rate: 0.1}
"""


def write_run(reports: Path, name: str, stamp: str, verdict: str, file: str = "results.json") -> None:
    run = reports / name / f"{stamp}-abc123"
    run.mkdir(parents=True)
    (run / file).write_text(json.dumps({"verdict": verdict, "started_at": f"{stamp} UTC"}))


def test_lists_faults_objectives_and_the_newest_verdict(tmp_path: Path) -> None:
    drills = tmp_path / "drills"
    drills.mkdir()
    (drills / "slow.yaml").write_text(SCENARIO)
    (drills / "notes.yaml").write_text("just: data\n")  # not a drill file: skipped
    reports = tmp_path / "reports"
    write_run(reports, "provider-slow", "20260101T000000Z", "passed")
    write_run(reports, "provider-slow", "20260301T000000Z", "failed")
    entries, cut = list_entries(drills, reports)
    assert not cut and len(entries) == 1
    entry = entries[0]
    assert entry.faults == ["hosted-slow (latency)"]
    assert entry.objectives == ["rto_s ≤ 15s", "error rate ≤ 10 %"]
    assert entry.last_verdict == "failed" and entry.last_run == "20260301T000000Z UTC"
    assert last_verdict(reports, "never-ran") == (None, None)


def test_the_shipped_scenarios_and_campaign_list_and_a_bad_file_exits_2(tmp_path: Path) -> None:
    done = subprocess.run([str(VENV_BIN / "drill"), "list", str(REPO / "scenarios"), "--reports-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60, env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "endpoint-kill (endpoint_kill)" in done.stdout.replace("provider-down", "endpoint-kill")
    assert "quarterly" in done.stdout and "(campaign)" in done.stdout and "never run" in done.stdout

    (tmp_path / "bad.yaml").write_text(SCENARIO.replace("latency_ms: 100", "latency_ms: -1"))
    done = subprocess.run([str(VENV_BIN / "drill"), "list", str(tmp_path)], capture_output=True, text=True,
                          timeout=60, env={"COLUMNS": "200"})
    assert done.returncode == 2
    assert "invalid:" in done.stdout and "latency_ms" in done.stdout
