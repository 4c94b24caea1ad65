"""The runs registered in drill's state directory, as the port-holder lookup needs them: each
run's directory, its drill's pid, and the process groups its local stack started.

The groups come from two records of the run directory: the local supervisor's state file
(``stack-logs/local-stack.state.json``, written while the stack starts) and the journal's
``StackStarted`` (written once it is healthy); a run killed while its stack was starting has
only the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StackError
from harness.rundir import LOCAL_STACK_STATE_FILE, journal_path, stack_logs_dir
from harness.rundir.journal import stack_process_groups
from harness.rundir.state import registered_runs

__all__ = ["RunStack", "run_stacks"]


@dataclass(frozen=True)
class RunStack:
    """A drill run registered in the state directory, with the process groups its stack started."""

    run_dir: str
    drill_pid: int | None
    groups: frozenset[int]


def run_stacks() -> list[RunStack]:
    """Registered runs and the process groups of the local stack each one started (empty when
    the state directory cannot be read: the answer only gets vaguer)."""
    try:
        entries = registered_runs()
    except (StackError, OSError):
        return []
    stacks: list[RunStack] = []
    for entry in entries:
        run_dir = Path(str(entry["run_dir"]))
        groups = _supervised_pids(run_dir)
        journal = journal_path(run_dir)
        if journal.is_file():
            try:
                groups |= stack_process_groups(journal)
            except OSError:
                pass
        pid = entry.get("pid")
        stacks.append(RunStack(str(run_dir), pid if isinstance(pid, int) else None, frozenset(groups)))
    return stacks


def _supervised_pids(run_dir: Path) -> set[int]:
    """The process (group leader) ids in the local supervisor's state file, when there is one."""
    try:
        state = json.loads((stack_logs_dir(run_dir) / LOCAL_STACK_STATE_FILE).read_text(encoding="utf-8"))
        processes = state.get("processes", {}).values()
        return {int(p["pid"]) for p in processes if isinstance(p, dict) and "pid" in p}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()
