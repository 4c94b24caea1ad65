"""What a drill hands back: :class:`RunResult`, and the exit code a verdict maps to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import EXIT_ABORTED, EXIT_FAILED, EXIT_PASSED

Say = Callable[[str], None]
"""How the engine tells a person what it is doing (rich markup; the CLI prints it)."""


def say_nothing(text: str) -> None:
    """The default :data:`Say`: a drill run from Python is quiet unless asked."""


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


def exit_code(verdict: str) -> int:
    """0 passed, 1 failed (objectives missed), 3 anything else (aborted)."""
    return {"passed": EXIT_PASSED, "failed": EXIT_FAILED}.get(verdict, EXIT_ABORTED)
