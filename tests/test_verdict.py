"""The verdict is decided once, and owns its exit code."""

from __future__ import annotations

import json

import pytest

from harness.errors import (
    EXIT_ABORTED,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INCONCLUSIVE,
    EXIT_NOT_VERIFIED,
    EXIT_OVERDUE,
    EXIT_PASSED,
)
from harness.verdict import CLEANUP_NOT_VERIFIED, Verdict, decide_verdict


def test_each_verdict_owns_its_exit_code() -> None:
    assert {v: v.exit_code for v in Verdict} == {
        Verdict.PASSED: EXIT_PASSED, Verdict.FAILED: EXIT_FAILED,
        Verdict.BAD_INPUT: EXIT_BAD_INPUT, Verdict.ABORTED: EXIT_ABORTED,
        Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE,
    }
    assert [Verdict.from_exit_code(v.exit_code) for v in Verdict] == list(Verdict)


def test_check_commands_codes_are_not_verdicts() -> None:
    assert EXIT_NOT_VERIFIED == 4 and EXIT_OVERDUE == 5
    assert Verdict.from_exit_code(EXIT_NOT_VERIFIED) == Verdict.ABORTED  # unknown codes read as aborted
    assert all(v.exit_code not in (EXIT_NOT_VERIFIED, EXIT_OVERDUE) for v in Verdict)


def test_a_verdict_is_written_and_compared_as_its_value() -> None:
    assert json.dumps({"verdict": Verdict.FAILED}) == '{"verdict": "failed"}'
    assert Verdict.PASSED == "passed"


@pytest.mark.parametrize(
    ("met", "abort", "cleanup", "verdict", "reason"),
    [
        (True, None, True, Verdict.PASSED, None),
        (False, None, True, Verdict.FAILED, None),
        (False, None, False, Verdict.FAILED, None),  # the objectives decide a failed drill
        (True, None, False, Verdict.ABORTED, CLEANUP_NOT_VERIFIED),
        (True, "stop condition held", True, Verdict.ABORTED, "stop condition held"),
        (False, "stop condition held", False, Verdict.ABORTED, "stop condition held"),
    ],
)
def test_decide_verdict(met: bool, abort: str | None, cleanup: bool, verdict: Verdict, reason: str | None) -> None:
    decision = decide_verdict(objectives_met=met, abort_reason=abort, cleanup_verified=cleanup)
    assert (decision.verdict, decision.abort_reason) == (verdict, reason)
