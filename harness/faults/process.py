"""endpoint_kill on the embedded ``local`` runtime: kill a stack process, restart it at revert."""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping

from harness.errors import ScenarioError
from harness.faults.base import FaultDescription, Onset
from harness.rundir.undo import ProcessUndo
from harness.runtime.local import LocalRuntime

_SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGTERM, "pause": signal.SIGSTOP}


class ProcessFault:
    """Kill (SIGKILL), stop (SIGTERM) or pause (SIGSTOP) the process groups of selected services."""

    def __init__(self, name: str, mode: str, names: list[str], runtime: LocalRuntime) -> None:
        self.name = name
        self.type = "endpoint_kill"
        self.mode = mode
        self.names = names
        self.runtime = runtime
        self._applied = False

    def describe(self) -> FaultDescription:
        return {
            "targets": [f"process:{n}" for n in self.names],
            "params": {"mode": self.mode},
            "undo": ProcessUndo(names=list(self.names), mode=self.mode),
        }

    def apply(self) -> Onset:
        before = time.time()
        self._applied = True  # a partial apply is verified after its revert too
        for name in self.names:
            self.runtime.kill(name, _SIGNALS[self.mode])
        after = time.time()
        # The signal is delivered by the kernel before kill(2) returns: the bracket is exact.
        return Onset(at=(before + after) / 2, source="signal", uncertainty_s=(after - before) / 2)

    def revert(self) -> float:
        if not self._applied:  # a rollback that came before the apply: nothing to restart
            return time.time()
        for name in self.names:
            if self.mode == "pause":
                self.runtime.kill(name, signal.SIGCONT)
            else:
                self.runtime.restart(name)
        return time.time()

    def verify(self) -> list[str]:
        """After revert, every target runs again (not paused) — asked of the runtime."""
        if not self._applied:
            return []
        state = {t.name: t.state for t in self.runtime.find()}
        return [f"process {name} is {state.get(name, 'gone')} after the revert"
                for name in self.names if state.get(name) != "running"]


def process_fault(
    name: str, mode: str, service: str | None, labels: Mapping[str, str], max_targets: int, runtime: LocalRuntime
) -> ProcessFault:
    names = [t.name for t in runtime.find(service, labels)]
    if not names or len(names) > max_targets:
        what = f"service {service!r}" if service else "no service"
        raise ScenarioError(
            f"fault {name!r}: selector ({what}, labels {dict(labels)}) matched {len(names)} processes "
            f"{names}; expected 1..{max_targets} (raise max_targets to allow more)"
        )
    return ProcessFault(name, mode, names, runtime)


def undo_process(undo: ProcessUndo) -> None:
    """After a crash the local stack is gone with its supervisor: nothing is left to restart."""
    return None
