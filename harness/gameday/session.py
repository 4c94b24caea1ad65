"""One game day: the drill the console runs, and what its page shows.

The drill runs on the main thread (its signal handlers need it), exactly as ``drill run`` runs it,
with a :class:`~harness.engine.controls.Controls` for the facilitator's commands and an observer
that keeps the terminal's live figures for the page. The page's server (another thread) only
reads :meth:`GameDay.state` and hands commands to the controls; closing the page changes
nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.text import Text

from harness.engine.controls import ControlRefused, Controls
from harness.engine.result import RunResult, Say
from harness.engine.schedule import ScheduledFault
from harness.errors import DrillError
from harness.progress import DriveTick, Mode, Progress, Snapshot
from harness.rundir.events import HUMAN_KINDS
from harness.scenario import LoadedScenario

Role = str  # "facilitator" | "observer"
MAX_PARTICIPANTS = 20
MAX_NAME = 60
MAX_NOTE = 500
LOG_LINES = 30


class ConsoleProgress(Progress):
    """The terminal's live progress, whose every snapshot the page gets too."""

    def __init__(self, console: Console, mode: Mode, day: GameDay) -> None:
        super().__init__(console, mode)
        self.day = day

    def __call__(self, tick: DriveTick) -> None:
        self.day.tick = tick
        super().__call__(tick)

    def show(self, snapshot: Snapshot) -> None:
        super().show(snapshot)
        self.day.snapshot = snapshot


class ConsoleDay(Protocol):
    """What the server serves: a live drill (:class:`GameDay`) or a replay
    (:class:`~harness.gameday.replay.ReplayDay`). A command either can't take raises
    :class:`ControlRefused` saying why."""

    def state(self, role: Role) -> dict[str, object]: ...
    def start(self, participants: object) -> None: ...
    def inject(self, fault: object, by: str) -> None: ...
    def hold(self, seconds: object, by: str) -> None: ...
    def abort(self, by: str) -> None: ...
    def record(self, participant: object, kind: object, note: object) -> object: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def set_speed(self, speed: object) -> None: ...


@dataclass(frozen=True)
class Entry:
    at: float
    participant: str
    kind: str
    note: str


def clean_name(value: object, what: str, most: int = MAX_NAME) -> str:
    """A person's name or a note from the page: text, stripped, short, no control characters."""
    if not isinstance(value, str):
        raise ControlRefused(f"{what} must be text")
    text = value.strip()
    if len(text) > most or any(ord(c) < 32 for c in text):
        raise ControlRefused(f"{what} must be at most {most} characters without control characters")
    return text


class GameDay:
    """See the module docstring. :meth:`run` blocks until the drill is over."""

    def __init__(
        self, loaded: LoadedScenario, *, runtime: str | None, out: Path | None, reports_dir: Path,
        say: Say, hold_budget_s: float, participants: tuple[str, ...] = (),
    ) -> None:
        self.loaded = loaded
        self.runtime = runtime
        self.out = out
        self.reports_dir = reports_dir
        self._say = say
        self.hold_budget_s = hold_budget_s
        self.participants: tuple[str, ...] = participants
        self.controls: Controls | None = None
        self.status = "waiting"  # waiting -> running -> finished
        self.started = threading.Event()
        self.tick: DriveTick | None = None
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.result: RunResult | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    # --- what the drill says ------------------------------------------------------------------
    def say(self, text: str) -> None:
        self._say(text)
        self.log.append(f"{time.strftime('%H:%M:%S')} {Text.from_markup(text).plain}")

    # --- commands from the page ---------------------------------------------------------------
    def start(self, participants: object) -> None:
        if not isinstance(participants, list) or len(participants) > MAX_PARTICIPANTS:
            raise ControlRefused(f"participants must be a list of at most {MAX_PARTICIPANTS} names")
        names = tuple(dict.fromkeys(n for n in (clean_name(p, "a participant") for p in participants) if n))
        with self._lock:
            if self.status != "waiting":
                raise ControlRefused("the drill has already started")
            self.participants = names or self.participants
            self.controls = Controls(self.hold_budget_s, self.participants)
            self.status = "running"
        self.started.set()

    def _controls(self) -> Controls:
        if self.controls is None:
            raise ControlRefused("the drill has not started")
        return self.controls

    def inject(self, fault: object, by: str) -> None:
        self._controls().inject(clean_name(fault, "fault", 100), by)

    def hold(self, seconds: object, by: str) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ControlRefused("seconds must be a number")
        self._controls().hold(float(seconds), by)

    def abort(self, by: str) -> None:
        self._controls().abort(by)

    def pause(self) -> None:
        raise ControlRefused("a live drill cannot pause: hold the phase, or abort")

    def resume(self) -> None:
        raise ControlRefused("a live drill cannot pause: hold the phase, or abort")

    def set_speed(self, speed: object) -> None:
        raise ControlRefused("a live drill runs at the speed of the clock")

    def record(self, participant: object, kind: object, note: object) -> Entry:
        who = clean_name(participant, "participant")
        if who not in self.participants:
            raise ControlRefused(f"{who!r} is not a participant of this drill")
        if not isinstance(kind, str) or kind not in HUMAN_KINDS:
            raise ControlRefused(f"kind must be one of {', '.join(HUMAN_KINDS)}")
        text = clean_name(note if note is not None else "", "note", MAX_NOTE)
        at = self._controls().record(who, kind, text)
        entry = Entry(at=at, participant=who, kind=kind, note=text)
        with self._lock:
            self.entries.append(entry)
        return entry

    # --- the drill (main thread) --------------------------------------------------------------
    def run(self, progress: ConsoleProgress) -> RunResult | None:
        """Wait for the page's start, then run the drill; None when nothing started."""
        from harness.engine import run_drill

        while not self.started.wait(0.2):
            pass
        assert self.controls is not None
        try:
            self.result = run_drill(self.loaded, out=self.out, runtime=self.runtime, say=self.say,
                                    reports_dir=self.reports_dir, observer=progress, controls=self.controls)
            return self.result
        except DrillError as exc:
            self.error = str(exc)
            raise
        finally:
            self.status = "finished"

    # --- what the page shows ------------------------------------------------------------------
    def state(self, role: Role) -> dict[str, object]:
        now = time.time()
        tick = self.tick
        phases = tick.phases if tick is not None else {}
        origin = phases["baseline"][0] if "baseline" in phases else None
        controls = self.controls

        def rel(t: float | None) -> float | None:
            return None if t is None or origin is None else round(t - origin, 3)

        schedule = controls.schedule if controls is not None else None
        faults = [fault_state(a, now, phases, rel) for a in (schedule.faults if schedule else [])]
        if not faults:
            faults = [{"name": f.name, "type": f.type, "manual": f.manual, "state": "not applied yet",
                       "applied_at_s": None, "reverted_at_s": None, "can_inject": False}
                      for f in self.loaded.spec.faults]
        result = self.result
        return {
            "role": role,
            "scenario": self.loaded.spec.name,
            "status": self.status,
            "now_s": rel(now),
            "participants": list(self.participants),
            "kinds": list(HUMAN_KINDS),
            "phases": [{"name": name, "start_s": rel(w[0]), "end_s": rel(w[1])} for name, w in phases.items()],
            "figures": self.snapshot.record() if self.snapshot is not None else None,
            "faults": faults,
            "entries": [{"at_s": rel(e.at), "participant": e.participant, "kind": e.kind, "note": e.note}
                        for e in list(self.entries)],
            "hold_left_s": None if controls is None else round(controls.hold_budget_s - controls.held_s, 1),
            "aborting": controls is not None and controls.abort_request() is not None,
            "log": list(self.log),
            "verdict": None if result is None else result.verdict.value,
            "exit_code": None if result is None else result.exit_code,
            "run_dir": None if result is None else str(result.run_dir),
            "error": self.error,
        }


def fault_state(a: ScheduledFault, now: float, phases: dict[str, list[float]],
                rel: Callable[[float | None], float | None]) -> dict[str, object]:
    """One fault as the page shows it (``rel``: an instant on the drill's clock)."""
    fault_phase = phases.get("fault")
    in_fault_phase = fault_phase is not None and fault_phase[0] <= now < fault_phase[1]
    if a.reverted_at is not None:
        state = "reverted"
    elif a.onset is not None:
        state = "applied"
    elif a.apply_started:
        state = "applying"
    elif a.apply_at == float("inf"):
        state = "waiting for inject" if a.spec.manual else "not planned"
    else:
        state = "planned"
    return {
        "name": a.spec.name,
        "type": a.spec.type,
        "manual": a.spec.manual,
        "state": state,
        "planned_at_s": None if a.apply_at == float("inf") else rel(a.apply_at),
        "applied_at_s": rel(a.onset.at) if a.onset is not None else None,
        "reverted_at_s": rel(a.reverted_at),
        "can_inject": a.spec.manual and not a.apply_started and a.apply_at == float("inf") and in_fault_phase,
    }
