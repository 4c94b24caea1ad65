"""What a drill hands back: :class:`RunResult` (its verdict owns the exit code)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.results.model import RunResults
from harness.rundir import REPORT_FILE
from harness.verdict import Verdict

Say = Callable[[str], None]
"""How the engine tells a person what it is doing (rich markup; the CLI prints it)."""


def say_nothing(text: str) -> None:
    """The default :data:`Say`: a drill run from Python is quiet unless asked."""


@dataclass
class RunResult:
    """What a drill produced: its directory, verdict, exit code and its typed results
    (``results.document()`` is the results.json content)."""

    run_dir: Path
    verdict: Verdict
    exit_code: int
    results: RunResults
    abort_reason: str | None = None

    @property
    def report_path(self) -> Path:
        return self.run_dir / REPORT_FILE

