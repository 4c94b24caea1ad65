"""The recorded run directories in tests/data recompute to the very figures they gave before the
typed results model and the split of measure_fault (tests/data/recomputed/*.results.json were
written by the code before that change). `drill report` on each rewrites the same results.json.

Keys added since (:data:`NEW_KEYS`: each fault's incidents and their sum under ``impact``, issue 26)
are left out of the comparison; every other figure stays byte for byte what it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.results import compute_results

DATA = Path(__file__).parent / "data"
EXPECTED = DATA / "recomputed"
NEW_KEYS = {"faults": "incidents", "impact": "incidents"}
"""Keys added after the recorded results were written: (section, key) left out of the comparison."""


def without_new_keys(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (a results.json object) without :data:`NEW_KEYS`."""
    out = json.loads(json.dumps(document))
    for fault in out.get("faults") or []:
        fault.pop(NEW_KEYS["faults"], None)
    if isinstance(out.get("impact"), dict):
        out["impact"].pop(NEW_KEYS["impact"], None)
    return out


def _aborted_copy(tmp_path: Path) -> Path:
    """gpu-loss-run with a stop condition that held and aborted the run (journal records appended)."""
    run_dir = tmp_path / "gpu-loss-run-aborted"
    shutil.copytree(DATA / "gpu-loss-run", run_dir)
    records = json.loads((EXPECTED / "abort-records.json").read_text(encoding="utf-8"))
    with (run_dir / "journal.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


def _with_users_copy(tmp_path: Path) -> Path:
    """latency-run with Locust users beside the probe (the probe's rows, 1.5x slower)."""
    run_dir = tmp_path / "latency-run-with-users"
    shutil.copytree(DATA / "latency-run", run_dir)
    users = pd.read_csv(run_dir / "samples" / "probe.csv", keep_default_na=False)
    users["source"] = "locust"
    users["latency_ms"] = users["latency_ms"] * 1.5
    users.to_csv(run_dir / "samples" / "locust.csv", index=False)
    return run_dir


def _cleanup_unverified_copy(tmp_path: Path) -> Path:
    """gpu-loss-run (objectives met) whose journal never says cleanup was verified."""
    run_dir = tmp_path / "gpu-loss-run-cleanup-unverified"
    shutil.copytree(DATA / "gpu-loss-run", run_dir)
    journal = run_dir / "journal.jsonl"
    lines = [line for line in journal.read_text(encoding="utf-8").splitlines() if '"cleanup.verified"' not in line]
    journal.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return run_dir


def _run_dir(name: str, tmp_path: Path) -> Path:
    if name == "gpu-loss-run-aborted":
        return _aborted_copy(tmp_path)
    if name == "latency-run-with-users":
        return _with_users_copy(tmp_path)
    if name == "gpu-loss-run-cleanup-unverified":
        return _cleanup_unverified_copy(tmp_path)
    run_dir = tmp_path / name
    shutil.copytree(DATA / name, run_dir)
    return run_dir


RECORDED = ["latency-run", "gpu-loss-run", "gpu-loss-run-aborted", "latency-run-with-users",
            "gpu-loss-run-cleanup-unverified"]


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_run_recomputes_to_identical_figures(name: str, tmp_path: Path) -> None:
    expected = json.loads((EXPECTED / f"{name}.results.json").read_text(encoding="utf-8"))
    results, timeline = compute_results(_run_dir(name, tmp_path))
    document = results.document()
    assert without_new_keys(document) == expected
    # The new keys are there: every measured fault lists its incidents, and the impact sums them.
    measured = [f for f in results.faults if f.impact != "not applied"]
    assert measured and all(isinstance(f.incidents, list) for f in measured)
    if results.impact is not None:
        summary = results.impact.incidents
        assert summary is not None
        assert summary.incidents == sum(len(f.incidents or []) for f in results.faults if f.onset_at)
    assert results.verdict == expected["verdict"]
    assert len(timeline) > 0


@pytest.mark.parametrize(
    ("name", "exit_code"),
    [("latency-run", 1), ("gpu-loss-run", 0), ("gpu-loss-run-aborted", 3), ("gpu-loss-run-cleanup-unverified", 3)],
)
def test_drill_report_rewrites_the_same_results_json(name: str, exit_code: int, tmp_path: Path) -> None:
    run_dir = _run_dir(name, tmp_path)
    outcome = CliRunner().invoke(main, ["report", str(run_dir)])
    assert outcome.exit_code == exit_code, outcome.output
    written = without_new_keys(json.loads((run_dir / "results.json").read_text(encoding="utf-8")))
    assert written == json.loads((EXPECTED / f"{name}.results.json").read_text(encoding="utf-8"))
    assert (run_dir / "report.html").is_file() and (run_dir / "junit.xml").is_file()
