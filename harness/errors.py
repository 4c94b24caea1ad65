"""The errors drill raises, and the exit code each one maps to.

    DrillError                      base of everything drill raises on purpose
    ├── ScenarioError    (exit 2)   bad input: scenario, stack or compose file, flags; nothing applied
    ├── StackError       (exit 3)   the stack could not be started, reached or found healthy
    ├── FaultError       (exit 3)   a fault could not be applied or reverted (Toxiproxy, Docker, hook)
    ├── AbortedError     (exit 3)   the drill was stopped: stop condition, signal, watchdog
    └── InternalError    (exit 3)   a bug: an unexpected exception, its traceback saved to a file

A drill whose objectives are missed is not an error: it ends with verdict ``failed`` (exit 1).
A drill whose instrument could not see well enough to decide an objective (a host stall, probe
lag, lost samples inside a deciding window) ends ``inconclusive`` (exit 6), never 0 or 1.

Two commands that check rather than drill have codes of their own, so a script never mistakes
them for a drill's verdict: ``drill verify`` exits 4 when a pack is not intact (a file changed,
added or missing, a bad or wrong-key signature), and ``drill campaign status`` exits 5 when the
campaign is overdue.
"""

from __future__ import annotations

from pathlib import Path

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ABORTED = 3
EXIT_NOT_VERIFIED = 4
EXIT_OVERDUE = 5
EXIT_INCONCLUSIVE = 6


class DrillError(Exception):
    """Base class. ``exit_code`` is what the CLI and pytest plugin exit with."""

    exit_code = EXIT_ABORTED


class ScenarioError(DrillError):
    """Bad input. The message names file:line and the field, and says what was expected.

    ``problems`` holds every message when several were found at once.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class StackError(DrillError):
    """The stack under test could not be started, reached or found healthy."""


class FaultError(DrillError):
    """A fault could not be applied or reverted. ``target`` names what it acted on."""

    def __init__(self, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target


class AbortedError(DrillError):
    """The drill stopped early (stop condition, signal, watchdog); faults were rolled back."""

    def __init__(self, message: str, reason: str = "aborted") -> None:
        super().__init__(message)
        self.reason = reason


class InternalError(DrillError):
    """An unexpected exception (a bug in drill): what was applied is rolled back and the
    traceback is saved to ``traceback_file`` rather than shown."""

    def __init__(self, message: str, traceback_file: Path | None = None) -> None:
        super().__init__(message)
        self.traceback_file = traceback_file
