"""Commands from outside the drive loop: a facilitator's inject, hold and abort, and the people's
entries on the drill's clock (the game-day console, docs/gameday.md).

The console's server runs in another thread; it hands its commands to a :class:`Controls` the
drill was given. Whatever comes through here is journaled, and nothing here can skip a
rollback: an abort is taken by the drive loop on its next tick and raised there as an
:class:`~harness.errors.AbortedError` after every fault is reverted, the path a stop condition
takes; a hold moves the phases' planned instants (and the faults' watchdogs) later, within the
hold budget the load was planned for.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import cast

from harness.engine.schedule import FaultSchedule
from harness.rundir.events import HUMAN_KINDS, GamedayAbort, GamedayInject, GamedayParticipants, HumanEntry, HumanKind
from harness.rundir.journal import Journal

DEFAULT_HOLD_BUDGET_S = 300.0
"""How much longer than its phases a console-driven drill's load is planned to run: the sum of
every hold may not exceed it (the load generators' own run time is fixed at their start)."""


class ControlRefused(ValueError):
    """A command that cannot be carried out now; its message says why."""


@dataclass(frozen=True)
class AbortRequest:
    by: str
    requested_at: float


class Controls:
    """Thread-safe: the console calls :meth:`inject`, :meth:`hold`, :meth:`abort` and
    :meth:`record`; the engine calls :meth:`attach`, :meth:`take_holds`, :meth:`abort_request`
    and :meth:`detach`."""

    def __init__(self, hold_budget_s: float = DEFAULT_HOLD_BUDGET_S, participants: tuple[str, ...] = ()) -> None:
        self.hold_budget_s = hold_budget_s
        self.participants = participants
        self.held_s = 0.0
        self._lock = threading.Lock()
        self._journal: Journal | None = None
        self.schedule: FaultSchedule | None = None
        self.phases: dict[str, list[float]] = {}
        self._holds: list[tuple[float, str]] = []
        self._abort: AbortRequest | None = None
        self.ended = False
        self.rolling_back = False  # set by the engine when its drive loop is over, for any reason

    # --- the engine's side ------------------------------------------------------------------
    def attach(self, journal: Journal, schedule: FaultSchedule) -> None:
        with self._lock:
            self._journal = journal
            self.schedule = schedule
            if self.participants:
                journal.write(GamedayParticipants(participants=list(self.participants)))

    def detach(self) -> None:
        """The journal is about to close: nothing more is recorded."""
        with self._lock:
            self._journal = None
            self.ended = True

    def take_holds(self) -> list[tuple[float, str]]:
        """The holds asked since the last call: (seconds, by)."""
        with self._lock:
            holds, self._holds = self._holds, []
        return holds

    def abort_request(self) -> AbortRequest | None:
        return self._abort

    # --- the console's side -----------------------------------------------------------------
    def _journal_or_refuse(self) -> Journal:
        if self._journal is None:
            raise ControlRefused("the drill is not running" if not self.ended else "the drill has ended")
        return self._journal

    def record(self, participant: str, kind: str, note: str = "", at: float | None = None) -> float:
        """Journal one person's entry, stamped ``at`` (default: now); returns the stamp."""
        if kind not in HUMAN_KINDS:
            raise ControlRefused(f"unknown entry kind {kind!r} (one of {', '.join(HUMAN_KINDS)})")
        stamp = time.time() if at is None else at
        with self._lock:
            journal = self._journal_or_refuse()
            journal.write(HumanEntry(participant=participant, kind=cast(HumanKind, kind), note=note), ts=stamp)
        return stamp

    def inject(self, fault: str, by: str) -> None:
        """The facilitator's inject of a ``manual`` fault: journaled, then due on the next tick."""
        with self._lock:
            journal = self._journal_or_refuse()
            if self.rolling_back:
                raise ControlRefused("the drill is already ending: its rollback is running")
            if self.schedule is None or "fault" not in self.phases:
                raise ControlRefused("the drill's phases have not started yet")
            try:
                self.schedule.inject_manual(fault, time.time(), self.phases["fault"])
            except ValueError as exc:
                raise ControlRefused(str(exc)) from None
            journal.write(GamedayInject(fault=fault, by=by))

    def hold(self, seconds: float, by: str) -> None:
        """Extend the current phase by ``seconds`` (taken, and journaled, on the next tick)."""
        with self._lock:
            self._journal_or_refuse()
            if self.rolling_back:
                raise ControlRefused("the drill is already ending: its rollback is running")
            if not self.phases:
                raise ControlRefused("the drill's phases have not started yet")
            if not 0 < seconds <= self.hold_budget_s - self.held_s:
                left = self.hold_budget_s - self.held_s
                raise ControlRefused(f"a hold must be more than 0 s and at most the {left:g} s left of the budget")
            self.held_s += seconds
            self._holds.append((seconds, by))

    def abort(self, by: str) -> None:
        """Stop the drill: journaled now, taken by the drive loop on its next tick (the rollback
        then runs as for a stop condition)."""
        with self._lock:
            journal = self._journal_or_refuse()
            if self._abort is not None:
                return
            if self.rolling_back:
                raise ControlRefused("the drill is already ending: its rollback is running")
            self._abort = AbortRequest(by=by, requested_at=time.time())
            journal.write(GamedayAbort(by=by, requested_at=self._abort.requested_at))
