"""The Docker daemon restarts in the middle of a compose drill, for real (issue 24).

The daemon is the one ``scripts/docker-setup`` starts (no systemd): it is stopped with SIGTERM
and started again by ``scripts/docker-setup --engine``, the same way. Without ``live-restore``
its containers stop with it (the compose stack under test, Toxiproxy's container with its
toxics). The drill must end with a clear outcome: aborted (exit 3), a ``docker_restart`` trouble,
and either the fault reverted or ``drill recover`` naming exactly what is left and why.

This stops every container on the machine's daemon for a few seconds: run it under the heavy
lock, which every Docker test on this machine takes. The stack is this module's own project on
free ports (conftest's staging_stack fixture), removed afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.engine.ground import daemon_id
from harness.rundir.events import DependencyLost
from harness.rundir.health import read_health
from harness.rundir.journal import read_journal
from harness.testing import REPO
from harness.testing.parts import alive
from harness.testing.stacks import shipped_drill, wait_for_tier

pytestmark = [pytest.mark.docker, pytest.mark.slow]
DRILL = [sys.executable, "-m", "harness.cli"]


def ensure_dockerd() -> None:
    """Start the daemon the way scripts/docker-setup does, if it is not answering (a second try
    when the first start raced the old daemon's last moments)."""
    said = ""
    for _ in range(2):
        if daemon_id() is not None:
            return
        done = subprocess.run([str(REPO / "scripts/docker-setup"), "--engine"], capture_output=True, text=True,
                              timeout=180)
        said += done.stdout + done.stderr
        time.sleep(1.0)
    assert daemon_id() is not None, f"dockerd did not come back:\n{said}"


def restart_dockerd() -> tuple[int, int]:
    """SIGTERM to the daemon, wait until it is gone (bounded), start it again; (old pid, new pid)."""
    before = daemon_id()
    assert before is not None
    os.kill(before.pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while alive(before.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(before.pid), "dockerd did not stop within 90 s"
    ensure_dockerd()
    after = daemon_id()
    assert after is not None and after != before
    return before.pid, after.pid


def test_dockerd_restart_mid_compose_drill_aborts_and_names_what_is_left(staging_stack, tmp_path: Path) -> None:
    runtime, ports = staging_stack
    scenario = shipped_drill(runtime, ports, "hosted-latency", tmp_path)
    wait_for_tier(ports["gateway"], "hosted")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([*DRILL, "run", str(scenario), "--out", str(run_dir)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        journal = run_dir / "journal.jsonl"
        deadline = time.monotonic() + 120
        while not (journal.exists() and any(r.event.event == "fault.applied" for r in read_journal(journal, lenient=True))):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        old_pid, new_pid = restart_dockerd()
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        ensure_dockerd()
    assert proc.returncode == 3, out + err
    assert "Traceback" not in out + err
    troubles = [t for t in read_health(run_dir) if t.kind == "docker_restart"]
    assert troubles and all(t.partial for t in troubles), read_health(run_dir)
    assert f"pid {old_pid}" in troubles[0].detail
    records = list(read_journal(run_dir / "journal.jsonl"))
    assert any(isinstance(r.event, DependencyLost) and r.event.what == "docker daemon" for r in records)
    reverted = any(r.event.event == "fault.reverted" for r in records)
    # Either the revert took, or `drill recover` names the fault it could not revert, and why.
    recover = subprocess.run([*DRILL, "recover", str(run_dir)], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in recover.stdout + recover.stderr
    if reverted:
        assert recover.returncode == 0, recover.stdout + recover.stderr
    else:
        assert recover.returncode == 3, recover.stdout + recover.stderr
        assert "provider-slow" in recover.stdout + recover.stderr
    print(f"dockerd {old_pid} -> {new_pid}; reverted in the drill: {reverted}; recover said:\n"
          f"{recover.stdout}{recover.stderr}")
