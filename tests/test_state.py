"""drill's private state: the state directory, stack locks, the register of runs, and what it
buys: `drill recover --all` finds a kill -9'd run wherever its --out was, and `drill run`
refuses a stack that still has faults on it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import StackError
from harness.rundir import JOURNAL_FILE
from harness.rundir.journal import applied_faults
from harness.rundir.state import register_run, registered_runs, state_dir, unregister_run
from harness.safety.lock import StackBusyError, StackLock
from harness.safety.strays import active_faults
from harness.testing import REPO, free_port, require, serve_in_thread
from harness.testing.drills import SUITE_PACE_HZ, own_service
from harness.toxiproxy import ToxiproxyClient

DRILL = [sys.executable, "-m", "harness.cli"]


@pytest.fixture
def fresh_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("DRILL_STATE_DIR", str(path))
    return path


# --- the directory and its files ---------------------------------------------------------------


def test_state_dir_is_private(fresh_state: Path) -> None:
    path = state_dir()
    assert path == fresh_state
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def test_a_symlinked_state_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "state").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setenv("DRILL_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(StackError, match="not a plain directory"):
        state_dir()


def test_someone_elses_state_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Giving a directory to another user needs root; CI runs as root, so there it must run.
    require(os.geteuid() == 0, "root (to chown a directory to another user)", "run the suite as root")
    (tmp_path / "state").mkdir(mode=0o700)
    os.chown(tmp_path / "state", 65534, 65534)
    monkeypatch.setenv("DRILL_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(StackError, match="belongs to uid 65534"):
        state_dir()


def test_a_lock_file_planted_as_a_symlink_is_not_followed(fresh_state: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    lock = StackLock("compose project x", tmp_path / "run")
    (state_dir() / "locks").mkdir(exist_ok=True)
    (state_dir() / "locks" / f"{lock.digest}.lock").symlink_to(victim)
    with pytest.raises(StackError, match="cannot open the stack lock"):
        with lock:
            pass
    assert victim.read_text() == "precious"


def test_a_held_lock_names_its_holder_and_an_existing_file_is_not_truncated(fresh_state: Path, tmp_path: Path) -> None:
    with StackLock("compose project x", tmp_path / "run-1") as held:
        assert held.path is not None
        held.path.write_text("kept")  # whatever is in the lock file stays: it is never truncated
        with pytest.raises(StackBusyError, match="run-1"):
            with StackLock("compose project x", tmp_path / "run-2"):
                pass
    with StackLock("compose project x", tmp_path / "run-3") as again:
        assert again.path is not None and again.path.read_text() == "kept"


def test_the_register_round_trips_and_skips_damaged_entries(fresh_state: Path, tmp_path: Path) -> None:
    register_run(tmp_path / "a", "s", {"key": "k", "runtime": "local"})
    (state_dir() / "runs" / "junk.json").write_bytes(b"\xff\xfe not json")
    assert [e["run_dir"] for e in registered_runs()] == [str((tmp_path / "a").resolve())]
    unregister_run(tmp_path / "a")
    assert registered_runs() == []


# --- with a real drill ------------------------------------------------------------------------


def scenario_text(toxiproxy_url: str, listen_port: int, fault_s: int = 30) -> str:
    return (
        "apiVersion: drill/v1\nkind: Scenario\nname: state-own\n"
        f"toxiproxy: {{url: {toxiproxy_url}}}\n"
        f"load:\n  host: http://127.0.0.1:{listen_port}\n  users: 1\n  pace_hz: {SUITE_PACE_HZ}\n"
        "  request: {method: POST, path: /v1/chat/completions, json: {model: chat}}\n"
        "  timeout_s: 2\n  probe_rate_hz: 10\n"
        f"phases: {{baseline: 1s, fault: {fault_s}s, recovery: 1s}}\n"
        "faults:\n  - {name: a-slow, type: latency, target: {proxy: svc-a}, latency_ms: 50}\n"
    )


@pytest.fixture
def own(toxiproxy_url: str, tmp_path: Path) -> Iterator[tuple[ToxiproxyClient, Path]]:
    with serve_in_thread(own_service()) as url, ToxiproxyClient(toxiproxy_url) as client:
        port = free_port()
        client.create_proxy("svc-a", f"127.0.0.1:{port}", url.removeprefix("http://"))
        path = tmp_path / "s.yaml"
        path.write_text(scenario_text(toxiproxy_url, port))
        yield client, path


def drill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DRILL, *args], cwd=REPO, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_recover_all_finds_a_kill_9_run_whose_out_was_anywhere(
    tmp_path: Path, own: tuple[ToxiproxyClient, Path], fresh_state: Path
) -> None:
    from harness.testing.drills import signal_after, start_drill, wait_event

    client, scenario = own
    run_dir = tmp_path / "somewhere" / "else" / "run"
    run_dir.parent.mkdir(parents=True)
    proc = start_drill(scenario, run_dir)
    wait_event(proc, run_dir, "fault.applied")
    code, _ = signal_after(proc, 0.2, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert [t.name for t in client.proxies()["svc-a"].toxics] == ["drill-a-slow"]
    assert [e["run_dir"] for e in registered_runs()] == [str(run_dir.resolve())]

    # An empty reports dir: the run is found through the register alone.
    first = drill("recover", "--all", "--reports-dir", str(tmp_path / "reports"))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "fault a-slow (latency) reverted" in first.stdout
    assert client.proxies()["svc-a"].toxics == [] and active_faults(client.url, None) == []
    assert applied_faults(run_dir / JOURNAL_FILE) == []
    assert registered_runs() == []  # forgotten once nothing is left


@pytest.mark.slow
def test_run_refuses_a_stack_with_a_stray_fault_and_recover_all_names_it(
    tmp_path: Path, own: tuple[ToxiproxyClient, Path], fresh_state: Path
) -> None:
    client, scenario = own
    client.add_toxic("svc-a", "latency", {"latency": 900}, name="drill-left-over")
    refused = drill("run", str(scenario), "--out", str(tmp_path / "run"))
    assert refused.returncode == 3, refused.stdout + refused.stderr
    said = " ".join((refused.stdout + refused.stderr).split())
    assert "drill-left-over" in said and "drill recover --all" in said and "nothing was applied" in said
    assert not (tmp_path / "run" / JOURNAL_FILE).exists()

    # A registered run whose stack still has the stray: recover --all says so and exits non-zero,
    # and removes it with --force.
    register_run(tmp_path / "gone", "state-own", {"key": "k", "runtime": "local", "toxiproxy_url": client.url})
    named = drill("recover", "--all", "--reports-dir", str(tmp_path / "reports"))
    assert named.returncode == 3
    assert "drill-left-over" in named.stderr and "--force" in named.stderr
    assert len(registered_runs()) == 1
    forced = drill("recover", "--all", "--force", "--reports-dir", str(tmp_path / "reports"))
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert client.proxies()["svc-a"].toxics == [] and registered_runs() == []


def test_project_names_are_validated_like_compose_does(tmp_path: Path) -> None:
    from harness.scenario.model import StackRef

    with pytest.raises(ValueError, match="compose project name"):
        StackRef(runtime="compose", project="--file=/etc/passwd")
    assert StackRef(runtime="compose", project="drill-staging_2").project == "drill-staging_2"
    bad = drill("stack", "status", "--runtime", "compose", "--project", "Bad Name")
    assert bad.returncode == 2 and "compose project name" in bad.stderr

