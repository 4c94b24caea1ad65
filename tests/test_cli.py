"""The drill command line as a user runs it: exit codes, file:line messages, dry runs, report
recomputation, and one drill at a time per stack."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.safety.lock import StackBusyError, StackLock
from harness.testing import REPO, free_port, serve_in_thread
from harness.testing.drills import own_service
from harness.testing.drills import own_service_scenario as scenario
from harness.toxiproxy import ToxiproxyClient

DRILL = [sys.executable, "-m", "harness.cli"]


def drill(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DRILL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_teaches_the_commands_and_exit_codes() -> None:
    done = drill("--help")
    assert done.returncode == 0
    for word in ("validate", "run", "report", "recover", "stack", "Exit codes"):
        assert word in done.stdout


def test_validate_shipped_default_scenario() -> None:
    done = drill("validate", "scenarios/latency.yaml")
    assert done.returncode == 0, done.stderr
    assert "ok scenarios/latency.yaml" in done.stdout


@pytest.mark.parametrize(
    "edit,expected",
    [
        (("  users: 8", "  userz: 8"), ":13 load.userz: unknown key 'userz' (did you mean 'users'?)"),
        (("    duration: 20s", "    duration: soon"), ":28 faults[0].duration: expected a duration"),
        (("stop_when:", "evil: !!python/object:os.system ls\nstop_when:"),
         ":34 unsupported YAML tag !!python/object:os.system"),
    ],
)
def test_bad_scenario_exits_2_names_file_line_and_applies_nothing(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    shipped = (REPO / "scenarios/latency.yaml").read_text()
    assert edit[0] in shipped
    bad = tmp_path / "bad.yaml"
    bad.write_text(shipped.replace(edit[0], edit[1]).replace("../targets/", str(REPO / "targets") + "/"))
    for command in (("validate", str(bad)), ("run", str(bad), "--out", str(tmp_path / "run"))):
        done = drill(*command)
        assert done.returncode == 2, done.stderr
        assert f"{bad}{expected}" in done.stderr.replace("\n", " ")
    assert not (tmp_path / "run").exists()  # nothing started, nothing written


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path, toxiproxy_url: str) -> None:
    """Checked on the real Toxiproxy state: no proxy created, no toxic added, no run written."""
    port = free_port()
    path = scenario(tmp_path, toxiproxy_url, "127.0.0.1:9", port)
    with ToxiproxyClient(toxiproxy_url) as client:
        client.create_proxy("bystander", f"127.0.0.1:{free_port()}", "127.0.0.1:9")
        before = client.proxies()
        done = drill("run", str(path), "--dry-run", "--reports-dir", str(tmp_path / "reports"))
        after = client.proxies()
    assert done.returncode == 0, done.stderr
    assert "dry run" in done.stdout and "fault slow: latency on proxy svc (latency_ms=300)" in done.stdout
    assert "{'" not in done.stdout and "['" not in done.stdout  # no Python reprs in front of people
    assert after == before
    assert not (tmp_path / "reports").exists()


@pytest.mark.slow
@pytest.mark.beside_drills  # an in-process service of its own: little CPU (tests/conftest.py)
def test_report_recomputes_results_from_the_run_directory_alone(tmp_path: Path, toxiproxy_url: str) -> None:
    with serve_in_thread(own_service()) as url:
        path = scenario(tmp_path, toxiproxy_url, url.removeprefix("http://"), free_port())
        done = drill("run", str(path), "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"report: {tmp_path / 'run' / 'report.html'}" in done.stdout
    original = json.loads((tmp_path / "run/results.json").read_text())

    moved = tmp_path / "elsewhere"  # nothing outside the run directory is needed
    shutil.move(str(tmp_path / "run"), moved)
    (moved / "results.json").unlink()
    (moved / "report.html").unlink()
    again = drill("report", str(moved))
    assert again.returncode == 0, again.stderr
    recomputed = json.loads((moved / "results.json").read_text())
    assert recomputed == original
    assert (moved / "report.html").exists()


def test_second_drill_on_the_same_stack_is_refused(tmp_path: Path) -> None:
    with StackLock("local stack /x.yaml", tmp_path / "first"):
        with pytest.raises(StackBusyError, match=r"another drill is running against local stack /x.yaml \(pid \d+"):
            with StackLock("local stack /x.yaml", tmp_path / "second"):
                pass
        with StackLock("compose project other", tmp_path / "third"):
            pass  # another stack is free
    with StackLock("local stack /x.yaml", tmp_path / "fourth"):
        pass  # released at exit


def test_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import os, sys, time
        from harness.safety.lock import StackLock
        with StackLock("compose project crashy", "{tmp_path}"):
            print("held", flush=True)
            time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(StackBusyError):
        with StackLock("compose project crashy", tmp_path):
            pass
    holder.kill()
    holder.wait(timeout=10)
    with StackLock("compose project crashy", tmp_path):
        pass


@pytest.mark.slow
@pytest.mark.beside_drills  # an in-process service of its own: little CPU (tests/conftest.py)
def test_repeat_runs_the_drill_n_times_and_summarises_each_figure(tmp_path: Path, toxiproxy_url: str) -> None:
    with serve_in_thread(own_service()) as url:
        path = scenario(tmp_path, toxiproxy_url, url.removeprefix("http://"), free_port())
        done = drill("run", str(path), "--repeat", "2", "--settle", "0", "--out", str(tmp_path / "series"))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "series/repeat-summary.json").read_text())
    assert summary["schema"] == "drill.repeat/v1" and summary["verdicts"]["passed"] == 2
    rto = summary["figures"]["faults.slow.rto_s"]
    assert rto["n"] == 2 and len(rto["values"]) == 2 and rto["min"] <= rto["median"] <= rto["max"]
    for i in (1, 2):
        assert (tmp_path / f"series/run-{i:02d}/results.json").exists()
    assert "run 1/2 PASSED" in done.stdout and "run 2/2 PASSED" in done.stdout  # a verdict per run
    assert "caution: n = 2" in done.stdout and "{'" not in done.stdout
