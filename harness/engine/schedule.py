"""The fault schedule: which fault is applied when, and the promise that each is reverted.

Every fault is journaled (``fault.intent``, with its undo record) before it is applied; once
applied, a watchdog timer reverts it at its deadline plus :data:`WATCHDOG_GRACE_S` even when the
engine itself is stuck. A revert is retried three times, then reported with the command that
finishes the job (``drill recover``).

A fault with a ``schedule`` (docs/scenarios.md "Schedules") is applied at its first step's
magnitude; :meth:`FaultSchedule.advance`, called on every engine tick, applies each later step as
an in-place update of the same toxic / HTTP fault, journaled before (``fault.step_intent``) and
after (``fault.step``, with the update call's onset bracket). The fault's undo record names the
toxic / fault id, not a magnitude, so a rollback or ``drill recover`` mid-schedule reverts
whichever step is in force.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.markup import escape

from harness.engine.result import Say
from harness.errors import ScenarioError
from harness.faults import Fault, FaultContext, Onset, build_fault
from harness.faults.base import ScheduledMagnitude
from harness.rundir.events import (
    FaultApplied,
    FaultApplyFailed,
    FaultIntent,
    FaultReverted,
    FaultRevertFailed,
    FaultRevertIntent,
    FaultRevertRetry,
    FaultStep,
    FaultStepFailed,
    FaultStepIntent,
    JournalEvent,
)
from harness.rundir.journal import Journal
from harness.scenario import LoadedScenario
from harness.scenario.fault_schedules import step_plan
from harness.scenario.model import FaultSpec

WATCHDOG_GRACE_S = 5.0
LATE_STEP_S = 0.25
"""A step whose update call began this much after its planned instant is journaled with
``late_s`` (the drive loop ticks every 50 ms: on time is within a tick or two)."""
MAX_LATE_S = 1e6  # the journal's bound on seconds; a plan on a made-up clock (tests) is that late


@dataclass
class ScheduledFault:
    """A fault the engine drives, with its schedule (epoch seconds) and what happened to it."""

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
    steps: list[tuple[float, float]] = field(default_factory=list)
    """A schedule's steps: (epoch instant, magnitude); empty for a plain fault."""
    step_index: int = -1
    not_started: str | None = None
    """Why a fault that waits for a start trigger was never started (its instant fell past the phase)."""


class FaultSchedule:
    """The scenario's faults, built before anything is applied, then applied and reverted."""

    def __init__(self, journal: Journal, say: Say, run_dir: Path) -> None:
        self.journal = journal
        self.say = say
        self.run_dir = run_dir
        self.faults: list[ScheduledFault] = []
        # When the first revert call of a reaction began (the stop condition's reaction time).
        self.first_revert_call_at: float | None = None
        self.probe_rate_hz = 20.0
        self.fault_phase_end = math.inf

    def build(self, loaded: LoadedScenario, ctx: FaultContext) -> None:
        """Build (not apply) every fault; a bad selector or an unknown proxy is ScenarioError."""
        toxiproxy = ctx.toxiproxy
        self.probe_rate_hz = loaded.spec.load.probe_rate_hz
        for i, spec in enumerate(loaded.spec.faults):
            fault = build_fault(spec, ctx)
            if spec.target.proxy and toxiproxy is not None and toxiproxy.get_proxy(spec.target.proxy) is None:
                known = ", ".join(sorted(toxiproxy.proxies())) or "none"
                raise ScenarioError(
                    f"{loaded.path} faults[{i}].target.proxy: no proxy {spec.target.proxy!r} "
                    f"on {toxiproxy.url} (known: {known})"
                )
            self.faults.append(ScheduledFault(spec=spec, fault=fault, fault_id=f"{i}-{spec.name}"))

    def active_names(self) -> tuple[str, ...]:
        """The faults in force now: applied (onset known) and not yet reverted."""
        return tuple(a.spec.name for a in self.faults if a.onset is not None and a.reverted_at is None)

    def plan(self, fault_phase_start: float, fault_phase_s: float) -> None:
        """Each fault's apply and revert instants: ``at`` into the fault phase, for ``duration``
        (default: to the end of the fault phase). A fault that starts ``after`` another waits
        (apply instant infinity) until :meth:`start_after` places it."""
        self.fault_phase_end = fault_phase_start + fault_phase_s
        for a in self.faults:
            if a.spec.after is not None:
                a.apply_at = a.revert_at = math.inf
                continue
            planned = a.spec.planned_at()
            if planned is None:  # a manual fault waits for inject_manual()
                a.apply_at = a.revert_at = math.inf
                continue
            self._place(a, fault_phase_start + planned)

    def _place(self, a: ScheduledFault, apply_at: float) -> None:
        """Set the fault's apply and revert instants (and its steps) from its apply instant."""
        a.apply_at = apply_at
        length = a.spec.duration if a.spec.duration is not None else max(0.0, self.fault_phase_end - apply_at)
        a.revert_at = a.apply_at + length
        schedule = getattr(a.spec, "schedule", None)
        if schedule is not None:
            own = getattr(a.spec, a.spec.MAGNITUDE or "", None)
            plan = step_plan(schedule, length, float(own) if isinstance(own, (int, float)) else None,
                             self.probe_rate_hz)
            a.steps = [(a.apply_at + offset, value) for offset, value in plan]

    def start_after(self) -> list[ScheduledFault]:
        """Start triggers of compound timelines (``after: {fault, when, offset}``): place each
        waiting fault once the fault it follows has had its onset (journaled onset instant) or
        its revert (revert instant), plus the offset. Returns the faults placed now.

        Kept apart from the ``at`` planning so other start triggers (a facilitator's manual
        inject) sit beside it without touching it. A follower whose instant falls at or past the
        end of the fault phase is not started (the scenario's checks refuse a plan like that; only
        a late onset gets here)."""
        by_name = {a.spec.name: a for a in self.faults}
        placed: list[ScheduledFault] = []
        for a in self.faults:
            after = a.spec.after
            if after is None or a.apply_at != math.inf or a.not_started is not None:
                continue
            lead = by_name.get(after.fault)
            if lead is None:
                continue
            instant = (lead.onset.at if lead.onset is not None else None) if after.when == "onset" else lead.reverted_at
            if instant is None:
                continue
            start = instant + after.offset
            if start >= self.fault_phase_end:
                a.not_started = f"{after.describe()} falls past the fault phase"
                self.say(f"fault {escape(a.spec.name)} not started: {escape(after.describe())} falls past "
                         "the fault phase")
                continue
            self._place(a, start)
            placed.append(a)
        return placed

    def inject_manual(self, name: str, now: float, fault_phase: list[float]) -> ScheduledFault:
        """The facilitator's inject (docs/gameday.md): the ``manual`` fault ``name`` is due now and
        lasts its ``duration`` (default: to the end of the fault phase). Only inside the fault
        phase, once; the drive loop applies it on its next tick, journaled like any other.
        Raises ValueError saying why when it cannot be injected."""
        found = [a for a in self.faults if a.spec.name == name]
        if not found:
            raise ValueError(f"no fault named {name!r}")
        a = found[0]
        if not a.spec.manual:
            raise ValueError(f"fault {name!r} is not manual: it follows its planned time")
        if a.apply_started or a.apply_at <= now:
            raise ValueError(f"fault {name!r} is already injected")
        start, end = fault_phase
        if not start <= now < end:
            raise ValueError(f"fault {name!r} can be injected during the fault phase only")
        length = a.spec.duration if a.spec.duration is not None else end - now
        # The revert instant first: the drive loop (another thread) applies once apply_at is due.
        a.revert_at = min(now + length, end)
        a.apply_at = now
        return a

    def hold(self, after: float, seconds: float) -> None:
        """Move every planned instant later than ``after`` by ``seconds`` (a facilitator's hold of
        the current phase), re-arming the watchdog of an applied fault whose revert moved."""
        if after < self.fault_phase_end < float("inf"):  # followers may start later too
            self.fault_phase_end += seconds
        for a in self.faults:
            with a.lock:
                if not a.apply_started and after < a.apply_at < float("inf"):
                    a.apply_at += seconds
                if a.reverted_at is None and after < a.revert_at < float("inf"):
                    a.revert_at += seconds
                    a.steps = [(t + seconds if t > after else t, v) for t, v in a.steps]
                    if a.watchdog is not None:
                        a.watchdog.cancel()
                        delay = max(0.0, a.revert_at - time.time()) + WATCHDOG_GRACE_S
                        a.watchdog = threading.Timer(delay, self.revert, args=(a,), kwargs={"why": "watchdog"})
                        a.watchdog.daemon = True
                        a.watchdog.start()

    def any_applied(self) -> bool:
        return any(a.apply_started for a in self.faults)

    def targeted(self) -> set[str]:
        """Members an applied fault acts on, with and without their kind (``process:gpu-a1``,
        ``gpu-a1``): their stopping is the drill's doing."""
        return {name for a in self.faults if a.apply_started for t in a.targets for name in (t, t.split(":", 1)[-1])}

    def unreverted(self) -> list[str]:
        return [a.fault_id for a in self.faults if a.apply_started and a.reverted_at is None]

    def still_active(self) -> list[str]:
        """Each applied fault's own check that its revert took (``Fault.verify``)."""
        problems: list[str] = []
        for a in self.faults:
            if not a.apply_started:
                continue
            try:
                problems += a.fault.verify()
            except Exception as exc:  # the rest of the rollback must still run
                problems.append(f"{a.spec.name}: could not verify the revert: {exc}")
        return problems

    def apply(self, a: ScheduledFault) -> None:
        """Journal the intent (with the undo record), apply, journal the onset, arm the watchdog."""
        if a.steps:
            self._magnitude(a).set_magnitude(a.steps[0][1])
        description = a.fault.describe()
        # Started before the intent is written, not after: a SIGINT or SIGTERM raises at the next
        # bytecode, and one that landed between the two left an intent on disk that the rollback
        # skipped (the ledger said "may be applied" while the engine said "never started"; a
        # whole suite run's signal loop caught it). A fault's revert is safe without its apply.
        a.apply_started = True
        a.targets = list(description["targets"])
        self.journal.write(FaultIntent(
            fault_id=a.fault_id, name=a.spec.name, type=a.spec.type,
            targets=description["targets"], params=description["params"],
            undo=description["undo"], planned_revert_at=a.revert_at,
        ))
        try:
            onset = a.fault.apply()
        except Exception as exc:
            self.journal.write(FaultApplyFailed(fault_id=a.fault_id, error=str(exc)))
            raise
        a.onset = onset
        self.journal.write(FaultApplied(
            fault_id=a.fault_id, onset_at=onset.at, onset_source=onset.source,
            onset_uncertainty_s=onset.uncertainty_s,
        ))
        if a.steps:
            a.step_index = 0
            self._journal_step(a, 0, onset)
        hit = hit_text(a.spec, description["targets"])
        self.say(f"[bold]fault {escape(a.spec.name)}[/bold] applied ({a.spec.type} on {escape(hit)})")
        delay = max(0.0, a.revert_at - time.time()) + WATCHDOG_GRACE_S
        a.watchdog = threading.Timer(delay, self.revert, args=(a,), kwargs={"why": "watchdog"})
        a.watchdog.daemon = True
        a.watchdog.start()

    def _magnitude(self, a: ScheduledFault) -> ScheduledMagnitude:
        if not isinstance(a.fault, ScheduledMagnitude):
            raise ScenarioError(f"fault {a.spec.name!r}: {a.spec.type} faults cannot follow a schedule")
        return a.fault

    def _journal_step(self, a: ScheduledFault, index: int, onset: Onset, late_s: float | None = None) -> None:
        planned_at, value = a.steps[index]
        late = {} if late_s is None else {"late_s": round(min(late_s, MAX_LATE_S), 6)}
        self.journal.write(FaultStep(
            fault_id=a.fault_id, index=index, param=self._magnitude(a).magnitude_param, value=float(value),
            planned_at=planned_at, onset_at=onset.at, onset_source=onset.source,
            onset_uncertainty_s=onset.uncertainty_s, **late,
        ))

    def advance(self, a: ScheduledFault, now: float) -> None:
        """Apply every step of the schedule due by ``now``, in order, unless the fault is not
        applied yet or already reverted. A late tick (a busy machine, a slow API call) applies
        each step it missed, one after another, rather than jumping to the latest: every step
        planned before the revert is in force at least once, and one applied later than
        :data:`LATE_STEP_S` says by how much (``late_s``). Under the fault's lock, so a revert
        (the watchdog's too) never races an update."""
        while a.steps and a.onset is not None and a.reverted_at is None:
            due = a.step_index + 1
            if due >= len(a.steps) or a.steps[due][0] > now:
                return
            with a.lock:
                if a.reverted_at is not None:
                    return
                planned_at, value = a.steps[due]
                fault = self._magnitude(a)
                self.journal.write(FaultStepIntent(fault_id=a.fault_id, index=due, param=fault.magnitude_param,
                                                   value=float(value), planned_at=planned_at))
                called_at = time.time()
                try:
                    onset = fault.set_magnitude(value)
                except Exception as exc:
                    self.journal.write(FaultStepFailed(fault_id=a.fault_id, index=due, error=str(exc)))
                    raise
                assert onset is not None  # applied: set_magnitude updated it in place
                a.step_index = due
                late_s = called_at - planned_at
                self._journal_step(a, due, onset, late_s if late_s > LATE_STEP_S else None)

    def revert(self, a: ScheduledFault, why: str) -> None:
        """Revert once (idempotent, thread-safe: the watchdog may race the engine), retried."""
        with a.lock:
            if a.reverted_at is not None or not a.apply_started:
                return
            if a.watchdog is not None and why != "watchdog":
                a.watchdog.cancel()
            # On a full disk the records are skipped: reverting unrecorded beats leaving it applied.
            self._note(FaultRevertIntent(fault_id=a.fault_id, why=why))
            last: Exception | None = None
            for attempt in range(3):
                try:
                    if self.first_revert_call_at is None:
                        self.first_revert_call_at = time.time()
                    a.reverted_at = a.fault.revert()
                    break
                except Exception as exc:  # retried, then reported; never swallowed silently
                    last = exc
                    self._note(FaultRevertRetry(fault_id=a.fault_id, attempt=attempt, error=str(exc)))
                    time.sleep(0.5 * (attempt + 1))
            if a.reverted_at is None:
                self._note(FaultRevertFailed(fault_id=a.fault_id, error=str(last)))
                self.say(f"[red]fault {escape(a.spec.name)} could not be reverted: {escape(str(last))}; "
                         f"run `drill recover {self.run_dir}`")
                return
            self._note(FaultReverted(fault_id=a.fault_id, reverted_at=a.reverted_at, why=why))
        self.say(f"fault {escape(a.spec.name)} reverted ({why})")

    def _note(self, event: JournalEvent) -> None:
        """A revert's journal record, best effort (see :meth:`revert`)."""
        try:
            self.journal.write(event)
        except OSError:
            pass

    def revert_all(self, why: str) -> None:
        """Every applied fault, newest first."""
        for a in reversed(self.faults):
            self.revert(a, why=why)


def hit_text(spec: FaultSpec, targets: list[str]) -> str:
    """The selector and what it resolved to: ``service gpu-node [tier=gpu] → drill-staging-gpu-a-1``.
    A proxy names itself, so it is said once."""
    selector = spec.target.describe()
    if spec.target.proxy or not targets:
        return selector
    return f"{selector} → {', '.join(str(t) for t in targets)}"
