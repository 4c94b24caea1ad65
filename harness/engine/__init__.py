"""One drill, phase by phase: preflight, baseline, inject, observe, revert, recover, verdict.

The engine owns the order of things and the promise that no fault outlives the drill: every fault
is journaled before it is applied, and every applied fault is reverted on every exit path
(normal end, error, Ctrl-C, SIGTERM) in reverse order, with a watchdog that reverts a fault at its
deadline even when the engine itself is stuck.

One idea per module::

    drill.py         Drill (the phases in order) and run_drill
    preflight.py     what must hold before anything is applied
    schedule.py      the fault schedule: build, apply, revert, the watchdog
    rollback.py      what runs on every exit path, and the cleanup check
    dependencies.py  Toxiproxy and the stack's members still there, once a second
    parts.py         what a running drill holds (journal, stack, Toxiproxy, load)
    proxies.py       the drill's Toxiproxy and the proxies a scenario declares
    events.py        the stack's own event log, saved into the run directory
    fingerprint.py   the environment a drill ran in
    loadplan.py      the scenario's load block as the load room's plan
    signals.py       SIGINT/SIGTERM while running and while rolling back
    repeat.py        drill run --repeat N
    result.py        RunResult (its Verdict owns the exit code)
    paths.py         run directory names, saved tracebacks
"""

from __future__ import annotations

from harness.engine.drill import STOP_CHECK_S, TICK_S, Drill, run_drill
from harness.engine.paths import new_run_dir, tempfile_dir, write_traceback
from harness.engine.preflight import refuse_active_faults
from harness.engine.repeat import run_repeated
from harness.engine.result import RunResult, Say
from harness.engine.schedule import WATCHDOG_GRACE_S, FaultSchedule, ScheduledFault
from harness.engine.schedule import hit_text as _hit_text  # noqa: F401 - imported by that name (tests)

__all__ = [
    "STOP_CHECK_S",
    "TICK_S",
    "WATCHDOG_GRACE_S",
    "Drill",
    "FaultSchedule",
    "RunResult",
    "Say",
    "ScheduledFault",
    "new_run_dir",
    "refuse_active_faults",
    "run_drill",
    "run_repeated",
    "tempfile_dir",
    "write_traceback",
]
