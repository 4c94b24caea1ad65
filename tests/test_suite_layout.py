"""The suite's own rules: test modules import shared helpers from the package (harness.testing),
never from each other or from conftest.py, so a helper has one home and a test module can move or
go without breaking another; the lanes scripts/test offers are the ones the docs name."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import harness.testing
from harness.testing import REPO

TESTS = REPO / "tests"


def sibling_imports(path: Path, siblings: set[str], root: Path = REPO) -> list[str]:
    """``FILE:LINE module`` for every import in ``path`` of a module that lives in tests/."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom):
            names = [f"{'.' * node.level}{node.module or ''}"]  # a relative import: tests/ is no package
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in siblings or top == "tests" or name.startswith("."):
                found.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    return found


def test_test_modules_import_helpers_from_the_package_not_from_each_other() -> None:
    siblings = {p.stem for p in TESTS.glob("*.py")}
    offending = [hit for path in sorted(TESTS.rglob("*.py")) if "data" not in path.parts
                 for hit in sibling_imports(path, siblings)]
    assert offending == [], (
        "move the shared helper into harness/testing/ and import it from there "
        "(fixtures shared by modules go in tests/conftest.py):\n" + "\n".join(offending)
    )


def test_the_rule_sees_every_kind_of_sibling_import(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text("import os\nfrom conftest import free_port\nimport test_engine\n"
                      "def f():\n    from tests.streaming_run import streaming_run\n"
                      "from harness.testing import free_port\n")
    hits = [hit.split(" ", 1)[1] for hit in sibling_imports(module, {"conftest", "test_engine"}, root=tmp_path)]
    assert hits == ["conftest", "test_engine", "tests.streaming_run"]


def test_the_shipped_helpers_are_importable_as_documented() -> None:
    for name in harness.testing.__all__:
        assert getattr(harness.testing, name) is not None, name


def test_scripts_test_fast_is_the_not_slow_lane() -> None:
    text = (REPO / "scripts" / "test").read_text(encoding="utf-8")
    assert "--fast" in text and '"not slow"' in text
    done = subprocess.run(["bash", "-n", str(REPO / "scripts" / "test")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_groups_and_chains_of_drills_each_keep_to_one_worker(tmp_path: Path) -> None:
    """The suite's conftest over a small suite on 3 workers and 2 drill slots, as scripts/test
    runs: the Docker tests keep to one worker, as does a module sharing a fixture; the drills
    (``slow``) go to two chains, each run by one worker, never the same one; the other tests go
    anywhere. Every test's worker and group read from the verbose log (one inner run for both
    properties: each costs a pytest-xdist start of four processes)."""
    import shutil
    import sys

    (tmp_path / "tests").mkdir()
    shutil.copy(TESTS / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    docker: needs Docker\n    slow: a drill\n    beside_drills: no slot\n")
    body = "".join(f"@pytest.mark.slow\ndef test_drill_{i}():\n    time.sleep(0.2)\n\n" for i in range(6))
    body += "".join(f"@pytest.mark.docker\ndef test_docker_{i}():\n    pass\n\n" for i in range(4))
    body += "".join(f"def test_free_{i}():\n    pass\n\n" for i in range(6))
    (tmp_path / "tests" / "test_a.py").write_text("import time\n\nimport pytest\n\n" + body)
    (tmp_path / "tests" / "test_b.py").write_text(
        "import pytest\n\n@pytest.fixture(scope='module')\ndef shared():\n    return 1\n\n"
        + "".join(f"def test_shared_{i}(shared):\n    pass\n\n" for i in range(4)))
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "3", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
                           "tests"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DRILL_TEST_DRILLS": "2"})
    assert done.returncode == 0, done.stdout + done.stderr
    groups: dict[str, set[str]] = {}
    for line in done.stdout.splitlines():
        if " PASSED " in line:
            worker, test = line.split()[0], line.split(" PASSED ")[1].strip()
            name, _, group = test.split("::", 1)[1].partition("@")  # test_docker_0@docker
            groups.setdefault(f"{name.rsplit('_', 1)[0]}@{group}" if group else name.rsplit("_", 1)[0],
                              set()).add(worker)
    assert len(groups["test_docker@docker"]) == 1, groups
    assert len(groups["test_shared@module:tests/test_b.py"]) == 1, groups
    chains = {group: workers for group, workers in groups.items() if group.startswith("test_drill@drill-slot-")}
    assert set(chains) == {"test_drill@drill-slot-0", "test_drill@drill-slot-1"}, groups
    assert all(len(workers) == 1 for workers in chains.values()), groups
    assert chains["test_drill@drill-slot-0"] != chains["test_drill@drill-slot-1"], groups
    assert "test_free" in groups, groups  # no group: any worker


def test_a_control_judged_beyond_slowness_keeps_an_rto_missed_on_errors() -> None:
    """``failed_beyond_slowness`` drops a missed RTO only when no answer was an error."""
    from harness.testing.drills import failed_beyond_slowness

    def results(error_rate: float) -> dict[str, object]:
        return {"objectives": [{"name": "rto_s", "passed": False, "measured": 5.7},
                               {"name": "max_error_rate", "passed": error_rate <= 0.01, "measured": error_rate},
                               {"name": "max_tokens_repeated", "passed": False, "measured": 3}]}

    assert failed_beyond_slowness(results(0.0)) == {"max_tokens_repeated"}
    assert failed_beyond_slowness(results(0.004)) == {"rto_s", "max_tokens_repeated"}
    assert failed_beyond_slowness(results(0.2)) == {"rto_s", "max_error_rate", "max_tokens_repeated"}


def test_free_ports_are_never_handed_to_two_processes_and_stay_out_of_the_ephemeral_range() -> None:
    """Two processes picking 300 ports each from ~20,000 would share about 4 by chance; with the
    machine-wide reservations (harness.testing.parts) they share none. And no pick falls where the
    OS hands out the local ports of outgoing connections."""
    from harness.testing.parts import _EPHEMERAL, free_port

    other = subprocess.run([sys.executable, "-c", "from harness.testing import free_port\n"
                            "print(*(free_port() for _ in range(300)))"],
                           capture_output=True, text=True, check=True, cwd=REPO)
    theirs = {int(port) for port in other.stdout.split()}
    ours = {free_port() for _ in range(300)}
    assert len(theirs) == 300 and len(ours) == 300
    assert theirs.isdisjoint(ours)
    assert not any(port in _EPHEMERAL for port in ours | theirs)
