"""One drill, phase by phase: preflight, baseline, inject, observe, revert, recover, verdict.

The engine owns the order of things and the promise that no fault outlives the drill: every fault
is journaled before it is applied, and every applied fault is reverted on every exit path
(normal end, error, Ctrl-C, SIGTERM) in reverse order, with a watchdog that reverts a fault at its
deadline even when the engine itself is stuck.
"""

from __future__ import annotations

import getpass
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.markup import escape

from harness import __version__
from harness.errors import (
    EXIT_ABORTED,
    EXIT_FAILED,
    EXIT_PASSED,
    AbortedError,
    DrillError,
    FaultError,
    InternalError,
    ScenarioError,
    StackError,
)
from harness.faults import Fault, FaultContext, Onset, build_fault
from harness.journal import JOURNAL_NAME, Journal
from harness.load.stopwatch import StopTrip, StopWatch
from harness.metrics.checks import ConditionTrip
from harness.metrics.drill import MetricsWatch, open_metrics_watch
from harness.scenario import LoadedScenario, load_scenario
from harness.scenario.model import FaultSpec, RequestSpec

WATCHDOG_GRACE_S = 5.0
TICK_S = 0.05
# How often the stop condition is evaluated: with the sample files flushed every 0.2 s, the first
# revert call follows the condition holding within about 0.3 s (goal: within 1 s).
STOP_CHECK_S = 0.1
Say = Callable[[str], None]


@dataclass
class RunResult:
    """What a drill produced: its directory, verdict, exit code and the results.json content."""

    run_dir: Path
    verdict: str
    exit_code: int
    results: dict[str, Any]
    abort_reason: str | None = None

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"


@dataclass
class _Active:
    """A fault the engine drives, with its schedule and what happened to it."""

    spec: FaultSpec
    fault: Fault
    fault_id: str
    apply_at: float = 0.0
    revert_at: float = 0.0
    onset: Onset | None = None
    reverted_at: float | None = None
    apply_started: bool = False
    targets: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    watchdog: threading.Timer | None = None


def new_run_dir(scenario_name: str, reports_dir: Path = Path("reports")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return reports_dir / scenario_name / f"{stamp}-{secrets.token_hex(3)}"


class _Signals:
    """SIGINT/SIGTERM become AbortedError while the drill runs; during rollback they are explained."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.previous: dict[int, Any] = {}
        self.rolling_back = False
        self.received: str | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.rolling_back:
            self.say(
                f"[yellow]{name} received while the drill cleans up (faults are being removed, then "
                "results written): please wait. If the harness is killed now, run `drill recover "
                "--all` to finish the cleanup."
            )
            return
        self.received = name
        raise AbortedError(f"interrupted by {name}", reason=f"signal:{name}")

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()


class Drill:
    """Runs one scenario once. Use :func:`run_drill` unless you need the pieces."""

    def __init__(
        self,
        loaded: LoadedScenario,
        run_dir: Path,
        *,
        runtime: str | None = None,
        say: Say | None = None,
        stack_key: str | None = None,
    ) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.run_dir = Path(run_dir).resolve()
        self.runtime_kind = runtime or self.spec.stack.runtime
        self.say: Say = say or (lambda text: None)
        self.journal: Journal | None = None
        self.stack: Any = None
        self.stack_started = False
        self.toxiproxy: Any = None
        self.proxies_created: list[str] = []
        self.active: list[_Active] = []
        self.load: Any = None
        self.capacity: Any = None
        self.metrics: MetricsWatch | None = None  # issue 15: Prometheus steady state, stop_when, metrics
        self.phases: dict[str, list[float]] = {}
        self.abort_reason: str | None = None
        self.cleanup: dict[str, Any] = {"ok": False, "toxics_left": None, "containers_not_running": None}
        self.environment: dict[str, Any] = {}
        self.started_at = time.time()
        self._revert_lock = threading.Lock()
        self._first_revert_call_at: float | None = None
        self._abort_said = False
        self._down_at_start: set[str] = set()
        self.stack_key = stack_key or f"run {self.run_dir}"

    # --- public ------------------------------------------------------------------------------
    def run(self) -> RunResult:
        from harness.state import register_run

        # Registered before anything is applied, so `drill recover --all` finds this run after a
        # kill -9 wherever its directory is.
        register_run(self.run_dir, self.spec.name, self._stack_record())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "scenario.yaml").write_text(self.loaded.text, encoding="utf-8")
        self.journal = Journal(self.run_dir / JOURNAL_NAME)
        self.journal.write(
            "run.start",
            run_id=self.run_dir.name,
            scenario=self.spec.name,
            scenario_path=str(self.loaded.path),
            scenario_sha256=self.loaded.sha256,
            run_dir=str(self.run_dir),
            user=_user(),
            host=socket.gethostname(),
            drill_version=__version__,
            pid=os.getpid(),
        )
        signals = _Signals(self.say)
        signals.install()
        bad_input: ScenarioError | None = None
        try:
            self._execute()
        except ScenarioError as exc:
            bad_input = exc
            self.abort_reason = f"bad input: {exc}"
        except AbortedError as exc:
            self.abort_reason = str(exc)
        except (StackError, FaultError) as exc:
            self.abort_reason = f"{type(exc).__name__}: {exc}"
        except DrillError as exc:
            self.abort_reason = str(exc)
        except Exception as exc:  # an infrastructure failure still rolls back and reports
            saved = write_traceback(self.run_dir, exc)
            self.abort_reason = f"internal error: {type(exc).__name__}: {exc} (traceback in {saved})"
            self.journal.write("run.error", error=f"{type(exc).__name__}: {exc}", traceback_file=saved.name)
        finally:
            signals.rolling_back = True
            try:
                self._save_stack_events()
                self._save_metrics()
            finally:  # nothing about the stack's log may keep a fault applied
                self._rollback()
        if not self.abort_reason and self._cleanup_doubts():
            self.abort_reason = ("the rollback could not verify that everything was put back ("
                                 + ", ".join(self._cleanup_doubts()) + "); run `drill recover --all`")
        # Until run() returns, a signal is explained, not obeyed: faults are already reverted and
        # the figures are being written.
        try:
            if self.abort_reason:
                self.journal.write("run.aborted", reason=self.abort_reason)
                if not self._abort_said:
                    self.say(f"[red]aborted:[/red] {escape(self.abort_reason)}")
            self.journal.write("run.finished")
            if bad_input is not None and not self._any_fault_applied():
                self.journal.write("run.end", verdict="bad_input")
                self._unregister_when_clean()
                raise bad_input
            self._unregister_when_clean()
            try:
                result = self._finish()
            except DrillError as exc:  # e.g. samples a load generator wrote out of range: not bad input
                self.journal.write("run.error", error=str(exc))
                raise InternalError(f"the drill ran and was rolled back, but its results could not be "
                                    f"computed: {exc}") from None
            except Exception as exc:  # the faults are reverted: say where the traceback went
                saved = write_traceback(self.run_dir, exc)
                self.journal.write("run.error", error=f"{type(exc).__name__}: {exc}", traceback_file=saved.name)
                raise InternalError(
                    f"internal error while writing the results ({type(exc).__name__}); faults were "
                    f"rolled back; traceback in {saved}", saved
                ) from None
            return result
        finally:
            signals.restore()
            self.journal.close()

    def _stack_record(self) -> dict[str, Any]:
        """How `drill recover --all` reaches this run's stack again."""
        stack = self.spec.stack
        return {
            "key": self.stack_key,
            "runtime": self.runtime_kind,
            "file": str(stack.file) if stack.file else None,
            "project": (stack.project or "drill-staging") if self.runtime_kind == "compose" else None,
            "toxiproxy_url": self.spec.toxiproxy.url if self.spec.toxiproxy else None,
            "hooks": [f.target.hook for f in self.spec.faults if f.target.hook],
        }

    def _unregister_when_clean(self) -> None:
        """A run stays registered (for `drill recover --all`) until nothing of it is left applied."""
        from harness.journal import applied_faults
        from harness.state import unregister_run

        assert self.journal is not None
        left = applied_faults(self.journal.path, lenient=True)
        if not left and not self._cleanup_doubts():
            unregister_run(self.run_dir)
        else:
            self.say("[red]something may still be applied: run `drill recover --all`[/red]")

    def _cleanup_doubts(self) -> list[str]:
        """What the rollback's own check found still applied or not running (empty when clean)."""
        return [f"{key}: {', '.join(map(str, self.cleanup[key]))}"
                for key in ("faults_not_reverted", "hook_faults_active", "containers_not_running")
                if self.cleanup.get(key)]

    def _any_fault_applied(self) -> bool:
        return any(a.apply_started for a in self.active)

    # --- phases ------------------------------------------------------------------------------
    def _execute(self) -> None:
        from harness.runtime import open_stack

        assert self.journal is not None
        self.stack = open_stack(self.spec.stack, self.run_dir, self.runtime_kind)
        from harness.state import update_run

        update_run(self.run_dir, toxiproxy_url=getattr(self.stack, "toxiproxy_url", None))
        self._check_before_start()
        self.say(f"starting stack ({self.runtime_kind})")
        self.journal.write("stack.starting", runtime=self.runtime_kind, file=str(self.spec.stack.file or ""))
        # A start that fails stops what it started itself, so only a started stack is ours to stop.
        endpoints = self.stack.start() or {}
        self.stack_started = True
        self.journal.write("stack.started", endpoints=endpoints, **_pids(self.stack))
        self.environment = self._environment()
        self._connect_toxiproxy()
        self.journal.write("run.environment", environment=self.environment)
        self._create_proxies()
        self._build_faults()
        self._preflight()
        self.metrics = open_metrics_watch(self.spec, self.loaded.path, self.stack, self.journal, self.say)
        if self.metrics is not None:
            self.metrics.preflight()
        self._drive()

    def _check_before_start(self) -> None:
        """Input checks that need no stack: network faults need a Toxiproxy somewhere."""
        has_toxiproxy = self.spec.toxiproxy is not None or getattr(self.stack, "toxiproxy_url", None)
        for i, f in enumerate(self.spec.faults):
            if f.target.proxy and not has_toxiproxy:
                raise ScenarioError(
                    f"{self.loaded.path} faults[{i}] ({f.name}): acts on proxy {f.target.proxy!r} "
                    "but no Toxiproxy is known: add `toxiproxy: {url: http://127.0.0.1:8474}` "
                    "or use a stack file that starts one"
                )

    def _connect_toxiproxy(self) -> None:
        url = self.spec.toxiproxy.url if self.spec.toxiproxy else getattr(self.stack, "toxiproxy_url", None)
        if not url:
            return
        from harness.toxiproxy import ToxiproxyClient

        self.toxiproxy = ToxiproxyClient(url)
        version = self.toxiproxy.version()
        self.environment.setdefault("tools", {})["toxiproxy"] = version
        self.environment["toxiproxy_url"] = url
        self.journal.write("toxiproxy.connected", url=url, version=version)

    def _create_proxies(self) -> None:
        for p in self.spec.proxies:
            if self.toxiproxy.get_proxy(p.name) is not None:
                raise ScenarioError(
                    f"{self.loaded.path} proxies: a proxy named {p.name!r} already exists on "
                    f"{self.toxiproxy.url}; drill creates and deletes the proxies it declares, so "
                    "remove it (toxiproxy-cli delete) or drop it from `proxies:` and name it in faults"
                )
            self.journal.write(
                "proxy.intent", proxy=p.name, listen=p.listen, upstream=p.upstream,
                undo={"kind": "proxy_created", "toxiproxy_url": self.toxiproxy.url, "proxy": p.name},
            )
            # Listed before the call: a signal during it must still get the proxy deleted.
            self.proxies_created.append(p.name)
            self.toxiproxy.create_proxy(p.name, p.listen, p.upstream)
            self.journal.write("proxy.created", proxy=p.name)

    def _build_faults(self) -> None:
        extra = {"pool_url": self.spec.capacity.pool_url} if self.spec.capacity else {}
        ctx = FaultContext(journal=self.journal, toxiproxy=self.toxiproxy, runtime=self.stack, extra=extra)
        for i, spec in enumerate(self.spec.faults):
            fault = build_fault(spec, ctx)
            if spec.target.proxy and self.toxiproxy is not None:
                if self.toxiproxy.get_proxy(spec.target.proxy) is None:
                    known = ", ".join(sorted(self.toxiproxy.proxies())) or "none"
                    raise ScenarioError(
                        f"{self.loaded.path} faults[{i}].target.proxy: no proxy {spec.target.proxy!r} "
                        f"on {self.toxiproxy.url} (known: {known})"
                    )
            self.active.append(_Active(spec=spec, fault=fault, fault_id=f"{i}-{spec.name}"))

    def _preflight(self) -> None:
        """Steady state before any fault: the probe request must succeed, else exit 3, nothing applied."""
        load = self.spec.load
        request = load.probe_request
        self.say("preflight: checking steady state")
        failures: list[str] = []
        with httpx.Client(base_url=load.host, timeout=load.timeout_s) as client:
            for _ in range(5):
                try:
                    response = client.request(
                        request.method, request.path, json=request.json_body,
                        content=request.body, headers=request.headers,
                    )
                    if response.status_code >= 400:
                        failures.append(f"HTTP {response.status_code}")
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
        unhealthy = self.stack.unhealthy() if hasattr(self.stack, "unhealthy") else []
        self.journal.write("preflight", failures=failures, unhealthy=unhealthy)
        if failures or unhealthy:
            detail = "; ".join(failures[:3] + [f"unhealthy: {u}" for u in unhealthy])
            raise AbortedError(
                f"steady state not met before any fault ({request.method} {load.host}{request.path}): "
                f"{detail}. Nothing was applied.",
                reason="preflight",
            )

    def _drive(self) -> None:
        from harness.load.runner import LoadRunner
        from harness.load.samples import LOCUST_FILE, PROBE_FILE, SAMPLES_DIR
        from harness.load.tail import SampleTail

        phases = self.spec.phases
        plan = _load_plan(self.spec.load, phases.total_s)
        self.load = LoadRunner(plan, self.run_dir)
        self.say(
            f"load: {self.spec.load.users} users + probe {self.spec.load.probe_rate_hz:g} Hz "
            f"against {self.spec.load.host} for {phases.total_s:g}s"
        )
        self.journal.write("load.starting", plan=plan.to_dict())
        self.load.start()
        # Journaled so that `drill recover` can stop load a kill -9'd harness left running.
        self.journal.write(
            "load.started", process_groups={"locust": self.load.locust_pid, "prober": self.load.prober_pid}
        )
        samples_dir = self.run_dir / SAMPLES_DIR
        if self.spec.capacity is not None:
            from harness.load.capacity import CAPACITY_FILE, CapacitySampler

            self.capacity = CapacitySampler(
                self.spec.capacity.pool_url, samples_dir / CAPACITY_FILE, self.spec.capacity.interval
            )
            self.capacity.start()
        tails = [SampleTail(samples_dir / LOCUST_FILE), SampleTail(samples_dir / PROBE_FILE)]
        self._await_first_samples(tails)
        stop_when = self.spec.stop_when
        watch = (StopWatch(stop_when.error_rate, stop_when.for_s)
                 if stop_when is not None and stop_when.error_rate is not None else None)
        next_stop_check = 0.0
        self._down_at_start = set(self._members_not_running())

        t0 = time.time()
        self.phases = {
            "baseline": [t0, t0 + phases.baseline],
            "fault": [t0 + phases.baseline, t0 + phases.baseline + phases.fault],
            "recovery": [t0 + phases.baseline + phases.fault, t0 + phases.total_s],
        }
        for a in self.active:
            a.apply_at = self.phases["fault"][0] + a.spec.at
            a.revert_at = a.apply_at + (a.spec.duration if a.spec.duration is not None else phases.fault - a.spec.at)
        self.journal.write("phase.start", phase="baseline", ts=t0)
        self.say(f"phase baseline ({phases.baseline:g}s)")
        announced = {"baseline"}
        end = self.phases["recovery"][1]
        next_check = time.time() + 1.0
        while True:
            now = time.time()
            if now >= end:
                break
            for name in ("fault", "recovery"):
                if name not in announced and now >= self.phases[name][0]:
                    announced.add(name)
                    self.journal.write("phase.start", phase=name, ts=self.phases[name][0])
                    length = phases.fault if name == "fault" else phases.recovery
                    self.say(f"phase {name} ({length:g}s)")
            for a in self.active:
                if not a.apply_started and now >= a.apply_at:
                    self._apply(a)
                if a.onset is not None and a.reverted_at is None and now >= a.revert_at:
                    self._revert(a, why="scheduled")
            if watch is not None and now >= next_stop_check:
                next_stop_check = now + STOP_CHECK_S
                for tail in tails:
                    watch.add(tail.read_new())
                trip = watch.check()
                if trip is not None:
                    self._stop(trip)
            metrics_trip = self.metrics.poll(now) if self.metrics is not None else None
            if metrics_trip is not None:
                self._stop_on_metrics(metrics_trip)
            if now >= next_check:
                next_check = now + 1.0
                if not self.load.is_running:
                    raise AbortedError("the load generator stopped early (see locust.log)", reason="load")
                self._check_dependencies()
            time.sleep(TICK_S)
        if self.metrics is not None:
            self.metrics.after_recovery(end)
        self.journal.write("phase.end", phase="recovery", ts=end)

    def _stop(self, trip: StopTrip) -> None:
        """The stop condition held: say so with the measured rate, revert every fault (newest
        first) before anything else, record the reaction time, then abort the drill."""
        assert self.journal is not None and self.spec.stop_when is not None
        detected_at = time.time()
        stop_when = self.spec.stop_when
        assert stop_when.error_rate is not None
        condition = f"error rate ≥ {_percent(stop_when.error_rate)} for {stop_when.for_s:g} s"
        reason = (
            f"stop condition met: error rate {_percent(trip.error_rate)} ≥ {_percent(stop_when.error_rate)} "
            f"over the last {trip.window_s:g} s ({trip.bad_requests} of {trip.requests} requests failed)"
        )
        self.journal.write(
            "stop.tripped", condition=condition, error_rate_threshold=stop_when.error_rate,
            for_s=stop_when.for_s, measured=trip.error_rate, bad_requests=trip.bad_requests,
            requests=trip.requests, held_at=trip.held_at, detected_at=detected_at,
        )
        self.say(f"[red]aborted:[/red] {escape(reason)}; rolling back")
        self._abort_said = True
        self._first_revert_call_at = None  # a scheduled revert earlier in the run is not a reaction
        for a in reversed(self.active):
            self._revert(a, why="stop_when")
        first = self._first_revert_call_at
        self.journal.write(
            "stop.reverted", first_revert_at=first,
            reaction_s=None if first is None else first - trip.held_at,
        )
        if first is not None:
            self.say(f"first revert call {first - trip.held_at:.2f} s after the stop condition held")
        raise AbortedError(reason, reason="stop_when")

    def _stop_on_metrics(self, trip: ConditionTrip) -> None:
        """A PromQL stop condition held: revert every fault (newest first), then measure from the
        condition in Prometheus to the rollback's end, then abort (exit 3)."""
        assert self.journal is not None and self.metrics is not None
        self.metrics.tripped(trip, time.time())
        self.say(f"[red]aborted:[/red] {escape(trip.reason())}; rolling back")
        self._abort_said = True
        self._first_revert_call_at = None
        for a in reversed(self.active):
            self._revert(a, why="stop_when")
        first = self._first_revert_call_at
        self.journal.write("stop.reverted", first_revert_at=first,
                           reaction_s=None if first is None else first - trip.held_at)
        self.metrics.rolled_back(trip, time.time())
        raise AbortedError(trip.reason(), reason="stop_when")

    def _save_metrics(self) -> None:
        """The scenario's ``metrics`` queries over the run, before the rollback stops the stack
        (and a local stack's Prometheus with it). Best effort, like the stack's event log."""
        if self.metrics is None or self.journal is None:
            return
        try:
            if "baseline" in self.phases:
                self.metrics.record(self.run_dir, self.phases["baseline"][0], time.time())
        except OSError as exc:
            self.journal.write("metrics.error", what="record", error=str(exc))
        finally:
            self.metrics.close()

    def _await_first_samples(self, tails: list[Any], timeout_s: float = 30.0) -> None:
        """Baseline starts once load is flowing: Locust takes a moment to boot and spawn."""
        deadline = time.time() + timeout_s
        seen = False
        while time.time() < deadline:
            if any(t.read_new() for t in tails):
                seen = True
                break
            if not self.load.is_running:
                break
            time.sleep(0.1)
        if not seen:
            raise AbortedError(
                f"no request was recorded within {timeout_s:g}s of starting load (see locust.log)",
                reason="load",
            )

    def _members_not_running(self) -> list[str]:
        if not self.stack_started or not hasattr(self.stack, "not_running"):
            return []
        return list(self.stack.not_running())

    def _check_dependencies(self) -> None:
        """Once a second: the parts the drill relies on are still there. Toxiproxy gone means its
        faults can be neither observed nor reverted; a stack member that stopped without a drill
        fault makes every figure about something else. Either aborts (rollback, exit 3)."""
        if self.toxiproxy is not None:
            try:
                self.toxiproxy.version()
            except Exception as exc:
                self.journal.write("dependency.lost", what="toxiproxy", url=self.toxiproxy.url, error=str(exc))
                raise AbortedError(
                    f"Toxiproxy at {self.toxiproxy.url} stopped answering during the drill ({exc}); "
                    "its faults can be neither watched nor reverted from here", reason="dependency",
                ) from None
        try:
            down = set(self._members_not_running())
        except Exception as exc:
            self.journal.write("dependency.lost", what="stack", error=str(exc))
            raise AbortedError(f"the stack stopped answering during the drill: {exc}", reason="dependency") from None
        # Targets are recorded with their kind (``process:gpu-a1``); members by name (``gpu-a1``).
        targeted = {name for a in self.active if a.apply_started for t in a.targets for name in (t, t.split(":", 1)[-1])}
        lost = sorted(down - self._down_at_start - targeted)
        if lost:
            self.journal.write("dependency.lost", what="stack members", members=lost)
            raise AbortedError(
                f"stack member(s) {', '.join(lost)} stopped on their own during the drill (no drill fault "
                "targets them); the figures would describe that failure, not the drill's",
                reason="dependency",
            )

    # --- faults ------------------------------------------------------------------------------
    def _apply(self, a: _Active) -> None:
        assert self.journal is not None
        description = a.fault.describe()
        self.journal.write(
            "fault.intent", fault_id=a.fault_id, name=a.spec.name, type=a.spec.type,
            targets=description.get("targets", []), params=description.get("params", {}),
            undo=description.get("undo", {}), planned_revert_at=a.revert_at,
        )
        a.apply_started = True
        a.targets = [str(t) for t in description.get("targets", [])]
        try:
            onset = a.fault.apply()
        except Exception as exc:
            self.journal.write("fault.apply_failed", fault_id=a.fault_id, error=str(exc))
            raise
        a.onset = onset
        self.journal.write(
            "fault.applied", fault_id=a.fault_id, onset_at=onset.at, onset_source=onset.source,
            onset_uncertainty_s=onset.uncertainty_s,
        )
        hit = _hit_text(a.spec, description.get("targets", []))
        self.say(f"[bold]fault {escape(a.spec.name)}[/bold] applied ({a.spec.type} on {escape(hit)})")
        delay = max(0.0, a.revert_at - time.time()) + WATCHDOG_GRACE_S
        a.watchdog = threading.Timer(delay, self._revert, args=(a,), kwargs={"why": "watchdog"})
        a.watchdog.daemon = True
        a.watchdog.start()

    def _revert(self, a: _Active, why: str) -> None:
        assert self.journal is not None
        with a.lock:
            if a.reverted_at is not None or not a.apply_started:
                return
            if a.watchdog is not None and why != "watchdog":
                a.watchdog.cancel()
            self.journal.write("fault.revert_intent", fault_id=a.fault_id, why=why)
            last: Exception | None = None
            for attempt in range(3):
                try:
                    if self._first_revert_call_at is None:
                        self._first_revert_call_at = time.time()
                    a.reverted_at = a.fault.revert()
                    break
                except Exception as exc:  # retried, then reported; never swallowed silently
                    last = exc
                    self.journal.write("fault.revert_retry", fault_id=a.fault_id, attempt=attempt, error=str(exc))
                    time.sleep(0.5 * (attempt + 1))
            if a.reverted_at is None:
                self.journal.write("fault.revert_failed", fault_id=a.fault_id, error=str(last))
                self.say(f"[red]fault {escape(a.spec.name)} could not be reverted: {escape(str(last))}; "
                         f"run `drill recover {self.run_dir}`")
                return
            self.journal.write("fault.reverted", fault_id=a.fault_id, reverted_at=a.reverted_at, why=why)
        self.say(f"fault {escape(a.spec.name)} reverted ({why})")

    # --- rollback and cleanup -----------------------------------------------------------------
    def _rollback(self) -> None:
        """Every exit path: stop load, revert faults newest first, delete proxies, stop the stack."""
        for name, part in (("load", self.load), ("capacity", self.capacity)):
            if part is None:
                continue
            try:
                part.stop()
            except Exception as exc:
                self.journal.write(f"{name}.stop_failed", error=repr(exc))
            else:
                self.journal.write(f"{name}.stopped")
        for a in reversed(self.active):
            self._revert(a, why="rollback" if self.abort_reason else "end")
        self._verify_cleanup()
        for name in reversed(self.proxies_created):
            try:
                self.toxiproxy.delete_proxy(name)
                self.journal.write("proxy.deleted", proxy=name)
            except Exception as exc:
                self.journal.write("proxy.delete_failed", proxy=name, error=str(exc))
        if self.stack is not None and self.stack_started:
            try:
                self.stack.stop()
                self.journal.write("stack.stopped")
            except Exception as exc:
                self.journal.write("stack.stop_failed", error=repr(exc))
        if self.toxiproxy is not None:
            self.toxiproxy.close()

    def _verify_cleanup(self) -> None:
        """After the reverts, look at the real state: toxics left, stack members not running."""
        toxics_left: int | None = 0
        not_running: list[str] | None = []
        if self.toxiproxy is not None:
            try:
                toxics_left = sum(len(p.toxics) + (0 if p.enabled else 1) for p in self.toxiproxy.proxies().values())
            except Exception as exc:
                self.journal.write("cleanup.check_failed", what="toxiproxy", error=str(exc))
                toxics_left = None
        if self.stack_started and hasattr(self.stack, "not_running"):
            try:
                not_running = list(self.stack.not_running())
            except Exception as exc:
                self.journal.write("cleanup.check_failed", what="stack", error=str(exc))
                not_running = None
        unreverted = [a.fault_id for a in self.active if a.apply_started and a.reverted_at is None]
        still_active: list[str] = []
        for a in self.active:
            if a.apply_started and hasattr(a.fault, "verify"):
                try:
                    still_active += a.fault.verify()
                except Exception as exc:  # the rest of the rollback must still run
                    still_active.append(f"{a.spec.name}: could not verify the revert: {exc}")
        self.cleanup = {
            "ok": toxics_left == 0 and not_running == [] and not unreverted and not still_active,
            "toxics_left": toxics_left,
            "containers_not_running": not_running,
            "faults_not_reverted": unreverted,
            "hook_faults_active": still_active,
        }
        self.journal.write("cleanup.verified", **self.cleanup)

    def _save_stack_events(self) -> None:
        """Keep the stack's own routing-event log (``stack.events_url``) in the run directory, so
        results can set its failover instants beside the harness's. Best effort: a stack that
        cannot answer costs the agreement figure, never the drill."""
        url = self.spec.stack.events_url
        if not url or self.journal is None or "baseline" not in self.phases:
            return
        from harness.rundir import STACK_EVENTS_FILE, write_stack_events

        # Fetched before the rollback (a local stack stops with it), so kept short: 2 s at most.
        try:
            reply = httpx.get(url, params={"since": self.phases["baseline"][0] - 1}, timeout=2.0)
            reply.raise_for_status()
            events = reply.json()
            if not isinstance(events, list):
                raise ValueError(f"expected a JSON list, got {type(events).__name__}")
            write_stack_events(self.run_dir, url, events)
        except (httpx.HTTPError, ValueError, OSError) as exc:
            self.journal.write("stack.events", url=url, ok=False, error=str(exc))
            return
        self.journal.write("stack.events", url=url, ok=True, count=len(events), file=STACK_EVENTS_FILE)

    # --- results ------------------------------------------------------------------------------
    def _environment(self) -> dict[str, Any]:
        env: dict[str, Any] = {
            "runtime": self.runtime_kind,
            "tools": {"drill": __version__, "python": platform.python_version(), "locust": _pkg_version("locust")},
            "host": socket.gethostname(),
            "operator": _user(),
            "git_sha": _git_sha(self.loaded.path.parent),
        }
        if hasattr(self.stack, "fingerprint"):
            try:
                env.update(self.stack.fingerprint())
            except Exception as exc:
                env["fingerprint_error"] = str(exc)
        # The Docker engine and compose CLI are real parts of a compose run: list them with the
        # other tools (the Toxiproxy server's own version is added once it answers /version).
        for tool, key in (("docker_engine", "engine_version"), ("docker_compose", "compose_version")):
            if env.get(key):
                env["tools"][tool] = env[key]
        return env

    def _finish(self) -> RunResult:
        """Figures come from the run directory alone, exactly as `drill report` recomputes them."""
        from harness.results import compute_results, write_outputs

        assert self.journal is not None
        results, timeline = compute_results(self.run_dir)
        verdict = results["verdict"]
        self.journal.write("run.end", verdict=verdict)
        write_outputs(self.run_dir, results, timeline)
        code = {"passed": EXIT_PASSED, "failed": EXIT_FAILED}.get(verdict, EXIT_ABORTED)
        return RunResult(self.run_dir, verdict, code, results, self.abort_reason)


def run_drill(
    scenario: str | Path | LoadedScenario,
    *,
    out: Path | None = None,
    runtime: str | None = None,
    say: Say | None = None,
    reports_dir: Path = Path("reports"),
) -> RunResult:
    """Run one drill and write its run directory. Raises ScenarioError (exit 2) for bad input."""
    from harness.lock import StackLock, stack_key

    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario)
    run_dir = Path(out) if out else new_run_dir(loaded.spec.name, reports_dir)
    key = stack_key(loaded.spec, runtime)
    with StackLock(key, run_dir):
        refuse_active_faults(loaded, runtime, key)
        return Drill(loaded, run_dir, runtime=runtime, say=say, stack_key=key).run()


def refuse_active_faults(loaded: LoadedScenario, runtime: str | None, key: str) -> None:
    """Refuse (StackError, exit 3, nothing applied) to drill a stack that already has faults on
    it: an unfinished earlier run's, or strays no run knows. Measuring a stack that is already
    broken would blame the new faults for the old ones."""
    from harness.journal import applied_faults
    from harness.runtime import open_stack
    from harness.state import registered_runs
    from harness.strays import scan

    spec = loaded.spec
    problems: list[str] = []
    for entry in registered_runs():
        journal = Path(entry["run_dir"]) / JOURNAL_NAME
        if entry["stack"].get("key") != key or not journal.is_file():
            continue
        left = applied_faults(journal, lenient=True)
        if left:
            names = ", ".join(f"{e.name} ({e.type})" for e in left)
            problems.append(f"run {entry['run_dir']} ended without its rollback and may have left: {names}")
    kind = runtime or spec.stack.runtime
    stack = open_stack(spec.stack, Path(tempfile_dir()), kind) if kind == "compose" else None
    url = spec.toxiproxy.url if spec.toxiproxy else getattr(stack, "toxiproxy_url", None)
    found = scan(url, stack, [f.target.hook for f in spec.faults if f.target.hook])
    problems += [f"{f['kind']} on {f['target']}: {f['detail']}" for f in found.faults]
    if problems:
        stray_fix = f"drill recover --all --force --runtime {kind}"
        if kind == "compose":
            stray_fix += f" --file {spec.stack.file} --project {spec.stack.project or 'drill-staging'}"
        elif url:
            stray_fix = f"drill recover --all --force --toxiproxy-url {url}"
        raise StackError(
            f"faults are already active on {key}; nothing was applied: " + "; ".join(problems)
            + f". Run `drill recover --all` to revert what a crashed run left (and `{stray_fix}` "
            "for faults no run knows), then run the drill again"
        )


def tempfile_dir() -> str:
    """Where a stack opened only to be looked at may write its (empty) logs."""
    import tempfile

    return tempfile.gettempdir()


def write_traceback(run_dir: Path, exc: BaseException) -> Path:
    """Save ``exc``'s traceback as ``RUN_DIR/traceback.txt`` (for a bug report) and return the path."""
    import traceback

    path = Path(run_dir) / "traceback.txt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError:
        pass
    return path


def run_repeated(
    scenario: str | Path | LoadedScenario,
    repeat: int,
    *,
    settle_s: float = 10.0,
    out: Path | None = None,
    runtime: str | None = None,
    say: Say | None = None,
    reports_dir: Path = Path("reports"),
) -> tuple[list[RunResult], dict[str, Any], Path]:
    """Run a scenario ``repeat`` times with ``settle_s`` between runs; summarise each figure's
    distribution into ``repeat-summary.json`` beside the runs. A run that aborts stops the series."""
    import json

    from harness.measure.repeats import summarize_repeats

    say = say or (lambda text: None)
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario)
    series_dir = Path(out) if out else new_run_dir(loaded.spec.name, reports_dir).with_name(
        "repeat-" + new_run_dir(loaded.spec.name, reports_dir).name
    )
    results: list[RunResult] = []
    for i in range(1, repeat + 1):
        if i > 1:
            say(f"settling {settle_s:g}s before run {i}/{repeat}")
            time.sleep(settle_s)
        say(f"[bold]run {i}/{repeat}[/bold]")
        result = run_drill(loaded, out=series_dir / f"run-{i:02d}", runtime=runtime, say=say)
        results.append(result)
        if result.verdict == "aborted":
            say("[red]run aborted: the series stops here[/red]")
            break
    summary = summarize_repeats([r.results for r in results]) | {
        "schema": "drill.repeat/v1", "scenario": loaded.spec.name, "requested": repeat, "settle_s": settle_s,
    }
    path = series_dir / "repeat-summary.json"
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return results, summary, path


# --- helpers ----------------------------------------------------------------------------------
def _load_plan(load: Any, duration_s: float) -> Any:
    """The scenario's ``load:`` block as the load room's plan."""
    from harness.load.plan import LoadPlan
    from harness.load.plan import RequestSpec as PlanRequest

    def req(r: RequestSpec) -> PlanRequest:
        return PlanRequest(method=r.method, path=r.path, json=r.json_body, headers=dict(r.headers), body=r.body)

    return LoadPlan(
        host=load.host,
        users=load.users,
        spawn_rate=load.spawn_rate or float(max(load.users, 1)),
        duration_s=duration_s,
        request=req(load.request or RequestSpec()),
        locustfile=load.locustfile,
        timeout_s=load.timeout_s,
        probe_rate_hz=load.probe_rate_hz,
        probe_request=req(load.probe_request),
    )


def _hit_text(spec: FaultSpec, targets: list[Any]) -> str:
    """The selector and what it resolved to: ``service gpu-node [tier=gpu] → drill-staging-gpu-a-1``.
    A proxy names itself, so it is said once."""
    selector = spec.target.describe()
    if spec.target.proxy or not targets:
        return selector
    return f"{selector} → {', '.join(str(t) for t in targets)}"


def _percent(ratio: float) -> str:
    """``5 %``, ``5.05 %``, ``62.5 %``: three figures, so a rate just over its threshold shows it."""
    return f"{ratio * 100:.3g} %"


def _pids(stack: Any) -> dict[str, Any]:
    """Process groups a local stack started, journaled so `drill recover` can stop orphans."""
    groups = getattr(stack, "process_groups", None)
    return {"process_groups": groups()} if callable(groups) else {}


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _pkg_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _git_sha(where: Path) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
