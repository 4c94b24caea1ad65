"""The order a parallel run hands tests out in: the longest drills first, the other tests spread
between them.

pytest-xdist's ``--dist loadgroup`` hands each worker the next test of the run's list when it is
almost out of work (a group, whole, before the single tests: its scheduler sorts work by size).
Two things waste a run of more workers than drill slots (:mod:`harness.testing.slots`):

- a tail: the last drill to start is a long one, and runs alone while the other slot idles. The
  longest drills go first (longest-processing-time first: the last to start are the shortest);
- the other tests piled up at the end, where three workers run them while no drill runs. They are
  spread between the drills in proportion, so the worker without a slot has some at hand all along.

How long a drill takes comes from the last whole run: ``tests/drill-durations.txt`` (seconds and
a test's id, a line each), written from a JUnit XML by
``.venv/bin/python -m harness.testing.order ci-output/junit.xml > tests/drill-durations.txt``.
A drill missing from it is taken as :data:`UNKNOWN_S` long. A stale file only costs time, never
a verdict: every test still runs.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from harness.testing.parts import REPO

DURATIONS_FILE = REPO / "tests" / "drill-durations.txt"
UNKNOWN_S = 20.0

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


def spread(items: Sequence[T], is_drill: Callable[[T], bool], seconds: Callable[[T], float]) -> list[T]:
    """``items`` reordered: the drills longest first (ties keep their order), the other items in
    their own order, spread between the drills so that each drill is followed by its share of
    them (by count)."""
    drills = sorted((i for i in items if is_drill(i)), key=lambda i: -seconds(i))
    others = [i for i in items if not is_drill(i)]
    if not drills:
        return others
    ordered: list[T] = []
    taken = 0
    for n, drill in enumerate(drills, start=1):
        ordered.append(drill)
        share = len(others) * n // len(drills)
        ordered.extend(others[taken:share])
        taken = share
    return ordered


def junit_durations(junit: Path) -> list[tuple[float, str]]:
    """(seconds, test id) of every test of a JUnit XML (pytest's ids, without pytest-xdist's
    ``@group``), longest first."""
    rows: list[tuple[float, str]] = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = (case.get("classname") or "").replace(".", "/") + ".py"
        name = (case.get("name") or "").split("@", 1)[0]
        rows.append((float(case.get("time") or 0.0), f"{module}::{name}"))
    return sorted(rows, reverse=True)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m harness.testing.order JUNIT_XML > tests/drill-durations.txt", file=sys.stderr)
        return 2
    print("# seconds and test id of the tests over 5 s in a whole run (harness/testing/order.py reads it)")
    for seconds, test in junit_durations(Path(argv[0])):
        if seconds >= 5.0:
            print(f"{seconds:.1f} {test}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
