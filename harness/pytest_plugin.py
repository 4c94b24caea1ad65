"""pytest integration: ``pytest scenarios/`` runs every scenario file as a test, and the ``drill``
fixture runs scenarios from users' own test functions.

A scenario item passes when the drill's verdict is the scenario's ``expect`` (``passed`` unless
a negative control says ``failed``); otherwise it fails with the missed
objectives (verdict ``failed``), the abort reason (``aborted``) or the file:line problems (bad
input). Run ids, verdicts and RTOs reach JUnit XML through ``user_properties``.

Options: ``--drill-reports DIR`` (where run directories go, default ``reports``) and
``--drill-runtime local|compose`` (override every scenario's runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drill", "drill scenarios")
    group.addoption("--drill-reports", default="reports", help="directory for drill run directories")
    group.addoption("--drill-runtime", default=None, choices=("local", "compose"),
                    help="override the runtime of every scenario")


def _is_scenario(path: Path) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return False
    return "drill/v1" in head and "kind: Scenario" in head


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if _is_scenario(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Local-runtime drills first, compose drills after: a compose stack stays up after its drill
    and holds the ports the reference local stack needs."""
    def uses_compose(item: pytest.Item) -> bool:
        if not isinstance(item, ScenarioItem):
            return False
        override = config.getoption("--drill-runtime")
        return (override or _runtime(item.path)) == "compose"

    items.sort(key=uses_compose)  # stable: the order within each group is kept


def _runtime(path: Path) -> str:
    from harness.errors import ScenarioError
    from harness.scenario import load_scenario

    try:
        return load_scenario(path).spec.stack.runtime
    except ScenarioError:
        return "local"  # a bad file fails fast in runtest, with its file:line message


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class DrillFailed(Exception):
    """A scenario item's failure, reported without a traceback."""


def _expected_verdict(path: Path) -> str:
    """``expect:`` of the scenario: negative controls pass as tests when the drill fails."""
    from harness.scenario import load_scenario

    return load_scenario(path).spec.expect


class ScenarioItem(pytest.Item):
    def runtest(self) -> None:
        from harness.engine import run_drill
        from harness.errors import ScenarioError

        config = self.config
        try:
            result = run_drill(
                self.path,
                runtime=config.getoption("--drill-runtime"),
                reports_dir=Path(config.getoption("--drill-reports")),
            )
        except ScenarioError as exc:
            raise DrillFailed("bad input (nothing applied):\n" + "\n".join(exc.problems)) from None
        self.user_properties.append(("run_dir", str(result.run_dir)))
        self.user_properties.append(("verdict", result.verdict))
        for fault in result.results.get("faults", []):
            self.user_properties.append((f"rto_s.{fault['name']}", str(fault.get("rto_s"))))
        expected = _expected_verdict(self.path)
        if result.verdict != expected:
            from harness.report.verdict import reasons

            why = "\n  ".join(reasons(result.results)) or "every objective passed"
            raise DrillFailed(
                f"verdict {result.verdict} (expected {expected}):\n  {why}\nreport: {result.report_path}"
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, DrillFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"drill scenario {self.name}"


@pytest.fixture
def drill(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    """Run a scenario and get its :class:`harness.engine.RunResult`::

        def test_failover(drill):
            result = drill("scenarios/latency.yaml")
            assert result.verdict == "passed"
            assert result.results["faults"][0]["rto_s"] < 10
    """
    from harness.engine import run_drill

    def run(scenario: str | Path, **kwargs: Any) -> Any:
        kwargs.setdefault("out", tmp_path / Path(scenario).stem)
        return run_drill(scenario, **kwargs)

    return run
