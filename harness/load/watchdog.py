"""The host-stall watchdog: a process of its own that sleeps a short fixed interval on the
monotonic clock and writes down when it woke late, or when the wall clock moved unlike the
monotonic one.

    python -m harness.load.watchdog --run-dir RUN_DIR --parent PID [--max-s S]

Every :data:`INTERVAL_S` it wakes and compares:

- **overshoot** = monotonic time slept - the interval. Above :data:`STALL_BOUND_S` it is a
  ``host_stall``: nothing on the host ran this process for that long, and a probe due then was
  sent late (or a sample was stamped late). Back-to-back overshoots are one stall.
- **clock step** = wall-clock delta - monotonic delta. Above :data:`STEP_BOUND_S` (either way)
  it is a ``clock_step``: an NTP step (or an operator's ``date -s``) moved ``time.time()``, which
  every sample, journal record and onset is stamped with, so any figure that spans the step is
  off by its size.

Troubles go to ``RUN_DIR/health.jsonl`` through :func:`harness.rundir.health.append_trouble`
(instants on the wall clock, as the samples are). Being its own process, it sees a stall of the
whole host even when the harness's own process is the one frozen; it does not see a stall of
the harness's process alone (the prober's lag does: issue 24's intended-send column).

It stops by itself: on SIGTERM/SIGINT, when its parent dies (``getppid`` changes), or after
``--max-s``. The engine starts it before the load and stops it in the rollback
(:class:`Watchdog`). It imports only the standard library and :mod:`harness.rundir.health`.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from harness.rundir import RESERVE_FILE

INTERVAL_S = 0.010
# A stall under one probe interval (50 ms at the default 20 Hz) moves no probe out of its slot
# and is below every figure's resolution; a 10 ms sleep on a busy 2-core host overshoots by a
# few ms (the scheduler's own latency), so 50 ms is far above the noise and at the resolution.
STALL_BOUND_S = 0.050
# NTP slews the clock by at most 500 ppm (5 us per 10 ms tick): anything above 20 ms in one tick is
# a step. 20 ms is under half a probe interval, so a smaller step cannot move a figure by a slot.
STEP_BOUND_S = 0.020
# Reading the two clocks must not straddle a preemption, or the gap between the two reads looks
# like a step: reread when the pair took longer than this.
PAIR_READ_MAX_S = 0.001
MAX_S_DEFAULT = 24 * 3600.0
STOP_TIMEOUT_S = 5.0
LOG_FILE = "watchdog.log"
RESERVE_BYTES = 1 << 20
"""Space held back in the run directory so that, on a full disk, the rollback's journal records,
the write-error trouble and the results still fit (freed by :func:`free_reserve`)."""
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS, errno.EFBIG})


@dataclass(frozen=True)
class Trouble:
    """What the watchdog saw, before it is written (fields of :class:`HarnessTrouble`)."""

    kind: str
    start_s: float
    end_s: float
    magnitude_s: float
    detail: str


@dataclass(frozen=True)
class Tick:
    """One reading of both clocks."""

    mono: float
    wall: float


class Watch:
    """The pure part: fed successive ticks, it returns the troubles to write. A stall is held
    until the first punctual tick after it, so a freeze seen over several late ticks is one record;
    :meth:`finish` returns a stall still held at the end."""

    def __init__(self, interval_s: float = INTERVAL_S, stall_bound_s: float = STALL_BOUND_S,
                 step_bound_s: float = STEP_BOUND_S) -> None:
        self.interval_s = interval_s
        self.stall_bound_s = stall_bound_s
        self.step_bound_s = step_bound_s
        self._stall: list[float] | None = None  # [start, end, overshoot] on the wall clock

    def observe(self, prev: Tick, now: Tick) -> list[Trouble]:
        found: list[Trouble] = []
        slept = now.mono - prev.mono
        overshoot = slept - self.interval_s
        step = (now.wall - prev.wall) - slept
        # Instants on the wall clock as it ran before any step in this tick.
        due = prev.wall + self.interval_s
        woke = prev.wall + slept
        if overshoot > self.stall_bound_s:
            if self._stall is None:
                self._stall = [due, woke, overshoot]
            else:
                self._stall[1] = woke
                self._stall[2] += overshoot
        elif self._stall is not None:
            found.append(self._stall_trouble())
        if abs(step) > self.step_bound_s:
            found.append(Trouble("clock_step", prev.wall, now.wall, abs(step),
                                 f"wall clock stepped {step:+.3f} s against the monotonic clock"))
        return found

    def finish(self) -> list[Trouble]:
        return [self._stall_trouble()] if self._stall is not None else []

    def _stall_trouble(self) -> Trouble:
        assert self._stall is not None
        start, end, overshoot = self._stall
        self._stall = None
        return Trouble("host_stall", start, end, overshoot,
                       f"host stalled {overshoot:.2f} s (watchdog woke {overshoot * 1000:.0f} ms late)")


_CLOCK_GETTIME_SYSCALL = {"x86_64": 228, "aarch64": 113}
_CLOCK_MONOTONIC = 1


def _kernel_monotonic() -> Callable[[], float]:
    """CLOCK_MONOTONIC read through the raw ``clock_gettime`` system call, not libc's wrapper: a
    library preloaded into the drill's processes to fake the time (libfaketime, with which the
    tests step the wall clock for the drill alone) moves every clock libc reports, the monotonic
    one with the wall; the kernel's own cannot be moved, so a step still shows against it.
    Falls back to :func:`time.monotonic` where the call is not known."""
    import ctypes
    import platform

    number = _CLOCK_GETTIME_SYSCALL.get(platform.machine())
    if number is None:
        return time.monotonic

    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ts = Timespec()
        ref = ctypes.byref(ts)

        def read() -> float:
            if libc.syscall(number, _CLOCK_MONOTONIC, ref) != 0:
                return time.monotonic()
            return float(ts.tv_sec) + float(ts.tv_nsec) * 1e-9

        read()
    except (OSError, AttributeError):
        return time.monotonic
    return read


monotonic = _kernel_monotonic()


@dataclass
class Stretch:
    """A stretch of time a level stayed above its bound: when, its peak, and the longest lag
    seen meanwhile."""

    start_s: float
    end_s: float
    peak: float
    lag_s: float


class Above:
    """Readings of a level (Locust's CPU %) fed in time order -> the stretches above ``bound``.
    :meth:`add` returns a stretch once it has ended (the first reading back under the bound);
    :meth:`close` the one still open."""

    def __init__(self, bound: float, period_s: float) -> None:
        self.bound = bound
        self.period_s = period_s
        self._open: Stretch | None = None

    def add(self, at_s: float, value: float, lag_s: float = 0.0) -> Stretch | None:
        if value > self.bound:
            if self._open is None:
                self._open = Stretch(at_s - self.period_s, at_s, value, lag_s)
            else:
                self._open.end_s = at_s
                self._open.peak = max(self._open.peak, value)
                self._open.lag_s = max(self._open.lag_s, lag_s)
            return None
        return self.close()

    def close(self) -> Stretch | None:
        ended, self._open = self._open, None
        return ended


def read_clocks() -> Tick:
    """Both clocks, read close together (reread when a preemption fell between the reads)."""
    for _ in range(5):
        mono = monotonic()
        wall = time.time()
        if monotonic() - mono <= PAIR_READ_MAX_S:
            break
    return Tick(mono, wall)


def record(run_dir: Path, trouble: Trouble, partial: bool = False) -> bool:
    """Append one trouble to ``health.jsonl``; best effort (the disk may be full): False when
    it could not be written."""
    from harness.rundir.health import append_trouble

    try:
        append_trouble(run_dir, trouble.kind, trouble.start_s, trouble.end_s, trouble.magnitude_s,
                       trouble.detail, partial=partial)
    except OSError as exc:
        say(f"drill: could not record {trouble.kind} in health.jsonl ({exc}): {trouble.detail}")
        return False
    return True


def say(line: str) -> None:
    """A line on stderr (a log file in the run directory, which may be the full disk): best effort."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def report_write_error(samples_path: Path, exc: OSError, last_flushed_s: float) -> None:
    """A sample writer's failed write (``GuardedFile``'s ``on_error``): said on stderr (its log)
    and recorded as a ``write_error`` trouble with ``partial=True`` (no PASS or FAIL may rest on
    the data after it), both best effort. ``samples_path`` is ``RUN_DIR/samples/NAME.csv``."""
    from harness.load.samples import write_error_detail

    detail = write_error_detail(samples_path, exc, last_flushed_s)
    say(f"drill: {detail}")
    run_dir = Path(os.path.abspath(samples_path)).parent.parent  # not resolve(): a symlinked file
    record(run_dir, Trouble("write_error", last_flushed_s, time.time(), 0.0, detail), partial=True)


def watch(run_dir: Path, *, parent: int | None = None, max_s: float = MAX_S_DEFAULT,
          interval_s: float = INTERVAL_S, stall_bound_s: float = STALL_BOUND_S,
          step_bound_s: float = STEP_BOUND_S, stop: Callable[[], bool] = lambda: False) -> int:
    """The loop. Returns the number of troubles written. Ends on ``stop()``, when the parent
    (``parent`` pid) is gone, or after ``max_s``."""
    w = Watch(interval_s, stall_bound_s, step_bound_s)
    written = 0
    prev = read_clocks()
    deadline = prev.mono + max_s
    while not stop():
        time.sleep(interval_s)
        now = read_clocks()
        for trouble in w.observe(prev, now):
            written += record(run_dir, trouble)
        prev = now
        if now.mono >= deadline or (parent is not None and os.getppid() != parent):
            break
    for trouble in w.finish():
        written += record(run_dir, trouble)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.load.watchdog", description=__doc__)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--parent", type=int, default=None, help="exit when this process is gone")
    parser.add_argument("--max-s", type=float, default=MAX_S_DEFAULT)
    parser.add_argument("--interval-s", type=float, default=INTERVAL_S)
    args = parser.parse_args(argv)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    written = watch(args.run_dir, parent=args.parent, max_s=args.max_s, interval_s=args.interval_s,
                    stop=lambda: stopping)
    say(f"watchdog: {written} trouble(s) recorded")
    return 0


class Watchdog:
    """The engine's handle: ``start()`` launches the watchdog process for the drill (its own
    session, so a Ctrl-C reaches only the harness), ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, run_dir: Path, *, max_s: float = MAX_S_DEFAULT, interval_s: float = INTERVAL_S) -> None:
        self.run_dir = Path(run_dir)
        self.max_s = max_s
        self.interval_s = interval_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "harness.load.watchdog", "--run-dir", str(self.run_dir),
                "--parent", str(os.getpid()), "--max-s", f"{self.max_s:g}", "--interval-s", f"{self.interval_s:g}"]

    def start(self) -> None:
        with open(self.run_dir / LOG_FILE, "ab") as log:
            self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode


def make_reserve(run_dir: Path, size: int = RESERVE_BYTES) -> None:
    """Hold ``size`` bytes of the run directory's file system back (really allocated, so a full
    disk cannot take them); best effort."""
    path = Path(run_dir) / RESERVE_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except OSError:
        path.unlink(missing_ok=True)


def free_reserve(run_dir: Path) -> bool:
    """Give the reserve back (the disk filled up: the rollback and the results need it).
    True when there was one."""
    try:
        (Path(run_dir) / RESERVE_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def is_write_error(exc: BaseException) -> bool:
    """A full disk, a quota, an I/O error: the run directory can take no more data."""
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


if __name__ == "__main__":
    sys.exit(main())
