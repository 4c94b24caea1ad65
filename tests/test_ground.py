"""The harness's own ground (issue 24): the host-stall watchdog, wall-clock steps, sample
writers on a full disk, the Docker daemon's identity. Pure parts with synthetic ticks; the rest
for real: a SIGSTOPped watchdog process, libfaketime stepping the clock of one process, /dev/full
and a size-limited tmpfs as the disk."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.load.samples import EXIT_WRITE_ERROR, GuardedFile
from harness.load.watchdog import STALL_BOUND_S, STEP_BOUND_S, Tick, Watch, free_reserve, make_reserve
from harness.rundir.health import read_health
from harness.testing.parts import alive, faketime_env, require

# --- pure: the watch over synthetic ticks ------------------------------------------------------

def test_punctual_ticks_record_nothing() -> None:
    w = Watch(interval_s=0.01)
    ticks = [Tick(100.0 + i * 0.0102, 1e9 + i * 0.0102) for i in range(50)]
    assert [t for a, b in zip(ticks, ticks[1:], strict=False) for t in w.observe(a, b)] == []
    assert w.finish() == []


def test_late_ticks_in_a_row_are_one_stall_with_start_and_length() -> None:
    w = Watch(interval_s=0.01)
    t0 = Tick(100.0, 1e9)
    t1 = Tick(100.41, 1e9 + 0.41)      # 0.40 s late
    t2 = Tick(100.72, 1e9 + 0.72)      # 0.30 s late again: the same freeze
    t3 = Tick(100.73, 1e9 + 0.73)      # punctual: the stall is written now
    assert w.observe(t0, t1) == [] and w.observe(t1, t2) == []
    [stall] = w.observe(t2, t3)
    assert stall.kind == "host_stall"
    assert stall.start_s == pytest.approx(1e9 + 0.01) and stall.end_s == pytest.approx(1e9 + 0.72)
    assert stall.magnitude_s == pytest.approx(0.70)
    assert "0.70 s" in stall.detail


def test_a_stall_under_the_bound_is_noise() -> None:
    w = Watch(interval_s=0.01)
    late = 0.01 + STALL_BOUND_S * 0.9
    assert w.observe(Tick(0.0, 5.0), Tick(late, 5.0 + late)) == [] and w.finish() == []


def test_wall_clock_steps_either_way_are_clock_steps() -> None:
    w = Watch(interval_s=0.01)
    [ahead] = w.observe(Tick(0.0, 1e9), Tick(0.01, 1e9 + 2.01))
    [back] = w.observe(Tick(0.01, 1e9 + 2.01), Tick(0.02, 1e9 + 1.52))
    assert (ahead.kind, back.kind) == ("clock_step", "clock_step")
    assert ahead.magnitude_s == pytest.approx(2.0) and "+2.000 s" in ahead.detail
    assert back.magnitude_s == pytest.approx(0.5) and "-0.500 s" in back.detail
    # NTP's slew (500 ppm at most) stays far under the bound
    assert w.observe(Tick(1.0, 7.0), Tick(1.01, 7.01 + 0.01 * 500e-6)) == []
    assert STEP_BOUND_S > 0.01 * 500e-6


def test_a_stall_still_open_at_the_end_is_written() -> None:
    w = Watch(interval_s=0.01)
    assert w.observe(Tick(0.0, 1.0), Tick(1.0, 2.0)) == []
    [stall] = w.finish()
    assert stall.kind == "host_stall" and stall.magnitude_s == pytest.approx(0.99)


# --- the write path: a real full device ---------------------------------------------------------

def test_guarded_file_reports_a_full_device_once_and_drops_the_rest() -> None:
    seen: list[tuple[int | None, float]] = []
    out = GuardedFile(open("/dev/full", "w", buffering=16), lambda exc, at: seen.append((exc.errno, at)))  # noqa: SIM115
    out.write("start,end\n" * 10)  # bigger than the buffer: the write itself fails
    out.write("more\n")
    out.flush()
    out.close()
    assert [e for e, _ in seen] == [errno.ENOSPC]
    assert out.failed is not None and out.closed


def test_reserve_is_really_allocated_and_freed(tmp_path: Path) -> None:
    make_reserve(tmp_path, 64 * 1024)
    reserve = tmp_path / ".reserve"
    assert reserve.stat().st_blocks * 512 >= 64 * 1024
    assert free_reserve(tmp_path) and not reserve.exists()
    assert not free_reserve(tmp_path)


def test_prober_on_a_full_disk_exits_74_and_records_where_its_samples_end(tmp_path: Path) -> None:
    """The prober's samples file is /dev/full (a symlink in the run directory): the first flush
    fails; the prober stops and exits EXIT_WRITE_ERROR, and health.jsonl holds a partial
    write_error naming the file and where its data ends."""
    from harness.load.plan import LoadPlan, RequestSpec

    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "probe.csv").symlink_to("/dev/full")
    plan = LoadPlan(host="http://127.0.0.1:9", request=RequestSpec(), users=0, spawn_rate=1, probe_rate_hz=20,
                    duration_s=30, timeout_s=1)
    proc = subprocess.run(
        [sys.executable, "-m", "harness.load.prober", "--plan", plan.to_json(),
         "--out", str(tmp_path / "samples" / "probe.csv")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == EXIT_WRITE_ERROR, proc.stderr
    [trouble] = read_health(tmp_path)
    assert trouble.kind == "write_error" and trouble.partial
    assert "samples/probe.csv: write failed (No space left on device); its samples end at" in trouble.detail
    assert "Traceback" not in proc.stderr


# --- the watchdog process, for real -------------------------------------------------------------

def _start_watchdog(run_dir: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "harness.load.watchdog", "--run-dir", str(run_dir),
                             "--max-s", "60"], env=env, stderr=subprocess.PIPE)
    time.sleep(1.0)  # imported and ticking
    assert proc.poll() is None
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


def test_watchdog_records_a_real_stall_of_its_process(tmp_path: Path) -> None:
    """Frozen for real (SIGSTOP) for 0.3 s: on resume it has overslept, and writes a host_stall
    whose start and end bracket the freeze."""
    proc = _start_watchdog(tmp_path)
    try:
        stopped_at = time.time()
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGCONT)
        resumed_at = time.time()
        time.sleep(0.3)
    finally:
        _stop(proc)
    stalls = [t for t in read_health(tmp_path) if t.kind == "host_stall"]
    assert len(stalls) == 1, stalls
    [stall] = stalls
    assert stall.start_s <= resumed_at and stall.end_s >= stopped_at
    assert stall.magnitude_s > STALL_BOUND_S
    assert not stall.partial


def test_watchdog_ends_when_its_parent_dies(tmp_path: Path) -> None:
    """Started by a process that then exits (a harness killed -9): it notices within ticks."""
    script = ("import sys; from pathlib import Path; from harness.load.watchdog import Watchdog; "
              "w = Watchdog(Path(sys.argv[1])); w.start(); print(w.pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                         timeout=30, check=True)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    assert not alive(pid), "the watchdog outlived its parent"


def test_watchdog_sees_a_wall_clock_step_of_its_own_process(tmp_path: Path) -> None:
    """libfaketime steps the clock of the watchdog alone by +2 s (never the machine's): a
    clock_step of about 2 s, and no stall (the kernel's monotonic clock did not move)."""
    stamp = tmp_path / "faketime"
    proc = _start_watchdog(tmp_path, env=faketime_env(stamp))
    try:
        stamp.write_text("+2\n")
        time.sleep(0.5)
    finally:
        _stop(proc)
    troubles = read_health(tmp_path)
    steps = [t for t in troubles if t.kind == "clock_step"]
    assert len(steps) == 1, troubles
    assert steps[0].magnitude_s == pytest.approx(2.0, abs=0.05)
    assert "+2.0" in steps[0].detail
    assert not [t for t in troubles if t.kind == "host_stall" and t.magnitude_s > 1.0]


# --- the Docker daemon's identity ---------------------------------------------------------------

@pytest.mark.docker
def test_daemon_id_is_the_dockerd_answering_on_the_socket() -> None:
    from harness.engine.ground import daemon_id

    require(shutil.which("docker") is not None and Path("/var/run/docker.sock").exists(), "Docker",
            "run scripts/docker-setup")
    found = daemon_id()
    assert found is not None
    assert Path(f"/proc/{found.pid}/comm").read_text().strip() == "dockerd"
    assert daemon_id() == found  # the same daemon reads the same
    assert daemon_id("/nonexistent.sock") is None


def _listen(path: Path) -> subprocess.Popen[bytes]:
    """A process listening on a unix socket at ``path`` (a stand-in daemon), ready when it returns."""
    code = ("import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8); "
            "print('up', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    return proc


def test_daemon_watch_tells_a_restarted_daemon_from_the_same_one(tmp_path: Path) -> None:
    """The Docker daemon's identity is the process answering on its socket: a daemon that went
    away, then one started again on the same socket, are each a docker_restart trouble (partial:
    its containers, and their faults, may have gone with it). Real processes and sockets; the
    shared dockerd is not restarted here (the compose stack of other tests runs on it)."""
    from harness.engine.ground import DaemonWatch

    sock = tmp_path / "d.sock"
    first = _listen(sock)
    try:
        watch = DaemonWatch(tmp_path, str(sock))
        assert watch.first is not None and watch.first.pid == first.pid
        assert watch.moved() is None
    finally:
        first.kill()
        first.wait()
    gone = watch.moved()
    assert gone is not None and "stopped answering" in gone.detail
    sock.unlink()
    second = _listen(sock)
    try:
        again = watch.moved()
    finally:
        second.kill()
        second.wait()
    assert again is not None and f"restarted (pid {first.pid} -> {second.pid})" in again.detail
    troubles = read_health(tmp_path)
    assert [t.kind for t in troubles] == ["docker_restart", "docker_restart"]
    assert all(t.partial for t in troubles)


# --- Locust's CPU above its own warning bound ------------------------------------------------------

def test_above_turns_readings_into_stretches() -> None:
    from harness.load.watchdog import Above

    above = Above(90.0, 1.0)
    assert above.add(10.0, 50.0) is None
    assert above.add(11.0, 95.0, lag_s=0.02) is None
    assert above.add(12.0, 99.0, lag_s=0.30) is None
    ended = above.add(13.0, 40.0)
    assert ended is not None
    assert (ended.start_s, ended.end_s, ended.peak, ended.lag_s) == (10.0, 12.0, 99.0, 0.30)
    assert above.add(14.0, 90.0) is None  # at the bound is not above it
    assert above.add(15.0, 91.0) is None
    still_open = above.close()
    assert still_open is not None and (still_open.start_s, still_open.end_s) == (14.0, 15.0)
    assert above.close() is None


BURN_LOCUSTFILE = '''
import time
from locust import User, constant, task

class Burn(User):
    """Spins the CPU in its task: the Locust process runs at ~100 % of a core."""
    wait_time = constant(0)

    @task
    def burn(self):
        until = time.perf_counter() + 0.05
        while time.perf_counter() < until:
            pass
'''


@pytest.mark.slow
def test_a_locust_process_above_90_percent_cpu_is_a_worker_cpu_trouble(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real Locust whose user spins the CPU (a user's own locustfile) for 4 s: the run lists a
    worker_cpu stretch (written at quit, still open). Sends no request anywhere. The bound is
    lowered to 40 % here: the suite's other worker shares the 2 cores, so a spinning process is
    not sure to get 90 % of one (a full drill run beside it measured less)."""
    from harness.load import LoadPlan, LoadRunner

    monkeypatch.setenv("DRILL_LOCUST_CPU_BOUND_PERCENT", "40")

    burn = tmp_path / "burn.py"
    burn.write_text(BURN_LOCUSTFILE)
    plan = LoadPlan(host="http://127.0.0.1:9", users=1, spawn_rate=1, duration_s=4, locustfile=burn,
                    probe_rate_hz=0)
    runner = LoadRunner(plan, tmp_path / "run")
    runner.start()
    try:
        outcome = runner.wait(timeout_s=60)
    finally:
        runner.stop()
    assert outcome.locust_returncode == 0, (tmp_path / "run" / "locust.log").read_text()[-2000:]
    troubles = [t for t in read_health(tmp_path / "run") if t.kind == "worker_cpu"]
    assert troubles, (tmp_path / "run" / "locust.log").read_text()[-2000:]
    assert "above 40 % CPU" in troubles[0].detail and not troubles[0].partial


def test_load_generators_on_a_full_disk_exit_74_and_the_runner_names_them(tmp_path: Path) -> None:
    """Both sample files are /dev/full: Locust and the prober each record a partial write_error
    and exit EXIT_WRITE_ERROR at their first flush; ``write_failures()`` names them, which is how
    the engine learns of a full disk without reading it. Requests go to a closed port only."""
    from harness.load import LoadPlan, LoadRunner

    run_dir = tmp_path / "run"
    (run_dir / "samples").mkdir(parents=True)
    for name in ("locust.csv", "probe.csv"):
        (run_dir / "samples" / name).symlink_to("/dev/full")
    plan = LoadPlan(host="http://127.0.0.1:9", users=1, spawn_rate=1, duration_s=20, probe_rate_hz=20, timeout_s=1)
    runner = LoadRunner(plan, run_dir)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while runner.is_running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(runner.write_failures()) == ["locust", "prober"], (run_dir / "locust.log").read_text()[-2000:]
    finally:
        runner.stop()
    troubles = read_health(run_dir)
    assert sorted(t.detail.split(":")[0] for t in troubles) == ["samples/locust.csv", "samples/probe.csv"]
    assert all(t.kind == "write_error" and t.partial for t in troubles)
