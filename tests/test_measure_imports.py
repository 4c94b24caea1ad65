"""measure is pure: it imports numpy, pandas, the standard library and itself, nothing else of
harness; and the copies of the sample schema and layout kept for Locust's child process agree with
measure's and rundir's."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from harness import rundir
from harness.load import samples as load_samples
from harness.measure.samples import SAMPLE_COLUMNS

MEASURE = Path(__file__).parent.parent / "harness" / "measure"
ALLOWED_THIRD_PARTY = {"numpy", "pandas"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_measure_imports_only_numpy_pandas_the_standard_library_and_itself() -> None:
    files = sorted(MEASURE.glob("*.py"))
    assert len(files) > 10
    wrong = []
    for path in files:
        for line, module in _imports(path):
            top = module.split(".")[0]
            if module == "harness.measure" or module.startswith("harness.measure."):
                continue
            if top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names or top == "__future__":
                continue
            wrong.append(f"{path.name}:{line} imports {module}")
    assert wrong == []


def test_the_walk_would_catch_a_harness_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\nfrom harness.rundir.journal import utc_iso\nimport harness.errors\n", encoding="utf-8")
    assert [m for _, m in _imports(bad)] == ["numpy", "harness.rundir.journal", "harness.errors"]


def test_the_writers_copies_agree_with_measure_and_rundir() -> None:
    assert load_samples.COLUMNS == SAMPLE_COLUMNS
    assert load_samples.SAMPLES_DIR == rundir.SAMPLES_DIR
    assert load_samples.LOCUST_FILE == rundir.LOCUST_SAMPLES_FILE
    assert load_samples.PROBE_FILE == rundir.PROBE_SAMPLES_FILE
