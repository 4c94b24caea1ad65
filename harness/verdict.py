"""A drill's verdict and the exit code it owns, decided in one place.

    passed     every objective met, nothing went wrong             exit 0
    failed     an objective was missed (and nothing else)          exit 1
    bad_input  the scenario or a flag was wrong; nothing applied   exit 2
    aborted    the drill stopped early, or cleanup is in doubt     exit 3
    inconclusive  the instrument could not see: an objective could   exit 6
               flip within the measurement's own trouble

measure says whether the objectives were met (``Measurement.objectives_met``), the journal
whether the run was aborted and whether cleanup was verified; :func:`decide_verdict` combines
them. The enum lives outside ``harness.measure`` because measure imports nothing from the rest
of harness and exit codes are the command line's business, not a measurement. ``drill verify``
(4) and ``drill campaign status`` (5) check rather than drill: their codes are not verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from harness.errors import EXIT_ABORTED, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_PASSED

CLEANUP_NOT_VERIFIED = "cleanup could not be verified: a fault may still be applied"


class Verdict(StrEnum):
    """A drill's outcome; a ``str``, so it is written to JSON and compared as its value."""

    PASSED = "passed"
    FAILED = "failed"
    BAD_INPUT = "bad_input"
    ABORTED = "aborted"
    INCONCLUSIVE = "inconclusive"

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]

    @classmethod
    def from_exit_code(cls, code: int) -> Verdict:
        """The verdict a process exit code stands for (anything unknown: ``aborted``)."""
        return next((v for v, c in _EXIT_CODES.items() if c == code), cls.ABORTED)


_EXIT_CODES = {
    Verdict.PASSED: EXIT_PASSED,
    Verdict.FAILED: EXIT_FAILED,
    Verdict.BAD_INPUT: EXIT_BAD_INPUT,
    Verdict.ABORTED: EXIT_ABORTED,
    Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE,
}

RESULT_VERDICTS = (Verdict.PASSED, Verdict.FAILED, Verdict.ABORTED, Verdict.INCONCLUSIVE)
"""The verdicts a results.json can hold (a bad-input run writes none)."""

VERDICT_COUNTS = ("passed", "failed", "inconclusive", "aborted")

_SEVERITY = {EXIT_PASSED: 0, EXIT_INCONCLUSIVE: 1, EXIT_FAILED: 2, EXIT_ABORTED: 3, EXIT_BAD_INPUT: 4}


def worst_exit_code(codes: Sequence[int]) -> int:
    """The exit code of a series (``--repeat``, a campaign): its worst run's. A decided failure
    outranks an inconclusive run (the instrument could not see), an abort or bad input outranks
    both; an unknown code counts as an abort. No runs: 0."""
    return max(codes, key=lambda c: _SEVERITY.get(c, _SEVERITY[EXIT_ABORTED]), default=EXIT_PASSED)
"""The verdicts a series (``--repeat``, a campaign, a history quarter) counts, each apart: an
inconclusive run is neither a pass nor a failure."""


@dataclass(frozen=True)
class Decision:
    """The verdict and, when it is ``aborted``, why; ``undecided`` the lines that made it
    ``inconclusive`` (and, beside a ``failed`` verdict, the objectives that could not be decided)."""

    verdict: Verdict
    abort_reason: str | None = None
    undecided: tuple[str, ...] = ()


def decide_verdict(
    *, objectives_met: bool, abort_reason: str | None, cleanup_verified: bool, undecided: Sequence[str] = ()
) -> Decision:
    """The rule, in order (docs/method.md, "The decision"):

    1. an abort wins (``aborted``);
    2. a *decided* objective missed fails the drill (``failed``), whatever the others: its
       measurement carried it, so "exit 1: objectives failed" stays true. ``objectives_met`` is
       about the decided objectives only; the undecided ones ride along in ``undecided``;
    3. cleanup that could not be verified aborts (a fault may still be applied);
    4. any undecided objective — its pass/fail could flip within the instrument's own trouble —
       makes the run ``inconclusive`` (exit 6), never passed or failed; ``undecided`` holds one
       line per cause;
    5. otherwise ``passed``.
    """
    reasons = tuple(undecided)
    if abort_reason:
        return Decision(Verdict.ABORTED, abort_reason, reasons)
    if not objectives_met:
        return Decision(Verdict.FAILED, None, reasons)
    if not cleanup_verified:
        return Decision(Verdict.ABORTED, CLEANUP_NOT_VERIFIED, reasons)
    if reasons:
        return Decision(Verdict.INCONCLUSIVE, None, reasons)
    return Decision(Verdict.PASSED)
