"""Hostile input never ends in a traceback: every bad scenario file is exit 2 with one
``FILE:LINE field: message``; every damaged run directory makes `drill report` name the file
and line (exit 2); user text printed through rich is escaped; an unexpected exception is saved
to a file and exits 3. Time and memory per case: bench/hostile_inputs.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from hostile_cases import BASE, DAMAGES, synthetic_run, write_cases

from harness.errors import ScenarioError
from harness.results import compute_results
from harness.scenario import load_scenario

DRILL = [sys.executable, "-m", "harness.cli"]
MAX_RSS_BYTES = 200 * 1024 * 1024


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return write_cases(tmp_path_factory.mktemp("hostile"))


def test_every_hostile_scenario_is_one_file_line_message(cases: dict[str, tuple[Path, str]]) -> None:
    for name, (path, words) in cases.items():
        with pytest.raises(ScenarioError) as caught:
            load_scenario(path)
        problems = caught.value.problems
        assert len(problems) == 1, (name, problems)
        assert words in problems[0], (name, problems[0])
        # FILE:LINE where the file has lines; the special files are named without one.
        assert re.match(re.escape(str(path)) + (r": " if name in ("fifo", "dev-zero", "directory", "oversized-file")
                                                else r":\d+ "), problems[0]), (name, problems[0])


def test_validate_all_hostile_files_at_once_exit_2_without_a_traceback(cases: dict[str, tuple[Path, str]]) -> None:
    files = [str(path) for path, _ in cases.values()]
    proc = subprocess.run([*DRILL, "validate", *files], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == len(files), lines
    assert all(line.startswith("invalid ") for line in lines)


def test_the_alias_bomb_is_refused_in_bounded_memory(cases: dict[str, tuple[Path, str]]) -> None:
    """The 300-byte bomb once took 1.1 GB; a drill validate process must stay under 200 MB."""
    path = cases["alias-bomb"][0]
    pid = os.fork()
    if pid == 0:  # the child becomes `drill validate`, so its peak memory is its own
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.chdir(REPO)
        os.execv(sys.executable, [*DRILL, "validate", str(path)])
    _, status, usage = os.wait4(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2
    assert usage.ru_maxrss * 1024 < MAX_RSS_BYTES


def test_rich_markup_in_names_and_folders_is_printed_as_text(tmp_path: Path) -> None:
    folder = tmp_path / "[/x]"  # a folder "[" holding "x]": the path reads as closing markup
    folder.mkdir(parents=True)
    path = folder / "s.yaml"
    path.write_text(BASE.replace("name: slow", "name: '[/x] [bold]'"), encoding="utf-8")
    validate = subprocess.run([*DRILL, "validate", str(path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0, validate.stderr
    assert f"{folder}/s.yaml" in validate.stdout
    plan = subprocess.run([*DRILL, "run", "--dry-run", str(path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    assert "fault [/x] [bold]:" in plan.stdout


# --- damaged run directories ----------------------------------------------------------------------


def test_the_synthetic_run_reports(tmp_path: Path) -> None:
    results = compute_results(synthetic_run(tmp_path / "run"))[0].document()
    assert results["faults"][0]["rto_s"] == pytest.approx(3.99, abs=0.06)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_report_names_the_damaged_file_and_line(tmp_path: Path, damage: str) -> None:
    run_dir = synthetic_run(tmp_path / "run")
    harm, file_name, line = DAMAGES[damage]
    harm(run_dir)
    with pytest.raises(ScenarioError) as caught:
        compute_results(run_dir)
    message = str(caught.value)
    where = re.escape(file_name) + (f":{line} " if line is not None else ": ")
    assert re.search(where, message), message


def test_drill_report_on_a_damaged_run_exits_2_with_one_message(tmp_path: Path) -> None:
    run_dir = synthetic_run(tmp_path / "run")
    DAMAGES["status-30-digits"][0](run_dir)
    proc = subprocess.run([*DRILL, "report", str(run_dir)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "probe.csv:2 status" in proc.stderr


def test_math_text_in_fault_and_tier_names_is_drawn_as_text(tmp_path: Path) -> None:
    run_dir = synthetic_run(tmp_path / "run", fault_name="slow$\\foo{$", tier="$\\frac{$")
    proc = subprocess.run([*DRILL, "report", str(run_dir)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert "slow$\\foo{$" in (run_dir / "report.html").read_text(encoding="utf-8")


# --- unexpected exceptions --------------------------------------------------------------------------


def test_an_unexpected_exception_is_saved_to_a_file_and_exits_3(tmp_path: Path) -> None:
    run_dir = synthetic_run(tmp_path / "run")
    code = ("import sys, harness.results as r\n"
            "def boom(*a, **k): raise KeyError('injected')\n"
            "r.compute_results = boom\n"
            "from harness.cli import main\n"
            "sys.argv = ['drill', 'report', sys.argv[1]]\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "traceback saved to" in lines[0], lines
    saved = Path(lines[0].rsplit("traceback saved to ", 1)[1].strip())
    assert "KeyError: 'injected'" in saved.read_text()


def test_an_exception_in_the_engine_after_a_fault_is_applied_rolls_back_and_exits_3(
    tmp_path: Path, toxiproxy_url: str
) -> None:
    """The engine is made to raise right after its first fault took effect: the drill must
    revert it, save the traceback in the run directory, say so in one line and exit 3."""
    import json

    from conftest import free_port, serve_in_thread
    from test_engine import own_service

    from harness.rundir import JOURNAL_FILE
    from harness.rundir.events import FaultApplied, FaultReverted, RunError
    from harness.rundir.journal import applied_faults, read_journal
    from harness.toxiproxy import ToxiproxyClient

    with serve_in_thread(own_service()) as url, ToxiproxyClient(toxiproxy_url) as client:
        port = free_port()
        client.create_proxy("svc-a", f"127.0.0.1:{port}", url.removeprefix("http://"))
        scenario = tmp_path / "s.yaml"
        scenario.write_text(
            "apiVersion: drill/v1\nkind: Scenario\nname: injected\n"
            f"toxiproxy: {{url: {toxiproxy_url}}}\n"
            f"load: {{host: 'http://127.0.0.1:{port}', users: 1, probe_rate_hz: 10,"
            " request: {method: POST, path: /v1/chat/completions, json: {model: chat}}}\n"
            "phases: {baseline: 1s, fault: 10s, recovery: 1s}\n"
            "faults:\n  - {name: a-slow, type: latency, target: {proxy: svc-a}, latency_ms: 50}\n",
            encoding="utf-8")
        code = ("import sys, harness.engine as e\n"
                "applied = e.Drill._apply\n"
                "def apply_then_fail(self, a):\n"
                "    applied(self, a)\n"
                "    raise ZeroDivisionError('injected after apply')\n"
                "e.Drill._apply = apply_then_fail\n"
                "from harness.cli import main\n"
                "sys.argv = ['drill', 'run', sys.argv[1], '--out', sys.argv[2]]\n"
                "main()\n")
        run_dir = tmp_path / "run"
        proc = subprocess.run([sys.executable, "-c", code, str(scenario), str(run_dir)], cwd=REPO,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        traceback_file = run_dir / "traceback.txt"
        assert "ZeroDivisionError: injected after apply" in traceback_file.read_text()
        assert str(traceback_file) in " ".join((proc.stdout + proc.stderr).split())
        assert client.proxies()["svc-a"].toxics == []
        assert applied_faults(run_dir / JOURNAL_FILE) == []
        events = [type(r.event) for r in read_journal(run_dir / JOURNAL_FILE)]
        assert events.index(FaultApplied) < events.index(RunError) < events.index(FaultReverted)
        assert json.loads((run_dir / "results.json").read_text())["verdict"] == "aborted"
