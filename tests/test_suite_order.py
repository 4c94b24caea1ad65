"""The order a parallel run hands tests out in (harness.testing.order): longest drills first, the
other tests spread between them, timed by tests/drill-durations.txt."""

from __future__ import annotations

from pathlib import Path

from harness.testing.order import DURATIONS_FILE, junit_durations, read_durations, spread


def test_drills_go_longest_first_and_the_other_tests_are_spread_between_them_in_their_order() -> None:
    seconds = {"d-short": 5.0, "d-long": 60.0, "d-mid": 20.0}
    items = ["a", "d-short", "b", "c", "d-long", "d", "e", "d-mid", "f"]
    ordered = spread(items, lambda i: i.startswith("d-"), lambda i: seconds.get(i, 0.0))
    assert sorted(ordered) == sorted(items)
    assert [i for i in ordered if i.startswith("d-")] == ["d-long", "d-mid", "d-short"]
    assert [i for i in ordered if not i.startswith("d-")] == ["a", "b", "c", "d", "e", "f"]
    # Six others after three drills: two after each, none held back to the end.
    assert ordered == ["d-long", "a", "b", "d-mid", "c", "d", "d-short", "e", "f"]


def test_without_drills_the_order_is_kept_and_ties_keep_theirs() -> None:
    assert spread(["x", "y", "z"], lambda i: False, lambda i: 1.0) == ["x", "y", "z"]
    assert spread(["d1", "d2", "d3"], lambda i: True, lambda i: 7.0) == ["d1", "d2", "d3"]


def test_the_durations_file_round_trips_from_a_junit_xml(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.test_a" name="test_one" time="12.5"/>'
        '<testcase classname="tests.test_b" name="test_two[x.yaml]@module:tests/test_b.py]" time="30.25"/>'
        '<testcase classname="tests.test_a" name="test_fast" time="0.01"/>'
        '</testsuite></testsuites>', encoding="utf-8")
    rows = junit_durations(junit)
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
