"""Which worker of a parallel run runs which drill: one chain of drills per drill slot, balanced
by the last whole run's times, so the workers with a slot never wait for one and the others
never hold a drill.

A run has more pytest-xdist workers than drill slots (:mod:`harness.testing.slots`): two drills
at once, a third worker for the other tests. Handed out one at a time (``--dist loadgroup``), a
drill reached a worker whether or not a slot was free, and the worker waited, holding the
tests it had been handed after it: one whole run took 955 s where its drills' time over two
slots was 838 s, and with the longest drills handed out first the slots stood idle 256 s of
968 s and the other tests were left to the end. Here every drill (a ``slow`` test, and the group it
belongs to: the Docker tests, a module sharing a stack) goes to one of as many groups as there
are slots, longest first onto the least loaded (longest-processing-time first), so each chain is
one worker's, runs its drills one after another and holds its slot the whole time; the other
tests go to whichever worker is free.

How long a test takes comes from the last whole run: ``tests/drill-durations.txt`` (seconds and
a test's id, a line each), written from a JUnit XML by
``.venv/bin/python -m harness.testing.order ci-output/junit.xml > tests/drill-durations.txt``.
It lists the tests that took :data:`LISTED_FROM_S` or more; a test it leaves out is taken as
that long (a drill added since is too, until the file is written again), and with no file at all
a drill is taken as :data:`UNKNOWN_S` long, another test as :data:`UNKNOWN_OTHER_S`. A stale file
only costs time, never a verdict: every test still runs.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from harness.testing.parts import REPO

DURATIONS_FILE = REPO / "tests" / "drill-durations.txt"
LISTED_FROM_S = 1.0
UNKNOWN_S = 20.0
UNKNOWN_OTHER_S = 0.5

T = TypeVar("T")


def read_durations(path: Path = DURATIONS_FILE) -> dict[str, float]:
    """test id -> seconds, from ``path`` (nothing when it is missing)."""
    if not path.exists():
        return {}
    durations: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        seconds, _, test = line.strip().partition(" ")
        if test and not line.startswith("#"):
            durations[test.strip()] = float(seconds)
    return durations


def expected_seconds(durations: dict[str, float], test: str, drill: bool) -> float:
    """How long ``test`` is taken to be (module docstring)."""
    if test in durations:
        return durations[test]
    if durations:
        return LISTED_FROM_S
    return UNKNOWN_S if drill else UNKNOWN_OTHER_S


def chains(units: Sequence[T], n: int, seconds: Callable[[T], float]) -> list[list[T]]:
    """``units`` dealt to ``n`` chains, longest first onto the chain with the least summed time
    (ties: the lower chain; units of equal length keep their order)."""
    dealt: list[list[T]] = [[] for _ in range(n)]
    load = [0.0] * n
    for unit in sorted(units, key=lambda u: -seconds(u)):
        k = min(range(n), key=lambda i: (load[i], i))
        dealt[k].append(unit)
        load[k] += seconds(unit)
    return dealt


def junit_durations(junit: Path) -> list[tuple[float, str]]:
    """(seconds, test id) of every test of a JUnit XML (pytest's ids, without pytest-xdist's
    ``@group``), longest first; a test run twice (a drill that ran again alone) once, its longer
    try."""
    longest: dict[str, float] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = (case.get("classname") or "").replace(".", "/") + ".py"
        test = f"{module}::{(case.get('name') or '').split('@', 1)[0]}"
        longest[test] = max(longest.get(test, 0.0), float(case.get("time") or 0.0))
    return sorted(((seconds, test) for test, seconds in longest.items()), reverse=True)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m harness.testing.order JUNIT_XML > tests/drill-durations.txt", file=sys.stderr)
        return 2
    print(f"# seconds and test id of the tests of a whole run that took {LISTED_FROM_S:g} s or more"
          " (harness/testing/order.py reads it)")
    for seconds, test in junit_durations(Path(argv[0])):
        if seconds >= LISTED_FROM_S:
            print(f"{seconds:.1f} {test}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
