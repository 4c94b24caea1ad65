"""`pytest some/scenario.yaml` runs the drill as a test item (the pytest11 plugin)."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.testing import free_port, serve_in_thread, toxiproxy_server
from harness.testing.drills import own_service
from harness.testing.drills import own_service_scenario as scenario


def run_pytest(tmp_path: Path, target: Path) -> tuple[subprocess.CompletedProcess[str], ET.Element]:
    junit = tmp_path / "junit.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(target), "-p", "no:cacheprovider", "-q",
         f"--junitxml={junit}", "--drill-reports", str(tmp_path / "reports"), "--rootdir", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    return done, ET.parse(junit).getroot()


@dataclass(frozen=True)
class Items:
    """One inner pytest run over two scenario files and what it left: its output, and each
    item's JUnit test case and properties (``passes``, ``misses``)."""

    done: subprocess.CompletedProcess[str]
    reports: Path
    cases: dict[str, ET.Element]

    def props(self, item: str) -> dict[str | None, str | None]:
        return {p.get("name"): p.get("value") for p in self.cases[item].iter("property")}


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Items]:
    """Two short drills of the test's own service as items of one inner pytest run, read by the
    tests below: ``passes/own.yaml`` passes; ``misses/own.yaml`` (400 ms for 3 s) misses a p95
    of 2x baseline and keeps its RTO. One run, not one a test: each item is a 9 s drill, and the
    inner pytest's own start is paid once (the suite ran three of them, ~70 s, for what two show)."""
    root = tmp_path_factory.mktemp("items")
    with toxiproxy_server() as toxiproxy_url, serve_in_thread(own_service()) as url:
        upstream = url.removeprefix("http://")
        for name, over in (("passes", {}), ("misses", {
            "objectives": "{rto_s: 30, p95_ms: 2x baseline}",
            "fault": "{name: slow, type: latency, target: {proxy: svc}, latency_ms: 400, duration: 3s}",
        })):
            (root / name).mkdir()
            scenario(root / name, toxiproxy_url, upstream, free_port(), **over)
        done, junit = run_pytest(root, root)
    cases = {case.get("classname", "").split(".")[0]: case for case in junit.iter("testcase")}
    yield Items(done, root / "reports", cases)


@pytest.mark.slow
@pytest.mark.beside_drills  # an in-process service of its own: little CPU (tests/conftest.py)
def test_scenario_file_is_a_passing_test_item(items: Items) -> None:
    assert "1 failed, 1 passed" in items.done.stdout, items.done.stdout + items.done.stderr
    assert items.cases["passes"].find("failure") is None
    props = items.props("passes")
    assert props["verdict"] == "passed"
    assert Path(str(props["run_dir"])).is_relative_to(items.reports)
    assert "rto_s.slow" in props


@pytest.mark.slow
@pytest.mark.beside_drills  # an in-process service of its own: little CPU (tests/conftest.py)
def test_missed_objective_fails_the_item_and_names_it(items: Items) -> None:
    assert items.done.returncode == 1, items.done.stdout
    assert "verdict failed (expected passed):" in items.done.stdout
    # One line per missed objective, measured against target.
    assert re.search(r"p95_ms [\d,.]+ ms > 2x baseline \(= [\d.]+ ms\)", items.done.stdout), items.done.stdout
    assert "fault slow: impact" in items.done.stdout
    assert items.cases["misses"].find("failure") is not None


def test_bad_scenario_item_reports_file_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: drill/v1\nkind: Scenario\nname: bad\nload: {host: http://127.0.0.1:9, userz: 1}\n"
                   "faults: [{name: x, type: down, target: {proxy: p}}]\n")
    done, _ = run_pytest(tmp_path, bad)
    assert done.returncode == 1
    assert f"{bad}:4 load.userz: unknown key" in done.stdout


def test_non_scenario_yaml_is_not_collected(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("just: data\n")
    done = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-q", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 5  # no tests collected


def test_local_drills_are_collected_before_compose_drills(tmp_path: Path) -> None:
    """A compose stack stays up after its drill and holds the local stack's ports."""
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    body = ("apiVersion: drill/v1\nkind: Scenario\nname: {name}\n{stack}\ntoxiproxy: {{url: http://127.0.0.1:9}}\n"
            "load: {{host: http://127.0.0.1:9}}\nfaults: [{{name: x, type: down, target: {{proxy: p}}}}]\n")
    (tmp_path / "a.yaml").write_text(body.format(name="a", stack="stack: {runtime: compose, file: compose.yaml}"))
    (tmp_path / "b.yaml").write_text(body.format(name="b", stack="stack: {runtime: local}"))
    done = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "--collect-only", "-q",
                           "-p", "no:cacheprovider"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    lines = [line for line in done.stdout.splitlines() if "::" in line]
    assert [line.split("::")[1] for line in lines] == ["b[x:down]", "a[x:down]"], done.stdout


def test_items_are_named_after_scenario_and_fault_and_k_selects_by_fault_type(tmp_path: Path) -> None:
    body = ("apiVersion: drill/v1\nkind: Scenario\nname: {name}\ntoxiproxy: {{url: http://127.0.0.1:9}}\n"
            "load: {{host: http://127.0.0.1:9}}\nfaults: [{fault}]\n")
    (tmp_path / "slow.yaml").write_text(body.format(
        name="provider-slow", fault="{name: hosted-slow, type: latency, target: {proxy: p}, latency_ms: 100}"))
    (tmp_path / "gone.yaml").write_text(body.format(
        name="provider-gone", fault="{name: hosted-down, type: down, target: {proxy: p}}"))

    def collected(*args: str) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "--collect-only", "-q",
                               "-p", "no:cacheprovider", *args], capture_output=True, text=True, cwd=tmp_path,
                              timeout=60)
        return sorted(line for line in done.stdout.splitlines() if "::" in line)

    assert collected() == ["gone.yaml::provider-gone[hosted-down:down]",
                           "slow.yaml::provider-slow[hosted-slow:latency]"]
    assert collected("-k", "latency") == ["slow.yaml::provider-slow[hosted-slow:latency]"]
    assert collected("-k", "down and not latency") == ["gone.yaml::provider-gone[hosted-down:down]"]


@pytest.mark.slow
@pytest.mark.beside_drills  # an in-process service of its own: little CPU (tests/conftest.py)
def test_junit_carries_the_figures_and_a_miss_shows_measured_against_target(items: Items) -> None:
    """The drill whose p95 objective is missed: its JUnit test case carries rto_s,
    time_to_detect_s and the other figures, and the objective measured against its target."""
    case = items.cases["misses"]
    assert case.get("name") == "own-service[slow:latency]"
    props = items.props("misses")
    assert props["verdict"] == "failed" and props["exit_code"] == "1"
    for figure in ("rto_s", "time_to_detect_s", "rto_s.slow", "time_to_detect_s.slow"):
        assert float(str(props[figure])) >= 0, figure
    assert props["objective.p95_ms.passed"] == "false"
    resolved = re.fullmatch(r"2x baseline \(= ([\d.]+) ms\)", str(props["objective.p95_ms.target"]))
    assert resolved, props["objective.p95_ms.target"]  # the target as written, and what it came to
    assert float(str(props["objective.p95_ms.measured"])) > float(resolved[1])
    assert "None" not in props.values()
    assert props["objective.rto_s.passed"] == "true"
    assert float(str(props["fault.p95_ms"])) > 100
    assert float(str(props["resolution_s"])) > 0


def test_junit_properties_carry_the_streaming_figures_of_each_phase(tmp_path: Path) -> None:
    """Pure: results with a streamed fault phase and a baseline that did not stream."""
    from harness.pytest_plugin import junit_properties
    from harness.testing.runs import example_results, typed

    document = example_results()
    document["phases"]["baseline"]["p95_ms"] = 20.0
    document["phases"]["fault"]["p95_ms"] = 31.5
    document["phases"]["fault"]["streaming"] = {
        "streams": 400, "completed": 395, "completion_rate": 0.988, "cut": 25, "failed_mid_stream": 5,
        "failed_before_first_token": 0, "cut_after_tokens_p50": 3.0, "cut_after_tokens_max": 9,
        "ttft_stream": "probe", "ttft_samples": 394, "ttft_p50_ms": 15.0, "ttft_p95_ms": 31.2, "failed_over": 0}
    props = dict(junit_properties(typed(document), tmp_path, "passed", 0))
    assert props["fault.ttft_p95_ms"] == "31.2" and props["fault.ttft_p50_ms"] == "15.0"
    assert props["fault.stream_completion_rate"] == "0.988" and props["fault.streams_cut"] == "25"
    assert "baseline.ttft_p95_ms" not in props and props["baseline.p95_ms"] == "20.0"
