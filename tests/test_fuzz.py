"""Property-based fuzzing (Hypothesis) of the two doors hostile input comes through: the scenario
loader and `drill report`'s run-directory readers. The property is the error contract: either
the input is accepted, or a ScenarioError (exit 2) names the file — never any other exception.

Bounded: 120 examples per loader property and 40 damaged run directories (a few seconds in
all); DRILL_FUZZ_EXAMPLES raises it for a longer hunt. No example database: a failure prints
the example that broke the contract.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import ScenarioError
from harness.results import compute_results
from harness.scenario import load_scenario
from harness.testing.hostile import BASE, synthetic_run

EXAMPLES = int(os.environ.get("DRILL_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Scalars that have broken loaders before: huge and odd numbers, control characters, surrogates,
# markup, YAML tags and anchors.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "2020-13-45", "!!bool maybe", "!!float ''", "!!timestamp x", "9" * 400, ".nan", "-.inf", "1e999",
        "0.000001ms", "0", "-1", "[/x]", "$\\foo{$", "&a [1]", "*a", "\\0", "a\\r\\nb", "127.0.0.1:99999",
        "http://127.0.0.1:0", "'\\ud800'", "\"\\ud800\"", "\"a\\0b\"", "[" * 60, "{" * 60, "~", "null", "[]", "{}",
    ]),
)
yaml_value: Any = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), nasty_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
BASE_DATA = yaml.safe_load(BASE)
PATHS = [
    ("name",), ("description",), ("stack",), ("stack", "file"), ("stack", "project"), ("toxiproxy", "url"),
    ("load", "host"), ("load", "users"), ("load", "request"), ("load", "request", "path"),
    ("load", "request", "headers"), ("load", "request", "json"), ("load", "locustfile"), ("load", "timeout_s"),
    ("load", "probe_rate_hz"), ("phases", "fault"), ("phases",), ("faults",), ("faults", 0, "name"),
    ("faults", 0, "at"), ("faults", 0, "duration"), ("faults", 0, "latency_ms"), ("faults", 0, "target"),
    ("objectives",), ("measurement",), ("proxies",), ("stop_when",), ("capacity",), ("kind",), ("apiVersion",),
]


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="drill-fuzz-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def assert_contract(path: Path) -> None:
    try:
        load_scenario(path)
    except ScenarioError as exc:
        assert exc.problems, "a ScenarioError must carry its message"
        for problem in exc.problems:
            assert problem.startswith(str(path)), problem


def _set(data: Any, where: tuple[Any, ...], value: Any) -> Any:
    node = data
    for key in where[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return data
    if isinstance(node, dict):
        node[where[-1]] = value
    return data


@FUZZ
@given(where=st.sampled_from(PATHS), value=yaml_value)
def test_a_structured_mutation_is_accepted_or_one_scenario_error(scratch: Path, where: tuple[Any, ...],
                                                                 value: Any) -> None:
    import copy

    data = _set(copy.deepcopy(BASE_DATA), where, value)
    path = scratch / "structured.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8", errors="surrogatepass")
    assert_contract(path)


@FUZZ
@given(at=st.integers(min_value=0, max_value=len(BASE)), cut=st.integers(min_value=0, max_value=8),
       insert=st.one_of(nasty_text, st.binary(max_size=8).map(lambda b: b.decode("latin-1"))))
def test_a_textual_mutation_is_accepted_or_one_scenario_error(scratch: Path, at: int, cut: int, insert: str) -> None:
    path = scratch / "textual.yaml"
    path.write_bytes((BASE[:at] + insert + BASE[at + cut:]).encode("utf-8", "surrogatepass"))
    assert_contract(path)


# --- drill report over damaged run directories ----------------------------------------------------


@pytest.fixture(scope="module")
def pristine(scratch: Path) -> Path:
    return synthetic_run(scratch / "pristine")


@settings(max_examples=max(1, EXAMPLES // 3), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["journal.jsonl", "samples/probe.csv", "scenario.yaml"]),
       fraction=st.floats(min_value=0, max_value=1), cut=st.integers(min_value=0, max_value=12),
       insert=st.one_of(st.binary(max_size=12), st.sampled_from([
           b"\xff\xfe", b"9" * 30, b"nan", b"inf", b"-1", b"1e300", b'"x"', b"\n", b",", b"{", b"$\\foo{$", b"\x00"])))
def test_report_on_a_damaged_run_dir_computes_or_names_the_file(
    scratch: Path, pristine: Path, name: str, fraction: float, cut: int, insert: bytes
) -> None:
    run_dir = scratch / "damaged"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(pristine, run_dir)
    target = run_dir / name
    data = target.read_bytes()
    at = int(fraction * len(data))
    target.write_bytes(data[:at] + insert + data[at + cut:])
    try:
        compute_results(run_dir)
    except ScenarioError as exc:
        assert str(run_dir) in str(exc), str(exc)
