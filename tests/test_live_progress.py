"""`drill run` watched live: on a terminal (a real tmux pane) it draws the figures of the last
second; piped, it prints plain lines; --events writes NDJSON, one record per second. The piped
drill runs with two Locust workers and also shows Locust's distributed mode: samples from both
workers merged onto one timeline, each worker's clock offset recorded. A service of the test's
own behind a private Toxiproxy (free ports), so a reference stack left up elsewhere is no clash."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.testing import REPO, require
from harness.testing.drills import service_and_toxiproxy, short_scenario

DRILL = [sys.executable, "-m", "harness.cli"]
PHASES_S = 3 + 4 + 4
PipedRun = tuple[subprocess.CompletedProcess[str], Path, Path]
# Every test here watches a real drill (11 s of phases) run: the fast lane leaves them out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory: pytest.TempPathFactory) -> PipedRun:
    """One short drill with two local workers, stdout and stderr piped, with --events."""
    tmp = tmp_path_factory.mktemp("piped")
    env = os.environ | {"DRILL_STATE_DIR": str(tmp_path_factory.mktemp("piped-state"))}
    run_dir, events = tmp / "run", tmp / "events.ndjson"
    with service_and_toxiproxy() as (toxiproxy_url, upstream):
        scenario = short_scenario(tmp, 2, toxiproxy_url, upstream)
        done = subprocess.run([*DRILL, "run", str(scenario), "--out", str(run_dir), "--events", str(events)],
                              capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    # The progress lines are what these tests check; on a busy machine the instrument may rule the
    # drill inconclusive (exit 6, probe lag), which is a verdict like any other here.
    assert done.returncode in (0, 1, 6), done.stderr[-3000:]
    return done, run_dir, events


def test_piped_output_gives_plain_progress_lines(piped_run: PipedRun) -> None:
    done, _, _ = piped_run
    lines = [line for line in done.stderr.splitlines() if "progress phase=" in line]
    assert len(lines) >= 2, done.stderr[-2000:]
    assert any("phase=fault" in line and "faults=provider-slow" in line for line in lines), lines
    assert all("rps=" in line and "p95=" in line and "tiers=" in line for line in lines)
    assert "\x1b[" not in done.stderr  # no terminal control codes when nobody watches a terminal


def test_events_file_has_one_record_per_second(piped_run: PipedRun) -> None:
    _, _, events = piped_run
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert PHASES_S - 2 <= len(records) <= PHASES_S + 1
    fields = {"schema", "ts", "phase", "elapsed_s", "remaining_s", "rps", "error_rate", "p95_ms",
              "active_faults", "tiers", "probe_requests"}
    assert all(fields <= set(r) for r in records)
    seconds = [int(r["elapsed_s"]) for r in records]
    assert len(set(seconds)) == len(seconds)  # one record per second of the drill
    assert {r["phase"] for r in records} == {"baseline", "fault", "recovery"}
    assert any(r["active_faults"] == ["provider-slow"] for r in records)
    # Locust may still be spawning in the first baseline second (the probe starts the clock).
    assert all(r["rps"] > 0 for r in records if r["phase"] != "baseline")
    assert any(r["tiers"] for r in records)


def test_two_workers_samples_are_merged_with_their_clock_offsets(
    piped_run: PipedRun,
) -> None:
    _, run_dir, _ = piped_run
    with open(run_dir / "samples/locust.csv", newline="") as f:
        workers = {row["worker"] for row in csv.DictReader(f)}
    assert workers == {"w1", "w2"}
    results = json.loads((run_dir / "results.json").read_text())
    clock = results["load_clock"]
    assert set(clock["workers"]) == {"w1", "w2"}
    for worker in clock["workers"].values():
        assert worker["measured"] is True and worker["rows"] > 0
        assert worker["uncertainty_s"] <= clock["uncertainty_s"] + 1e-6  # the total is rounded to µs
    journal = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    started = next(r for r in journal if r["event"] == "load.started")
    assert {"locust", "prober", "locust-worker-w1", "locust-worker-w2"} <= set(started["process_groups"])


def test_a_terminal_shows_live_figures(tmp_path: Path) -> None:
    tmux = shutil.which("tmux")
    require(tmux is not None, "tmux", "run scripts/tmux-setup (Debian's tmux)")
    assert tmux is not None
    socket_name = f"drill-test-{os.getpid()}"
    run_dir = tmp_path / "run"
    with service_and_toxiproxy() as (toxiproxy_url, upstream):
        scenario = short_scenario(tmp_path, 0, toxiproxy_url, upstream)
        command = (f"cd {REPO} && DRILL_STATE_DIR={os.environ['DRILL_STATE_DIR']} {sys.executable} -m harness.cli "
                   f"run {scenario} --out {run_dir}; echo DRILL-EXIT=$?; sleep 300")
        screen, live_screens = _watch_in_tmux(tmux, socket_name, command)
    assert "DRILL-EXIT=" in screen, screen
    assert live_screens, screen
    assert any("fault" in s and "provider-slow" in s and "errors" in s and "p95" in s for s in live_screens), \
        live_screens[-1]
    assert "progress phase=" not in "".join(live_screens)  # the live line, not the plain one


def _watch_in_tmux(tmux: str, socket_name: str, command: str) -> tuple[str, list[str]]:
    """Run ``command`` in a 200x40 tmux pane; return the last screen and those showing live figures."""
    subprocess.run([tmux, "-L", socket_name, "new-session", "-d", "-s", "drill", "-x", "200", "-y", "40", command],
                   check=True, timeout=10)
    try:
        live_screens: list[str] = []
        deadline = time.monotonic() + 120
        screen = ""
        while time.monotonic() < deadline and "DRILL-EXIT=" not in screen:
            screen = subprocess.run([tmux, "-L", socket_name, "capture-pane", "-p", "-t", "drill"],
                                    capture_output=True, text=True, timeout=10).stdout
            if " rps" in screen and "elapsed" in screen:
                live_screens.append(screen)
            time.sleep(0.3)
    finally:
        subprocess.run([tmux, "-L", socket_name, "kill-server"], timeout=10, check=False)
    return screen, live_screens
