"""Which worker runs which drill (harness.testing.order): one chain of drills per slot, dealt
longest first onto the least loaded, timed by tests/drill-durations.txt."""

from __future__ import annotations

from pathlib import Path

from harness.testing.order import (
    DURATIONS_FILE,
    LISTED_FROM_S,
    UNKNOWN_OTHER_S,
    UNKNOWN_S,
    chains,
    expected_seconds,
    junit_durations,
    read_durations,
)


def test_drills_are_dealt_longest_first_onto_the_least_loaded_chain() -> None:
    units = [("docker", 360.0), ("stall", 64.0), ("shape", 35.0), ("shape2", 35.0), ("short", 22.0), ("tiny", 1.0)]
    dealt = chains(units, 2, lambda u: u[1])
    assert dealt[0] == [("docker", 360.0)]
    assert dealt[1] == [("stall", 64.0), ("shape", 35.0), ("shape2", 35.0), ("short", 22.0), ("tiny", 1.0)]
    even = chains([("a", 10.0), ("b", 9.0), ("c", 8.0), ("d", 1.0)], 2, lambda u: u[1])
    assert even == [[("a", 10.0), ("d", 1.0)], [("b", 9.0), ("c", 8.0)]]
    assert chains([], 2, lambda u: 1.0) == [[], []]


def test_a_test_the_file_leaves_out_is_short_and_without_a_file_a_drill_is_long() -> None:
    listed = {"tests/test_a.py::test_drill": 30.0}
    assert expected_seconds(listed, "tests/test_a.py::test_drill", drill=True) == 30.0
    assert expected_seconds(listed, "tests/test_a.py::test_quick", drill=True) == LISTED_FROM_S
    assert expected_seconds({}, "tests/test_a.py::test_drill", drill=True) == UNKNOWN_S
    assert expected_seconds({}, "tests/test_a.py::test_quick", drill=False) == UNKNOWN_OTHER_S


def test_the_durations_file_round_trips_from_a_junit_xml(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.test_a" name="test_one" time="12.5"/>'
        '<testcase classname="tests.test_b" name="test_two[x.yaml]@module:tests/test_b.py]" time="30.25"/>'
        '<testcase classname="tests.test_a" name="test_fast" time="0.01"/>'
        '<testcase classname="tests.test_a" name="test_one" time="9.5"/>'
        '</testsuite></testsuites>', encoding="utf-8")
    rows = junit_durations(junit)
    assert len(rows) == 3  # test_one ran twice (a drill run again alone): once, its longer try
    assert rows[:2] == [(30.25, "tests/test_b.py::test_two[x.yaml]"), (12.5, "tests/test_a.py::test_one")]
    written = tmp_path / "durations.txt"
    written.write_text("# comment\n" + "".join(f"{s} {t}\n" for s, t in rows[:2]), encoding="utf-8")
    assert read_durations(written) == {"tests/test_b.py::test_two[x.yaml]": 30.25, "tests/test_a.py::test_one": 12.5}
    assert read_durations(tmp_path / "missing.txt") == {}


def test_the_shipped_durations_name_tests_that_exist() -> None:
    """A renamed drill would silently lose its place: the file's ids are this suite's."""
    repo = DURATIONS_FILE.parents[1]
    for test in read_durations():
        module, _, name = test.partition("::")
        assert name.split("[", 1)[0] in (repo / module).read_text(encoding="utf-8"), test
