"""One drill, phase by phase: preflight, baseline, inject, observe, revert, recover, verdict.

:class:`Drill` owns the order of things; the pieces live beside it — what must hold first
(:mod:`.preflight`), the fault schedule and its watchdog (:mod:`.schedule`), the rollback that
runs on every exit path (:mod:`.rollback`), the environment fingerprint (:mod:`.fingerprint`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness import __version__
from harness.engine import dependencies, proxies
from harness.engine.controls import Controls
from harness.engine.costs import AmplificationTrip, AmplificationWatch, save_cost_records
from harness.engine.events import save_stack_events
from harness.engine.fingerprint import environment, user
from harness.engine.ground import DaemonWatch, disk_full, disk_lost
from harness.engine.loadplan import load_plan
from harness.engine.outputs import write_outputs
from harness.engine.parts import Parts
from harness.engine.paths import new_run_dir, write_traceback
from harness.engine.preflight import refuse_active_faults, require_toxiproxy, stack_record, steady_state
from harness.engine.result import RunResult, Say, say_nothing
from harness.engine.rollback import rollback
from harness.engine.schedule import FaultSchedule, ScheduledFault
from harness.engine.signals import Signals
from harness.errors import AbortedError, DrillError, FaultError, InternalError, ScenarioError, StackError
from harness.faults import FaultContext
from harness.httpfaults.client import HttpFaultClient, HttpFaultProxyError
from harness.load.capacity import CAPACITY_FILE, CapacitySampler
from harness.load.runner import LoadRunner
from harness.load.samples import LOCUST_FILE, PROBE_FILE, SAMPLES_DIR
from harness.load.stopwatch import StopTrip, StopWatch
from harness.load.tail import SampleTail
from harness.load.watchdog import Trouble, Watchdog, free_reserve, is_write_error, make_reserve
from harness.metrics.checks import ConditionTrip
from harness.metrics.drill import MetricsWatch, open_metrics_watch
from harness.progress import DriveTick
from harness.results import compute_results
from harness.rundir import JOURNAL_FILE
from harness.rundir.events import (
    CleanupVerified,
    DependencyLost,
    GamedayHold,
    LoadStarted,
    LoadStarting,
    MetricsError,
    PhaseEnd,
    PhaseStart,
    RunAborted,
    RunEnd,
    RunEnvironment,
    RunError,
    RunFinished,
    RunStart,
    StackStarted,
    StackStarting,
    StopReverted,
    StopTripped,
)
from harness.rundir.journal import Journal, applied_faults
from harness.rundir.state import register_run, unregister_run, update_run
from harness.runtime import open_stack
from harness.runtime.base import Runtime
from harness.safety.lock import StackLock, stack_key
from harness.scenario import LoadedScenario, load_scenario
from harness.verdict import Verdict

TICK_S = 0.05
DAEMON_GRACE_S = 5.0  # a stopping dockerd first stops its containers (each in well under its 10 s grace here)
# How often the stop condition is evaluated: with the sample files flushed every 0.2 s, the first
# revert call follows the condition holding within about 0.3 s (goal: within 1 s).
STOP_CHECK_S = 0.1
FIRST_SAMPLE_TIMEOUT_S = 30.0
# The host-stall watchdog ends by itself this long after the drill's phases at the latest (it
# also ends when the harness is gone); the rollback stops it before that.
WATCHDOG_MARGIN_S = 600.0
Observer = Callable[[DriveTick], None]


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
        observer: Observer | None = None,
        controls: Controls | None = None,
    ) -> None:
        self.observer = observer  # live progress: called once per tick of the drive loop
        self.controls = controls  # the game-day console's inject, hold, abort (docs/gameday.md)
        self.loaded = loaded
        self.spec = loaded.spec
        self.run_dir = Path(run_dir).resolve()
        self.runtime_kind = runtime or self.spec.stack.runtime
        self.say: Say = say or say_nothing
        self.stack_key = stack_key or f"run {self.run_dir}"
        self.started_at = time.time()
        # Set by run(): what the drill opened, and its faults.
        self.parts: Parts | None = None
        self.schedule: FaultSchedule | None = None
        # What the run found out, for the journal and the verdict.
        self.phases: dict[str, list[float]] = {}
        self.environment: dict[str, Any] = {}
        self.abort_reason: str | None = None
        self.cleanup = CleanupVerified(ok=False, toxics_left=None, containers_not_running=None)
        self._abort_said = False
        self.metrics: MetricsWatch | None = None  # Prometheus: steady state, stop_when queries, series

    # --- public ------------------------------------------------------------------------------
    def run(self) -> RunResult:
        # Registered before anything is applied, so `drill recover --all` finds this run after a
        # kill -9 wherever its directory is.
        register_run(self.run_dir, self.spec.name, stack_record(self.loaded, self.runtime_kind, self.stack_key))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "scenario.yaml").write_text(self.loaded.text, encoding="utf-8")
        journal = Journal(self.run_dir / JOURNAL_FILE)
        self.parts = parts = Parts(journal=journal)
        self.schedule = FaultSchedule(journal, self.say, self.run_dir)
        if self.controls is not None:
            self.controls.attach(journal, self.schedule)
        journal.write(RunStart(
            run_id=self.run_dir.name,
            scenario=self.spec.name,
            scenario_path=str(self.loaded.path),
            scenario_sha256=self.loaded.sha256,
            run_dir=str(self.run_dir),
            user=user(),
            host=socket.gethostname(),
            drill_version=__version__,
            pid=os.getpid(),
        ))
        signals = Signals(self.say)
        signals.install()
        bad_input: ScenarioError | None = None
        try:
            self._execute(parts)
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
            if is_write_error(exc):  # a full disk under the run directory: no traceback can be saved
                assert isinstance(exc, OSError)
                self.abort_reason = self._disk_lost("the engine", exc)
            else:
                saved = write_traceback(self.run_dir, exc)
                self.abort_reason = f"internal error: {type(exc).__name__}: {exc} (traceback in {saved})"
                journal.write(RunError(error=f"{type(exc).__name__}: {exc}", traceback_file=saved.name))
        finally:
            signals.rolling_back = True
            if self.controls is not None:
                self.controls.rolling_back = True  # an abort now would abort nothing
            try:
                save_stack_events(self.loaded, self.run_dir, journal, self.phases)
                save_cost_records(self.loaded, self.run_dir, parts.http_faults, self.phases)
                self._save_metrics(journal)
            finally:  # nothing about the stack's log may keep a fault applied
                free_reserve(self.run_dir)  # the rollback's journal records, then the results, need the room
                self.cleanup = rollback(parts, self.schedule, "rollback" if self.abort_reason else "end")
        doubts = self.cleanup.doubts()
        if not self.abort_reason and doubts:
            self.abort_reason = ("the rollback could not verify that everything was put back ("
                                 + ", ".join(doubts) + "); run `drill recover --all`")
        # Until run() returns, a signal is explained, not obeyed: faults are already reverted and
        # the figures are being written.
        try:
            if self.abort_reason:
                journal.write(RunAborted(reason=self.abort_reason))
                if not self._abort_said:
                    self.say(f"[red]aborted:[/red] {escape(self.abort_reason)}")
            journal.write(RunFinished())
            if bad_input is not None and not self.schedule.any_applied():
                journal.write(RunEnd(verdict=Verdict.BAD_INPUT.value))
                self._unregister_when_clean(journal)
                raise bad_input
            self._unregister_when_clean(journal)
            try:
                result = self._finish(journal)
            except DrillError as exc:  # e.g. samples a load generator wrote out of range: not bad input
                journal.write(RunError(error=str(exc)))
                raise InternalError(f"the drill ran and was rolled back, but its results could not be "
                                    f"computed: {exc}") from None
            except OSError as exc:
                if not is_write_error(exc):
                    raise self._internal_error(journal, exc) from None
                raise self._unwritten(exc) from None
            except Exception as exc:  # the faults are reverted: say where the traceback went
                raise self._internal_error(journal, exc) from None
            return result
        except OSError as exc:  # the journal's last records on a full disk (the faults are reverted)
            if not is_write_error(exc):
                raise
            raise self._unwritten(exc) from None
        finally:
            signals.restore()
            if self.controls is not None:
                self.controls.detach()
            try:
                journal.close()
            except OSError:  # a full disk: the failed record was reported above
                pass

    def _internal_error(self, journal: Journal, exc: Exception) -> InternalError:
        saved = write_traceback(self.run_dir, exc)
        journal.write(RunError(error=f"{type(exc).__name__}: {exc}", traceback_file=saved.name))
        return InternalError(
            f"internal error while writing the results ({type(exc).__name__}); faults were "
            f"rolled back; traceback in {saved}", saved
        )

    def _unwritten(self, exc: OSError) -> DrillError:
        """The run directory took no more data after the rollback: one message, exit 3."""
        return DrillError(
            f"the drill ran and its faults were rolled back, but its results could not be written "
            f"to {self.run_dir} ({exc.strerror or exc}); free some space there and run "
            f"`drill report {self.run_dir}`"
        )

    def _disk_lost(self, what: str, exc: OSError | None = None) -> str:
        """The run directory took no more data: stop the load (nothing more can be recorded),
        free the reserve, record it; the abort reason says where the samples end."""
        assert self.parts is not None
        if self.parts.load is not None:
            self.parts.load.stop()
        reason = disk_lost(self.run_dir, what, exc)
        self.parts.journal.write(DependencyLost(what="disk", error=reason))
        return reason

    def _unregister_when_clean(self, journal: Journal) -> None:
        """A run stays registered (for `drill recover --all`) until nothing of it is left applied."""
        left = applied_faults(journal.path, lenient=True)
        if not left and not self.cleanup.doubts():
            unregister_run(self.run_dir)
        else:
            self.say("[red]something may still be applied: run `drill recover --all`[/red]")

    # --- phases ------------------------------------------------------------------------------
    def _execute(self, parts: Parts) -> None:
        journal = parts.journal
        stack = parts.stack = open_stack(self.spec.stack, self.run_dir, self.runtime_kind)
        update_run(self.run_dir, toxiproxy_url=stack.toxiproxy_url,
                   http_fault_proxy_url=self._http_fault_proxy_url(stack))  # issue 13: recover scans it
        require_toxiproxy(self.loaded, stack)
        self.say(f"starting stack ({self.runtime_kind})")
        journal.write(StackStarting(runtime=self.runtime_kind, file=str(self.spec.stack.file or "")))
        # A start that fails stops what it started itself, so only a started stack is ours to stop.
        endpoints = stack.start()
        parts.stack_started = True
        # Process groups are journaled so that `drill recover` can stop orphans after a kill -9.
        journal.write(StackStarted(endpoints=endpoints, process_groups=stack.process_groups()))
        self.environment = environment(self.runtime_kind, self.loaded.path.parent, stack)
        proxies.connect(self.spec.toxiproxy.url if self.spec.toxiproxy else stack.toxiproxy_url,
                        parts, self.environment)
        journal.write(RunEnvironment(environment=self.environment))
        proxies.create_declared(self.loaded, parts)
        self._build_faults(parts, stack)
        steady_state(self.loaded, stack, journal, self.say)
        self.metrics = open_metrics_watch(self.spec, self.loaded.path, stack, journal, self.say)
        if self.metrics is not None:
            self.metrics.preflight()
        self._drive(parts)

    def _build_faults(self, parts: Parts, stack: Runtime | None) -> None:
        assert self.schedule is not None
        extra = {"pool_url": self.spec.capacity.pool_url} if self.spec.capacity else {}
        http_url = self._http_fault_proxy_url(stack)
        if http_url is not None:
            parts.http_faults = HttpFaultClient(http_url)
        ctx = FaultContext(journal=parts.journal, toxiproxy=parts.toxiproxy, runtime=stack,
                           http_faults=parts.http_faults, extra=extra)
        self.schedule.build(self.loaded, ctx)

    def _http_fault_proxy_url(self, stack: Runtime | None) -> str | None:
        """The scenario's ``http_fault_proxy: {url}``, else the one the runtime starts (issue 13)."""
        if self.spec.http_fault_proxy is not None:
            return self.spec.http_fault_proxy.url
        return stack.http_fault_proxy_url if stack is not None else None

    def _drive(self, parts: Parts) -> None:
        """Load, then the phases in order, applying and reverting faults on schedule, watching the
        stop condition and the drill's dependencies."""
        assert self.schedule is not None
        journal = parts.journal
        phases = self.spec.phases
        # The phases begin at the first recorded answer (_await_first_samples: up to
        # FIRST_SAMPLE_TIMEOUT_S, a long LLM answer's worth), so the load's own bound leaves that
        # room: bounded from its start to phases + margin only, it fell silent before the end of
        # the recovery phase whenever the first answer took longer than the margin. A console-driven
        # drill's load runs for its hold budget longer. The rollback stops the load either way.
        plan = load_plan(self.spec.load, phases.total_s + FIRST_SAMPLE_TIMEOUT_S
                         + (self.controls.hold_budget_s if self.controls else 0.0))
        # Room for the rollback should the disk fill, and a watchdog on the host's own stalls and
        # clock from now to the rollback (harness/load/watchdog.py).
        make_reserve(self.run_dir)
        parts.watchdog = Watchdog(self.run_dir, max_s=phases.total_s + WATCHDOG_MARGIN_S)
        parts.watchdog.start()
        daemon = DaemonWatch(self.run_dir) if self.runtime_kind == "compose" else None
        load = parts.load = LoadRunner(plan, self.run_dir)
        self.say(
            f"load: {self.spec.load.users} users + probe {self.spec.load.probe_rate_hz:g} Hz "
            f"against {self.spec.load.host} for {phases.total_s:g}s"
        )
        journal.write(LoadStarting(plan=plan.to_dict()))
        load.start()
        # Journaled so that `drill recover` can stop load a kill -9'd harness left running.
        journal.write(LoadStarted(process_groups=load.process_groups()))
        samples_dir = self.run_dir / SAMPLES_DIR
        if self.spec.capacity is not None:
            parts.capacity = CapacitySampler(
                self.spec.capacity.pool_url, samples_dir / CAPACITY_FILE, self.spec.capacity.interval
            )
            parts.capacity.start()
        tails = [SampleTail(samples_dir / LOCUST_FILE), SampleTail(samples_dir / PROBE_FILE)]
        self._await_first_samples(load, tails)
        stop_when = self.spec.stop_when
        watch = (StopWatch(stop_when.error_rate, stop_when.for_s)
                 if stop_when is not None and stop_when.error_rate is not None else None)
        amplification = (AmplificationWatch(stop_when.retry_amplification, stop_when.for_s)
                         if stop_when is not None and stop_when.retry_amplification is not None
                         and parts.http_faults is not None else None)
        if amplification is None and stop_when is not None and stop_when.retry_amplification is not None:
            self.say("[yellow]stop_when.retry_amplification is not watched: the stack has no HTTP fault proxy[/yellow]")
        next_stop_check = 0.0
        down_at_start = set(dependencies.members_not_running(parts))

        t0 = time.time()
        self.phases = {
            "baseline": [t0, t0 + phases.baseline],
            "fault": [t0 + phases.baseline, t0 + phases.baseline + phases.fault],
            "recovery": [t0 + phases.baseline + phases.fault, t0 + phases.total_s],
        }
        self.schedule.plan(self.phases["fault"][0], phases.fault)
        if self.controls is not None:
            self.controls.phases = self.phases
        journal.write(PhaseStart(phase="baseline"), ts=t0)
        self.say(f"phase baseline ({phases.baseline:g}s)")
        announced = {"baseline"}
        end = self.phases["recovery"][1]
        next_check = time.time() + 1.0
        while True:
            now = time.time()
            if self.controls is not None:
                self._take_controls(now)
                end = self.phases["recovery"][1]
            if now >= end:
                break
            for name in ("fault", "recovery"):
                if name not in announced and now >= self.phases[name][0]:
                    announced.add(name)
                    journal.write(PhaseStart(phase=name), ts=self.phases[name][0])
                    length = phases.fault if name == "fault" else phases.recovery
                    self.say(f"phase {name} ({length:g}s)")
            self.schedule.start_after()  # compound timelines: followers placed once their lead's instant is known
            for a in self.schedule.faults:
                if not a.apply_started and now >= a.apply_at:
                    self._apply(a)
                self.schedule.advance(a, now)
                if a.onset is not None and a.reverted_at is None and now >= a.revert_at:
                    self.schedule.revert(a, why="scheduled")
            if (watch is not None or amplification is not None) and now >= next_stop_check:
                next_stop_check = now + STOP_CHECK_S
                rows = [row for tail in tails for row in tail.read_new()]
                if watch is not None:
                    watch.add(rows)
                    trip = watch.check()
                    if trip is not None:
                        self._stop(trip)
                if amplification is not None and parts.http_faults is not None:
                    amplification.add_rows(rows)
                    try:  # a slow proxy costs this poll, never the drive loop's pace
                        amplification.add_count(time.time(), parts.http_faults.counts(timeout_s=STOP_CHECK_S))
                    except HttpFaultProxyError:
                        pass
                    amp_trip = amplification.check(time.time())
                    if amp_trip is not None:
                        self._stop_on_amplification(amp_trip)
            metrics_trip = self.metrics.poll(now) if self.metrics is not None else None
            if metrics_trip is not None:
                self._stop_on_metrics(metrics_trip)
            if self.observer is not None:
                self.observer(DriveTick(now, self.run_dir, self.phases, self.schedule.active_names()))
            if now >= next_check:
                next_check = now + 1.0
                failed = load.write_failures()
                if failed or disk_full(self.run_dir):
                    raise AbortedError(self._disk_lost(", ".join(failed) or "the run directory's disk is full"),
                                       reason="write_error")
                moved = daemon.moved() if daemon is not None else None
                if moved is not None:
                    raise _daemon_lost(moved, journal)
                if not load.is_running:
                    raise AbortedError("the load generator stopped early (see locust.log)", reason="load")
                try:
                    dependencies.check_dependencies(parts, down_at_start, self.schedule.targeted())
                except AbortedError as lost:
                    self._blame_the_daemon(daemon, journal)
                    raise lost
            time.sleep(TICK_S)
        if self.metrics is not None:
            self.metrics.after_recovery(end)
        journal.write(PhaseEnd(phase="recovery"), ts=end)

    @staticmethod
    def _blame_the_daemon(daemon: DaemonWatch | None, journal: Journal) -> None:
        """A compose member or Toxiproxy's container lost: a Docker daemon that is shutting down
        stops its containers first, while it still answers as itself. Watch it a few seconds more
        (DAEMON_GRACE_S); when it goes, the abort names it, not the containers it took along."""
        if daemon is None:
            return
        deadline = time.monotonic() + DAEMON_GRACE_S
        while time.monotonic() < deadline:
            moved = daemon.moved()
            if moved is not None:
                raise _daemon_lost(moved, journal)
            time.sleep(0.2)

    def _take_controls(self, now: float) -> None:
        """The console's commands, on the drive loop's own thread: a hold moves the current phase's
        end and everything planned after it; an abort reverts every fault (newest first), as a
        stop condition does, then raises."""
        assert self.controls is not None and self.schedule is not None and self.parts is not None
        request = self.controls.abort_request()
        if request is not None:
            self.say(f"[red]aborted by the facilitator ({escape(request.by or 'console')})[/red]; rolling back")
            self._abort_said = True
            self.schedule.revert_all("abort")
            raise AbortedError(f"aborted from the game-day console by {request.by or 'the facilitator'}",
                               reason="console")
        for seconds, by in self.controls.take_holds():
            current = next((name for name, (start, stop) in self.phases.items() if start <= now < stop), None)
            if current is None:
                continue
            for window in self.phases.values():
                if window[1] > now:
                    if window[0] > now:
                        window[0] += seconds
                    window[1] += seconds
            self.schedule.hold(now, seconds)
            self.parts.journal.write(GamedayHold(phase=current, seconds=seconds, by=by))
            self.say(f"phase {current} held {seconds:g}s longer ({escape(by or 'console')})")

    def _apply(self, a: ScheduledFault) -> None:
        """Apply one fault now (the schedule journals it first and arms its watchdog)."""
        assert self.schedule is not None
        self.schedule.apply(a)

    def _stop(self, trip: StopTrip) -> None:
        """The stop condition held: say so with the measured rate, revert every fault (newest
        first) before anything else, record the reaction time, then abort the drill."""
        assert self.parts is not None and self.schedule is not None and self.spec.stop_when is not None
        journal = self.parts.journal
        detected_at = time.time()
        stop_when = self.spec.stop_when
        assert stop_when.error_rate is not None  # only an error-rate condition makes a StopWatch
        condition = f"error rate ≥ {_percent(stop_when.error_rate)} for {stop_when.for_s:g} s"
        reason = (
            f"stop condition met: error rate {_percent(trip.error_rate)} ≥ {_percent(stop_when.error_rate)} "
            f"over the last {trip.window_s:g} s ({trip.bad_requests} of {trip.requests} requests failed)"
        )
        journal.write(StopTripped(
            condition=condition, error_rate_threshold=stop_when.error_rate,
            for_s=stop_when.for_s, measured=trip.error_rate, bad_requests=trip.bad_requests,
            requests=trip.requests, held_at=trip.held_at, detected_at=detected_at,
        ))
        self.say(f"[red]aborted:[/red] {escape(reason)}; rolling back")
        self._abort_said = True
        self.schedule.first_revert_call_at = None  # a scheduled revert earlier in the run is not a reaction
        self.schedule.revert_all("stop_when")
        first = self.schedule.first_revert_call_at
        journal.write(StopReverted(first_revert_at=first, reaction_s=None if first is None else first - trip.held_at))
        if first is not None:
            self.say(f"first revert call {first - trip.held_at:.2f} s after the stop condition held")
        raise AbortedError(reason, reason="stop_when")

    def _stop_on_amplification(self, trip: AmplificationTrip) -> None:
        """``stop_when.retry_amplification`` held: revert every fault (newest first) at once, then
        abort (exit 3), as the error-rate condition does."""
        assert self.parts is not None and self.schedule is not None and self.spec.stop_when is not None
        journal = self.parts.journal
        detected_at = time.time()
        threshold = self.spec.stop_when.retry_amplification
        reason = (f"stop condition met: retry amplification {trip.amplification:.2f}x ≥ {threshold:g}x over the "
                  f"last {trip.window_s:g} s ({trip.upstream_calls} upstream calls, {trip.proxy_calls} of them at "
                  f"the HTTP fault proxy, for {trip.requests} client requests)")
        journal.write(StopTripped(
            condition=f"retry amplification ≥ {threshold:g}x for {trip.window_s:g} s", source="http fault proxy",
            for_s=trip.window_s, measured=trip.amplification, requests=trip.requests, held_at=trip.held_at,
            detected_at=detected_at,
        ))
        self.say(f"[red]aborted:[/red] {escape(reason)}; rolling back")
        self._abort_said = True
        self.schedule.first_revert_call_at = None  # a scheduled revert earlier in the run is not a reaction
        self.schedule.revert_all("stop_when")
        first = self.schedule.first_revert_call_at
        journal.write(StopReverted(first_revert_at=first, reaction_s=None if first is None else first - trip.held_at))
        raise AbortedError(reason, reason="stop_when")

    def _stop_on_metrics(self, trip: ConditionTrip) -> None:
        """A PromQL stop condition held: revert every fault (newest first), then measure from the
        condition in Prometheus to the rollback's end, then abort (exit 3)."""
        assert self.parts is not None and self.schedule is not None and self.metrics is not None
        self.metrics.tripped(trip, time.time())
        self.say(f"[red]aborted:[/red] {escape(trip.reason())}; rolling back")
        self._abort_said = True
        self.schedule.first_revert_call_at = None  # a scheduled revert earlier in the run is not a reaction
        self.schedule.revert_all("stop_when")
        first = self.schedule.first_revert_call_at
        self.parts.journal.write(StopReverted(
            first_revert_at=first, reaction_s=None if first is None else first - trip.held_at,
        ))
        self.metrics.rolled_back(trip, time.time())
        raise AbortedError(trip.reason(), reason="stop_when")

    def _save_metrics(self, journal: Journal) -> None:
        """The scenario's ``metrics`` queries over the run, before the rollback stops the stack
        (and a local stack's Prometheus with it). Best effort, like the stack's event log."""
        if self.metrics is None:
            return
        try:
            if "baseline" in self.phases:
                self.metrics.record(self.run_dir, self.phases["baseline"][0], time.time())
        except OSError as exc:
            journal.write(MetricsError(what="record", error=str(exc)))
        finally:
            self.metrics.close()

    def _await_first_samples(self, load: LoadRunner, tails: list[SampleTail],
                             timeout_s: float = FIRST_SAMPLE_TIMEOUT_S) -> None:
        """Baseline starts once load is flowing: Locust takes a moment to boot and spawn."""
        deadline = time.time() + timeout_s
        seen = False
        while time.time() < deadline:
            if any(t.read_new() for t in tails):
                seen = True
                break
            if not load.is_running:
                break
            time.sleep(0.1)
        if not seen:
            raise AbortedError(
                f"no request was recorded within {timeout_s:g}s of starting load (see locust.log)",
                reason="load",
            )

    # --- results ------------------------------------------------------------------------------
    def _finish(self, journal: Journal) -> RunResult:
        """Figures come from the run directory alone, exactly as `drill report` recomputes them."""
        results, timeline = compute_results(self.run_dir)
        journal.write(RunEnd(verdict=results.verdict.value))
        write_outputs(self.run_dir, results, timeline)
        verdict = results.verdict
        return RunResult(self.run_dir, verdict, verdict.exit_code, results, self.abort_reason)


def run_drill(
    scenario: str | Path | LoadedScenario,
    *,
    out: Path | None = None,
    runtime: str | None = None,
    say: Say | None = None,
    reports_dir: Path = Path("reports"),
    observer: Observer | None = None,
    controls: Controls | None = None,
) -> RunResult:
    """Run one drill and write its run directory. Raises ScenarioError (exit 2) for bad input."""
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario)
    run_dir = Path(out) if out else new_run_dir(loaded.spec.name, reports_dir)
    key = stack_key(loaded.spec, runtime)
    with StackLock(key, run_dir):
        refuse_active_faults(loaded, runtime, key)
        return Drill(loaded, run_dir, runtime=runtime, say=say, stack_key=key, observer=observer,
                     controls=controls).run()


def _percent(ratio: float) -> str:
    """``5 %``, ``5.05 %``, ``62.5 %``: three figures, so a rate just over its threshold shows it."""
    return f"{ratio * 100:.3g} %"


def _daemon_lost(moved: Trouble, journal: Journal) -> AbortedError:
    """The abort for a Docker daemon that went away or came back as another process."""
    journal.write(DependencyLost(what="docker daemon", error=moved.detail))
    return AbortedError(f"{moved.detail} during the drill: its containers (and their faults) may have "
                        "gone with it", reason="docker_restart")
