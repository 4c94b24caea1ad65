"""Whole drills whose ground moves under them, for real (issue 24): the disk of the run directory
fills up mid-drill (a size-limited tmpfs as ``--out``), and the wall clock of the drill's own
processes steps (libfaketime; the machine's clock is never touched). Each must end in a clear
outcome: faults reverted, what was written readable by ``drill report``, never PASSED/FAILED on
partial data, the trouble in ``health.jsonl``.

Phases are the short ones of test_engine.py (3/3/3 s): the outcome (an abort on the full disk,
a clock_step listed) does not depend on their length."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.rundir.events import DependencyLost
from harness.rundir.frames import read_samples
from harness.rundir.health import read_health
from harness.rundir.journal import applied_faults, read_journal
from harness.testing import free_port, require, serve_in_thread
from harness.testing.drills import own_service
from harness.testing.drills import own_service_scenario as scenario
from harness.testing.parts import faketime_env
from harness.toxiproxy import ToxiproxyClient

DRILL = [sys.executable, "-m", "harness.cli"]
WHOLE_FAULT_PHASE = "{name: slow, type: latency, target: {proxy: svc}, latency_ms: 100}"


@contextlib.contextmanager
def small_disk(where: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (we are root), unmounted whatever happens."""
    require(os.geteuid() == 0 and shutil.which("mount") is not None, "root and mount(8)",
            "run the test as root (the CI container is)")
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def wait_for_event(journal: Path, event: str, proc: subprocess.Popen[str], timeout_s: float = 90.0,
                   poll_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if journal.exists() and any(r.event.event == event for r in read_journal(journal, lenient=True)):
            return
        assert proc.poll() is None, f"the drill ended before {event}: {proc.communicate()}"
        time.sleep(poll_s)
    raise AssertionError(f"no {event} in {journal} within {timeout_s} s")


def fill(path: Path) -> float:
    """Write zeros into ``path`` until its file system is full; returns when it was."""
    chunk = b"\0" * (1 << 16)
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError:
            pass
    return time.time()


@pytest.mark.slow
def test_full_disk_mid_drill_aborts_reverts_and_keeps_what_was_written(tmp_path: Path, toxiproxy_url: str) -> None:
    with small_disk(tmp_path / "disk") as disk, serve_in_thread(own_service()) as url:
        path = scenario(tmp_path, toxiproxy_url, url.removeprefix("http://"), free_port(), fault=WHOLE_FAULT_PHASE)
        run_dir = disk / "run"
        proc = subprocess.Popen([*DRILL, "run", str(path), "--out", str(run_dir)], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for_event(run_dir / "journal.jsonl", "fault.applied", proc)
            filled_at = fill(disk / "filler")
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode not in (0, 1), out + err
        assert "Traceback" not in out + err
        # The fault was reverted by the rollback, and nothing is left on Toxiproxy.
        journal = run_dir / "journal.jsonl"
        records = [r.event for r in read_journal(journal)]
        assert "fault.reverted" in [e.event for e in records]
        assert any(isinstance(e, DependencyLost) and e.what == "disk" for e in records)
        assert applied_faults(journal) == []
        with ToxiproxyClient(toxiproxy_url) as client:
            assert all(not p.toxics for p in client.proxies().values())
        # What was written is intact; a partial write_error says where the samples end.
        troubles = [t for t in read_health(run_dir) if t.kind == "write_error"]
        assert troubles and all(t.partial for t in troubles)
        assert all("samples end" in t.detail for t in troubles)
        samples = read_samples(run_dir)
        assert len(samples) > 20 and samples["start"].max() <= filled_at + 1.0
        # Space back: `drill report` renders what was written, aborted, saying where data ends.
        (disk / "filler").unlink()
        done = subprocess.run([*DRILL, "report", str(run_dir)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 3, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert "samples end" in done.stdout  # where the data ends, in the verdict's reason
        results = json.loads((run_dir / "results.json").read_text())
        assert results["verdict"] == "aborted" and "samples end" in results["abort_reason"]
        assert "samples end" in (run_dir / "report.html").read_text()


@pytest.mark.slow
def test_a_full_disk_before_the_results_fails_with_one_message_after_the_rollback(tmp_path: Path,
                                                                                  toxiproxy_url: str) -> None:
    """The disk fills once the rollback has checked the stack (``cleanup.verified``), the drill
    held still meanwhile (SIGSTOP) so it cannot finish first: the engine's last journal records
    and the results cannot be written. One clear message, exit 3, no traceback; the fault was
    reverted before."""
    with small_disk(tmp_path / "disk") as disk, serve_in_thread(own_service()) as url:
        path = scenario(tmp_path, toxiproxy_url, url.removeprefix("http://"), free_port(), fault=WHOLE_FAULT_PHASE)
        run_dir = disk / "run"
        proc = subprocess.Popen([*DRILL, "run", str(path), "--out", str(run_dir)], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for_event(run_dir / "journal.jsonl", "cleanup.verified", proc, poll_s=0.01)
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                fill(disk / "filler")
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 3, out + err
        assert "Traceback" not in out + err
        assert "its faults were rolled back, but its results could not be written" in out + err
        assert "No space left on device" in out + err
        assert not (run_dir / "results.json").exists() or "verdict" not in (run_dir / "results.json").read_text()
        with ToxiproxyClient(toxiproxy_url) as client:
            assert all(not p.toxics for p in client.proxies().values())
        assert applied_faults(run_dir / "journal.jsonl") == []


@pytest.mark.slow
def test_a_wall_clock_step_of_the_drills_processes_is_listed(tmp_path: Path, toxiproxy_url: str) -> None:
    """libfaketime steps the wall clock of the drill's processes alone (engine, prober, Locust,
    watchdog) by +2 s once the fault is applied: the run lists a clock_step of about 2 s, and
    rto_s (2 s), whose window the step overlaps, is undecided: INCONCLUSIVE (exit 6), not a PASS
    built on a clock that jumped. (With rto_s: 10 the same run passes, its resolution widened.)"""
    stamp = tmp_path / "faketime"
    env = faketime_env(stamp)
    with serve_in_thread(own_service()) as url:
        path = scenario(tmp_path, toxiproxy_url, url.removeprefix("http://"), free_port(), fault=WHOLE_FAULT_PHASE,
                        objectives="{rto_s: 2, p95_ms: 5000}")
        run_dir = tmp_path / "run"
        proc = subprocess.Popen([*DRILL, "run", str(path), "--out", str(run_dir)], text=True, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for_event(run_dir / "journal.jsonl", "fault.applied", proc)
            stamp.write_text("+2\n")
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in out + err
    steps = [t for t in read_health(run_dir) if t.kind == "clock_step"]
    assert steps, read_health(run_dir)
    assert max(t.magnitude_s for t in steps) == pytest.approx(2.0, abs=0.1)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "inconclusive" and proc.returncode == 6, results["measurement"].get("health")
    assert results["cleanup"]["toxics_left"] == 0
    assert applied_faults(run_dir / "journal.jsonl") == []
