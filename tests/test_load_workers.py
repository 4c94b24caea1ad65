"""Locust's distributed mode in drill: the scenario keys, and that a kill -9'd distributed run
leaves nothing running once `drill recover --all` has run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.load import LoadRunner, RequestSpec
from harness.load.plan import LoadPlan, split_host_port
from harness.rundir.clock import load_clock
from harness.scenario import load_scenario
from harness.testing import REPO, free_port
from harness.testing.drills import service_and_toxiproxy, short_scenario

DRILL = [sys.executable, "-m", "harness.cli"]


def test_master_without_workers_to_wait_for_is_bad_input(tmp_path: Path) -> None:
    text = short_scenario(tmp_path, 0, "http://127.0.0.1:8474", "127.0.0.1:18001").read_text()
    path = tmp_path / "master.yaml"
    path.write_text(text.replace("  workers: 0\n", "  master: {bind: 127.0.0.1:5557}\n"))
    done = subprocess.run([*DRILL, "validate", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2
    assert "load.master" in done.stdout + done.stderr and "expect_workers" in done.stdout + done.stderr
    path.write_text(text.replace("  workers: 0\n", "  master: {bind: 'localhost:99999', expect_workers: 2}\n"))
    with pytest.raises(ScenarioError, match="HOST:PORT"):
        load_scenario(path)
    path.write_text(text.replace("  workers: 0\n", "  workers: 1\n  master: {bind: 0.0.0.0:5557, expect_workers: 3}\n"))
    load = load_scenario(path).spec.load
    assert load.workers == 1 and load.master is not None and load.master.expect_workers == 3


def test_plan_round_trips_the_distributed_fields() -> None:
    plan = LoadPlan(host="http://127.0.0.1:8080", users=4, spawn_rate=4, duration_s=5, workers=2,
                    master_bind="127.0.0.1:5557", expect_workers=3)
    again = LoadPlan.from_json(plan.to_json())
    assert again == plan and again.distributed and again.expected_workers == 3
    assert not LoadPlan(host="http://127.0.0.1:8080", users=4, spawn_rate=4, duration_s=5).distributed
    assert split_host_port("[::1]:5557") == ("::1", 5557)
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_host_port("5557")


def _alive(pid: int) -> bool:
    """Running (a zombie left for init to reap counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow
def test_kill_9_of_a_distributed_run_then_recover_leaves_no_master_or_worker(tmp_path: Path) -> None:
    with service_and_toxiproxy() as (toxiproxy_url, upstream):
        scenario = short_scenario(tmp_path, 2, toxiproxy_url, upstream)
        scenario.write_text(scenario.read_text().replace("recovery: 4s", "recovery: 60s"))
        _kill_9_then_recover(scenario, tmp_path / "run")


def _kill_9_then_recover(scenario: Path, run_dir: Path) -> None:
    drill = subprocess.Popen([*DRILL, "run", str(scenario), "--out", str(run_dir)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    groups: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and drill.poll() is None:
            journal = run_dir / "journal.jsonl"
            records = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
            started = [r for r in records if r["event"] == "load.started"]
            if started and any(r["event"] == "fault.applied" for r in records):
                groups = started[-1]["process_groups"]
                break
            time.sleep(0.2)
        assert groups, "the distributed drill did not reach its fault phase"
        load_pids = [pid for name, pid in groups.items() if name.startswith("locust")]
        assert len(load_pids) == 3 and all(_alive(pid) for pid in load_pids)
        drill.send_signal(signal.SIGKILL)
        drill.wait(timeout=10)
        assert all(_alive(pid) for pid in load_pids)  # nothing stopped them: only recover will
        done = subprocess.run([*DRILL, "recover", "--all"], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert [pid for pid in load_pids if _alive(pid)] == []
    finally:
        if drill.poll() is None:
            drill.kill()
        for pid in groups.values():
            if pid and _alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_drill_worker_attaches_to_a_master_waiting_for_it(tmp_path: Path) -> None:
    """The other-machine path, on loopback: a master that waits for one worker, and
    `drill worker --master` supplying it; its samples carry its --id."""
    with service_and_toxiproxy() as (toxiproxy_url, upstream):
        scenario = short_scenario(tmp_path, 0, toxiproxy_url, upstream)
        port = free_port()
        host = f"http://{upstream}"
        plan = LoadPlan(host=host, users=2, spawn_rate=2, duration_s=3, request=RequestSpec(method="POST",
                        path="/v1/chat/completions", json={"model": "chat"}), probe_rate_hz=0,
                        master_bind=f"127.0.0.1:{port}", expect_workers=1)
        runner = LoadRunner(plan, tmp_path / "run", run_time_margin_s=0)
        with runner:
            worker = subprocess.Popen([*DRILL, "worker", str(scenario), "--master", f"127.0.0.1:{port}",
                                       "--id", "remote-1"], cwd=REPO, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            try:
                outcome = runner.wait(timeout_s=60)  # the master ends by its own --run-time
                assert worker.wait(timeout=30) == 0  # and tells its worker to quit
            finally:
                if worker.poll() is None:
                    worker.kill()
    assert outcome.locust_returncode == 0
    with open(runner.locust_samples, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {row["worker"] for row in rows} == {"remote-1"}
    clock = load_clock(runner.run_dir)
    assert clock is not None and clock.workers["remote-1"]["measured"] is True
