"""pytest integration: ``pytest scenarios/`` runs every scenario file as a test, and the ``drill``
fixture runs scenarios from users' own test functions.

Each scenario file is one item named after the scenario and its faults,
``latency.yaml::latency[provider-slow:latency]``; the fault types and names are also
keywords, so ``pytest scenarios/ -k endpoint_kill`` runs the drills that kill an endpoint.

A scenario item passes when the drill's verdict is the scenario's ``expect`` (``passed`` unless
a negative control says ``failed``); otherwise it fails with each missed objective, measured
against its target (verdict ``failed``), the abort reason (``aborted``) or the file:line
problems (bad input).

An **inconclusive** drill (the instrument could not see well enough to decide an objective,
exit 6) is neither a pass nor a failure: outside CI the item is *skipped* with ``INCONCLUSIVE:``
and one line per cause; with ``CI`` set (``CI=true``, as CI systems do) it *fails* with the same
lines, because a skip goes green there and nothing may silently go green. Either way the terminal
summary counts inconclusive drills on a line of their own.

The figures reach JUnit XML through ``user_properties``: ``verdict``,
``exit_code``, ``run_dir``, ``report``, ``resolution_s``; per fault ``rto_s.<fault>``,
``time_to_detect_s.<fault>``, ``failover_s.<fault>``, ``failback_s.<fault>``, ``degraded_s.<fault>``,
``impact.<fault>``; the worst of each over the faults as plain ``rto_s``, ``time_to_detect_s``,
...; per objective ``objective.<name>.measured``, ``.target``, ``.passed``; per phase
``<phase>.p95_ms``, ``<phase>.error_rate``, ``<phase>.rps``; when requests streamed, per phase
``<phase>.ttft_p50_ms``, ``<phase>.ttft_p95_ms``, ``<phase>.stream_completion_rate``,
``<phase>.streams_cut``.

Options: ``--drill-reports DIR`` (where run directories go, default ``reports``) and
``--drill-runtime local|compose`` (override every scenario's runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

INCONCLUSIVE_KEY = pytest.StashKey[list[str]]()
"""The node ids of inconclusive scenario items (counted in the terminal summary)."""


def in_ci() -> bool:
    """True when the ``CI`` environment variable says so (GitHub, GitLab, ... set ``CI=true``)."""
    import os

    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


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


def item_name(path: Path) -> tuple[str, list[str]]:
    """``scenario-name[fault:type,...]`` and the fault types and names (the item's keywords).

    A file that does not load is named after its stem: its item fails with the file:line problem.
    """
    from harness.errors import ScenarioError
    from harness.scenario import load_scenario

    try:
        spec = load_scenario(path).spec
    except ScenarioError:
        return path.stem, []
    faults = [(str(f.name), str(f.type)) for f in spec.faults]
    label = ",".join(f"{name}:{kind}" for name, kind in faults)
    keywords = sorted({kind for _, kind in faults} | {name for name, _ in faults})
    return (f"{spec.name}[{label}]" if label else str(spec.name)), keywords


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """A line of its own for inconclusive drills: they are neither passes nor failures."""
    found = config.stash.get(INCONCLUSIVE_KEY, [])
    if found:
        terminalreporter.write_line(
            f"drill: {len(found)} inconclusive (neither passed nor failed): " + ", ".join(found), yellow=True
        )


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        name, keywords = item_name(self.path)
        item = ScenarioItem.from_parent(self, name=name)
        item.extra_keyword_matches.update(keywords)
        yield item


class DrillFailed(Exception):
    """A scenario item's failure, reported without a traceback."""


def _expected_verdict(path: Path) -> str:
    """``expect:`` of the scenario: negative controls pass as tests when the drill fails."""
    from harness.scenario import load_scenario

    return load_scenario(path).spec.expect


FAULT_FIGURES = ("rto_s", "time_to_detect_s", "failover_s", "failback_s", "degraded_s", "onset_uncertainty_s")
PHASE_FIGURES = ("rps", "error_rate", "p50_ms", "p95_ms", "p99_ms")
# phases.<phase>.streaming key -> property suffix (present only when requests streamed)
STREAM_FIGURES = {"ttft_p50_ms": "ttft_p50_ms", "ttft_p95_ms": "ttft_p95_ms",
                  "completion_rate": "stream_completion_rate", "cut": "streams_cut"}


def junit_properties(results: dict[str, Any], run_dir: Path, verdict: str, exit_code: int) -> list[tuple[str, str]]:
    """The figures of a run as JUnit ``user_properties`` (name, value); missing figures are left out.

    Per fault ``<figure>.<fault>``; the worst (largest) over the faults as plain ``<figure>``, so
    a dashboard can chart ``rto_s`` without knowing fault names."""
    props: list[tuple[str, str]] = [
        ("verdict", verdict), ("exit_code", str(exit_code)), ("run_dir", str(run_dir)),
        ("report", str(run_dir / "report.html")),
    ]
    resolution = (results.get("measurement") or {}).get("resolution_s")
    if resolution is not None:
        props.append(("resolution_s", str(resolution)))
    worst: dict[str, float] = {}
    for fault in results.get("faults") or []:
        name = str(fault.get("name"))
        if fault.get("impact") is not None:
            props.append((f"impact.{name}", str(fault["impact"])))
        for figure in FAULT_FIGURES:
            value = fault.get(figure)
            if isinstance(value, int | float) and not isinstance(value, bool):
                props.append((f"{figure}.{name}", str(value)))
                worst[figure] = max(worst.get(figure, float(value)), float(value))
    props.extend((figure, str(worst[figure])) for figure in FAULT_FIGURES if figure in worst)
    for objective in results.get("objectives") or []:
        key = f"objective.{objective.get('name')}"
        for part in ("measured", "target"):
            if objective.get(part) is not None:  # not measured: left out, never "None"
                props.append((f"{key}.{part}", str(objective[part])))
        props.append((f"{key}.passed", str(bool(objective.get("passed"))).lower()))
    for phase, figures in sorted((results.get("phases") or {}).items()):
        for figure in PHASE_FIGURES:
            value = (figures or {}).get(figure)
            if value is not None:
                props.append((f"{phase}.{figure}", str(value)))
        streaming = (figures or {}).get("streaming") or {}
        for key, suffix in STREAM_FIGURES.items():
            if streaming.get(key) is not None:
                props.append((f"{phase}.{suffix}", str(streaming[key])))
    return props


class ScenarioItem(pytest.Item):
    def runtest(self) -> None:
        from harness.engine import run_drill
        from harness.errors import DrillError, ScenarioError

        config = self.config
        try:
            result = run_drill(
                self.path,
                runtime=config.getoption("--drill-runtime"),
                reports_dir=Path(config.getoption("--drill-reports")),
            )
        except ScenarioError as exc:
            raise DrillFailed("bad input (nothing applied):\n" + "\n".join(exc.problems)) from None
        except DrillError as exc:
            raise DrillFailed(f"aborted (exit {exc.exit_code}): {exc}") from None
        self.user_properties.extend(junit_properties(result.results, result.run_dir, result.verdict,
                                                     result.exit_code))
        expected = _expected_verdict(self.path)
        if result.verdict == "inconclusive" and expected != "inconclusive":
            self._inconclusive(result)
        if result.verdict != expected:
            from harness.report.reasons import fault_line, reasons

            why = "\n  ".join(reasons(result.results)) or "every objective passed"
            figures = "".join(f"\n  fault {f.get('name')}: {fault_line(f)}" for f in result.results.get("faults", []))
            raise DrillFailed(
                f"verdict {result.verdict} (expected {expected}):\n  {why}{figures}\nreport: {result.report_path}"
            )

    def _inconclusive(self, result: Any) -> None:
        """Skip (or, under CI, fail) with one line per cause: never a plain pass or fail."""
        from harness.report.reasons import reasons

        self.config.stash.setdefault(INCONCLUSIVE_KEY, []).append(self.nodeid)
        why = "\n  ".join(reasons(result.results))
        text = (f"INCONCLUSIVE (the instrument could not see well enough to decide):\n  {why}\n"
                f"report: {result.report_path}")
        if in_ci():
            raise DrillFailed(text + "\n(CI is set: an inconclusive drill fails the job rather than go green)")
        pytest.skip(text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, DrillFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"drill scenario {self.name}"


@pytest.fixture
def drill(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    """Run a scenario and get its :class:`harness.engine.RunResult`; the run's figures are added
    to the test's JUnit ``user_properties`` (see docs/pytest.md)::

        def test_failover(drill):
            result = drill("scenarios/latency.yaml")
            assert result.verdict == "passed"
            assert result.results["faults"][0]["rto_s"] < 10
    """
    from harness.engine import run_drill

    def run(scenario: str | Path, **kwargs: Any) -> Any:
        kwargs.setdefault("out", tmp_path / Path(scenario).stem)
        result = run_drill(scenario, **kwargs)
        request.node.user_properties.extend(
            junit_properties(result.results, result.run_dir, result.verdict, result.exit_code)
        )
        return result

    return run
