"""Run the load for one drill: Locust (headless, in a child process) and the open-loop prober
(another child process), both recording per-request samples into ``RUN_DIR/samples/``.

    with LoadRunner(plan, run_dir) as load:   # start() + wait_ready()
        ...                                   # baseline, fault, recovery
    # stop(): SIGTERM, both flush their files and exit; killed after a deadline otherwise

The harness process never imports locust or gevent (Locust monkey-patches the process it runs
in). The caller stops the children at the end of its period (``stop()``, or ``wait()``); should
it die, they stop by themselves ``run_time_margin_s`` after ``plan.duration_s``. They run in their
own sessions, so a Ctrl-C at the terminal reaches the harness, which then stops them in order.
Files written:

- ``samples/locust.csv``, ``samples/probe.csv``: the samples (``harness/load/samples.py``)
- ``locust.log``, ``prober.log``: the children's stdout and stderr
- ``locust_stats.csv`` (and Locust's other ``--csv`` files): Locust's own rounded statistics

Distributed (``plan.workers`` > 0 or ``plan.master_bind``): the Locust child is a master
(``--master --expect-workers``) and ``plan.workers`` local ``locust --worker`` children, each in
its own session, attach to it; ``drill worker`` attaches more from other machines. The workers
ship their samples to the master, which writes them all into ``samples/locust.csv`` (with a
``worker`` column) on its own clock; ``locust-workers.json`` records each worker's measured clock
offset and its uncertainty (see ``locustfile.py``). Logs: ``locust-worker-wN.log``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from harness.errors import DrillError
from harness.load.plan import LoadPlan, split_host_port
from harness.load.samples import EXIT_WRITE_ERROR, LOCUST_FILE, PROBE_FILE, SAMPLES_DIR
from harness.rundir import LOAD_WORKERS_FILE

HARNESS_LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RUN_TIME_MARGIN_S = 5.0
STOP_GRACE_S = 10.0
LOG_TAIL_CHARS = 2000
EXPECT_WORKERS_MAX_WAIT_S = 30


class LoadError(DrillError):
    """The load generators could not be started or did not run (exit 3). The message quotes the
    end of the child's log file, which holds the cause."""


@dataclass(frozen=True)
class LoadOutcome:
    """How the load children ended. A return code is None when that child was not started.

    ``killed`` lists the children that ignored SIGTERM and were killed (their last rows may be
    missing).
    """

    locust_returncode: int | None
    prober_returncode: int | None
    killed: tuple[str, ...]
    locust_samples: Path
    probe_samples: Path
    worker_returncodes: tuple[int | None, ...] = ()


class LoadRunner:
    """Locust plus the prober for one plan, writing into ``run_dir``.

    ``start()`` launches both children and returns at once; ``wait_ready()`` blocks until both
    have opened their sample files (Locust takes a second or two to import). ``stop()`` ends them
    now; ``wait()`` runs out the plan's ``duration_s`` and then stops them. Both return a :class:`LoadOutcome`.
    """

    def __init__(self, plan: LoadPlan, run_dir: Path, *, run_time_margin_s: float = RUN_TIME_MARGIN_S) -> None:
        self.plan = plan
        self.run_dir = Path(run_dir).resolve()  # children run with cwd=run_dir
        self.run_time_margin_s = run_time_margin_s
        self.locust_samples = self.run_dir / SAMPLES_DIR / LOCUST_FILE
        self.probe_samples = self.run_dir / SAMPLES_DIR / PROBE_FILE
        self.locust_log = self.run_dir / "locust.log"
        self.prober_log = self.run_dir / "prober.log"
        self.locust_stats_prefix = self.run_dir / "locust"
        self._locust: subprocess.Popen[bytes] | None = None
        self._prober: subprocess.Popen[bytes] | None = None
        self._workers: list[subprocess.Popen[bytes]] = []
        self.workers_file = self.run_dir / LOAD_WORKERS_FILE
        self.master_host, self.master_port = (
            split_host_port(plan.master_bind) if plan.master_bind else ("127.0.0.1", 0)
        )
        self._started_at: float | None = None
        self._ready_at: float | None = None

    @property
    def locust_enabled(self) -> bool:
        return self.plan.users > 0

    @property
    def prober_enabled(self) -> bool:
        return self.plan.probe_rate_hz > 0

    @property
    def locust_pid(self) -> int | None:
        return self._locust.pid if self._locust else None

    @property
    def prober_pid(self) -> int | None:
        return self._prober.pid if self._prober else None

    @property
    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    def process_groups(self) -> dict[str, int | None]:
        """Every child's process group (each leads its own session), named, for the journal:
        `drill recover` stops what a kill -9'd harness left running."""
        groups: dict[str, int | None] = {"locust": self.locust_pid, "prober": self.prober_pid}
        groups.update({f"locust-worker-w{i}": pid for i, pid in enumerate(self.worker_pids, start=1)})
        return groups

    @property
    def is_running(self) -> bool:
        """True while either child is still running."""
        return any(p is not None and p.poll() is None for p in (self._locust, self._prober))

    def write_failures(self) -> list[str]:
        """The children that exited because they could not write their samples (a full disk, an
        I/O error: exit ``EXIT_WRITE_ERROR``), named as in :meth:`process_groups`."""
        children = [("locust", self._locust), ("prober", self._prober),
                    *((f"locust-worker-w{i}", w) for i, w in enumerate(self._workers, start=1))]
        return [name for name, proc in children if proc is not None and proc.poll() == EXIT_WRITE_ERROR]

    def locust_command(self) -> list[str]:
        """The Locust command line (headless, stops by itself after duration_s + margin)."""
        plan = self.plan
        files = [str(HARNESS_LOCUSTFILE)]
        if plan.locustfile is not None:
            files.append(str(Path(plan.locustfile).resolve()))
        run_time_s = math.ceil(plan.duration_s + self.run_time_margin_s)
        return [
            sys.executable, "-m", "locust",
            "-f", ",".join(files),
            "--headless",
            "--host", plan.host,
            "--users", str(plan.users),
            "--spawn-rate", f"{plan.spawn_rate:g}",
            "--run-time", f"{run_time_s}s",
            # Let requests in flight at stop finish (they are bounded by timeout_s) so they are recorded.
            "--stop-timeout", f"{math.ceil(plan.timeout_s)}s",
            "--only-summary",
            "--loglevel", "WARNING",
            "--csv", str(self.locust_stats_prefix),
            # Failed requests are the point of a drill, not a reason for Locust to exit non-zero.
            "--exit-code-on-error", "0",
            *self._master_options(),
        ]  # fmt: skip

    def _master_options(self) -> list[str]:
        if not self.plan.distributed:
            return []
        return [
            "--master",
            "--master-bind-host", self.master_host,
            "--master-bind-port", str(self.master_port),
            "--expect-workers", str(self.plan.expected_workers),
            "--expect-workers-max-wait", str(EXPECT_WORKERS_MAX_WAIT_S),
        ]  # fmt: skip

    def prober_command(self) -> list[str]:
        """The prober command line. Its plan's duration carries the same margin as Locust's
        run time: the caller's clock starts once Locust is up, so a prober bounded at exactly
        ``duration_s`` from its own (earlier) start would fall silent before the period ends."""
        bounded = dataclasses.replace(self.plan, duration_s=self.plan.duration_s + self.run_time_margin_s)
        return [
            sys.executable, "-m", "harness.load.prober",
            "--plan", bounded.to_json(),
            "--out", str(self.probe_samples),
        ]  # fmt: skip

    def start(self) -> None:
        """Launch the enabled children. Raises LoadError if already started."""
        if self._started_at is not None:
            raise LoadError("LoadRunner.start() called twice; create a new LoadRunner per run")
        (self.run_dir / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
        self._started_at = time.monotonic()
        if self.locust_enabled:
            if self.plan.distributed and self.master_port == 0:
                self.master_port = _free_port(self.master_host)
            env = dict(os.environ)
            env["DRILL_LOAD_PLAN"] = self.plan.to_json()
            env["DRILL_LOCUST_SAMPLES"] = str(self.locust_samples)
            env["DRILL_RUN_DIR"] = str(self.run_dir)  # health.jsonl: write errors, CPU above 90 %
            if self.plan.distributed:
                env["DRILL_LOCUST_WORKERS"] = str(self.workers_file)
            self._locust = self._spawn(self.locust_command(), self.locust_log, env)
            # Local workers reach the master on loopback whatever address it binds.
            connect_host = "127.0.0.1" if self.master_host in ("0.0.0.0", "::", "") else self.master_host
            for i in range(1, self.plan.workers + 1):
                worker_env = dict(os.environ)
                worker_env["DRILL_LOAD_PLAN"] = self.plan.to_json()
                worker_env["DRILL_WORKER_ID"] = f"w{i}"
                worker_env["DRILL_RUN_DIR"] = str(self.run_dir)
                command = locust_worker_command(self.plan, connect_host, self.master_port)
                self._workers.append(self._spawn(command, self.run_dir / f"locust-worker-w{i}.log", worker_env))
        if self.prober_enabled:
            self._prober = self._spawn(self.prober_command(), self.prober_log, dict(os.environ))

    def _spawn(self, command: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        env["PYTHONUNBUFFERED"] = "1"
        with open(log_path, "ab") as log:
            # cwd = run_dir so Locust does not pick up a stray locust.conf / pyproject.toml.
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
                env=env,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Block until every started child has created its sample file.

        Raises LoadError (quoting the child's log) if a child exits first or the deadline passes;
        the other child is stopped before raising.
        """
        waiting = [
            (name, proc, path, log)
            for name, proc, path, log in (
                ("locust", self._locust, self.locust_samples, self.locust_log),
                ("prober", self._prober, self.probe_samples, self.prober_log),
            )
            if proc is not None
        ]
        deadline = time.monotonic() + timeout_s
        while waiting:
            for item in list(waiting):
                name, proc, path, log = item
                if path.exists() and path.stat().st_size > 0:
                    waiting.remove(item)
                elif proc.poll() is not None:
                    self.stop()
                    raise LoadError(
                        f"{name} exited with code {proc.returncode} before it started recording; "
                        f"see {log}:\n{_log_tail(log)}"
                    )
            if waiting and time.monotonic() > deadline:
                self.stop()
                names = ", ".join(item[0] for item in waiting)
                raise LoadError(
                    f"{names} did not start recording within {timeout_s:g}s; see "
                    + ", ".join(str(item[3]) for item in waiting)
                )
            if waiting:
                time.sleep(0.05)
        self._ready_at = time.monotonic()

    def stop(self, timeout_s: float | None = None) -> LoadOutcome:
        """End both children now: SIGTERM (they flush their files), then SIGKILL after
        ``timeout_s`` (default: the plan's timeout_s + 10 s, so Locust's stop-timeout fits)."""
        if timeout_s is None:
            timeout_s = self.plan.timeout_s + STOP_GRACE_S
        deadline = time.monotonic() + timeout_s
        for proc in (self._locust, self._prober):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        if self._workers:
            # The master quits its workers itself and takes their last samples; only then are
            # workers still running told to stop.
            if self._locust is not None:
                try:
                    self._locust.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            for worker in self._workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
        return self._reap(deadline)

    def wait(self, timeout_s: float | None = None) -> LoadOutcome:
        """Run the load period out, then :meth:`stop`: block until ``duration_s`` has passed
        since the load was ready (:meth:`wait_ready`; else since :meth:`start`), or for
        ``timeout_s`` when given, or until both children have ended by themselves."""
        if timeout_s is None:
            began = self._ready_at or self._started_at or time.monotonic()
            timeout_s = max(0.0, began + self.plan.duration_s - time.monotonic())
        deadline = time.monotonic() + timeout_s
        while self.is_running and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.stop()

    def _reap(self, deadline: float) -> LoadOutcome:
        killed: list[str] = []
        workers = [(f"locust-worker-w{i}", w) for i, w in enumerate(self._workers, start=1)]
        for name, proc in [("locust", self._locust), ("prober", self._prober), *workers]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed.append(name)
        return LoadOutcome(
            locust_returncode=self._locust.returncode if self._locust else None,
            prober_returncode=self._prober.returncode if self._prober else None,
            killed=tuple(killed),
            locust_samples=self.locust_samples,
            probe_samples=self.probe_samples,
            worker_returncodes=tuple(w.returncode for w in self._workers),
        )

    def __enter__(self) -> LoadRunner:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def locust_worker_command(plan: LoadPlan, master_host: str, master_port: int) -> list[str]:
    """A Locust worker attached to the master at ``master_host:master_port``; it needs
    ``DRILL_LOAD_PLAN`` (and optionally ``DRILL_WORKER_ID``) in its environment."""
    files = [str(HARNESS_LOCUSTFILE)]
    if plan.locustfile is not None:
        files.append(str(Path(plan.locustfile).resolve()))
    return [
        sys.executable, "-m", "locust",
        "-f", ",".join(files),
        "--worker",
        "--master-host", master_host,
        "--master-port", str(master_port),
        "--loglevel", "WARNING",
    ]  # fmt: skip


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _log_tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return text[-LOG_TAIL_CHARS:]
