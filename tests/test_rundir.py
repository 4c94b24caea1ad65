"""The run-directory layout and its small readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import rundir
from harness.errors import ScenarioError


def test_request_sample_files_leave_out_the_capacity_timeline(tmp_path: Path) -> None:
    samples = rundir.samples_dir(tmp_path)
    samples.mkdir()
    for name in (rundir.PROBE_SAMPLES_FILE, rundir.LOCUST_SAMPLES_FILE, rundir.CAPACITY_FILE, "notes.txt"):
        (samples / name).write_text("x\n", encoding="utf-8")
    assert [p.name for p in rundir.request_sample_files(tmp_path)] == ["locust.csv", "probe.csv"]
    assert rundir.request_sample_files(tmp_path / "elsewhere") == []


def test_stack_events_round_trip_and_skip_what_cannot_be_placed(tmp_path: Path) -> None:
    assert rundir.read_stack_events(tmp_path) is None
    events = [{"ts": 1.5, "event": "failover"}, {"ts": "late", "event": "x"}, {"ts": True, "event": "y"},
              {"ts": 2.0, "event": 3}, {"ts": float("nan"), "event": "z"}]
    path = rundir.write_stack_events(tmp_path, "http://127.0.0.1:9/admin/events", events)
    assert path == tmp_path / rundir.STACK_EVENTS_FILE
    assert rundir.read_stack_events(tmp_path) == [{"ts": 1.5, "event": "failover"}]


def test_a_damaged_stack_event_log_names_its_file(tmp_path: Path) -> None:
    (tmp_path / rundir.STACK_EVENTS_FILE).write_text(json.dumps({"events": "none"}), encoding="utf-8")
    with pytest.raises(ScenarioError, match=rundir.STACK_EVENTS_FILE):
        rundir.read_stack_events(tmp_path)


def test_every_file_role_names_a_file_of_the_layout() -> None:
    names = {rundir.JOURNAL_FILE, rundir.RESULTS_FILE, rundir.JUNIT_FILE, rundir.REPORT_FILE, rundir.SCENARIO_FILE,
             rundir.HEALTH_FILE, rundir.COST_RECORDS_FILE}
    samples = {f"{rundir.SAMPLES_DIR}/{n}" for n in
               (rundir.LOCUST_SAMPLES_FILE, rundir.PROBE_SAMPLES_FILE, rundir.CAPACITY_FILE, rundir.QUALITY_FILE,
                rundir.QUALITY_INDEX_FILE)}
    assert set(rundir.FILE_ROLES) == names | samples


def test_the_load_clock_is_read_from_the_run_directory(tmp_path: Path) -> None:
    from harness.rundir.clock import load_clock
    from harness.rundir.journal import DamagedFileError

    assert load_clock(tmp_path) is None  # Locust ran in one process
    path = tmp_path / rundir.LOAD_WORKERS_FILE
    path.write_text(json.dumps({"workers": {"w1": {"uncertainty_s": 0.002, "rows": 10},
                                            "w2": {"uncertainty_s": 0.0005, "rows": 12}}}), encoding="utf-8")
    clock = load_clock(tmp_path)
    assert clock is not None and clock.uncertainty_s == 0.002
    assert clock.to_dict()["file"] == rundir.LOAD_WORKERS_FILE
    path.write_text('{"workers": [1, 2]}', encoding="utf-8")
    with pytest.raises(DamagedFileError, match=rundir.LOAD_WORKERS_FILE):
        load_clock(tmp_path)
