"""Scenario files: the model, durations, and file:line errors for bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.scenario import load_scenario, parse_duration
from harness.scenario.units import parse_latency_bound

GOOD = """\
apiVersion: drill/v1
kind: Scenario
name: demo
toxiproxy: {url: http://127.0.0.1:8474}
proxies:
  - {name: upstream, listen: 127.0.0.1:19999, upstream: 127.0.0.1:18999}
load:
  host: http://127.0.0.1:19999
  users: 2
phases: {baseline: 2s, fault: 3s, recovery: 2s}
faults:
  - name: slow
    type: latency
    target: {proxy: upstream}
    latency_ms: 300
    duration: 3s
objectives: {rto_s: 5, p95_ms: 2x baseline, max_error_rate: 0.1}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problem(tmp_path: Path, text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text))
    assert info.value.exit_code == 2
    return str(info.value)


def test_good_scenario_loads_with_defaults(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, GOOD))
    s = loaded.spec
    assert s.phases.total_s == 7
    assert s.faults[0].params() == {"latency_ms": 300}
    assert s.objectives.p95_bound == (None, 2.0)
    assert s.load.probe_rate_hz == 20
    assert s.load.request is not None and s.load.request.method == "GET"
    assert len(loaded.sha256) == 64


@pytest.mark.parametrize(
    "text,seconds", [("500ms", 0.5), ("20s", 20), ("2m", 120), ("1.5s", 1.5), (3, 3.0), ("1h", 3600)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-1s", "10 parsecs", "", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_latency_bounds() -> None:
    assert parse_latency_bound(250) == (250.0, None)
    assert parse_latency_bound("2x baseline") == (None, 2.0)
    assert parse_latency_bound("1.5X Baseline") == (None, 1.5)
    with pytest.raises(ValueError):
        parse_latency_bound("fast")


def test_unknown_key_names_line_and_suggests(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD.replace("  users: 2", "  userz: 2"))
    assert msg.startswith(f"{tmp_path / 's.yaml'}:9 load.userz: unknown key 'userz'")
    assert "did you mean 'users'" in msg


def test_unknown_key_inside_fault(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD.replace("    latency_ms: 300", "    latncy_ms: 300"))
    assert ":15 faults[0].latncy_ms: unknown key" in msg
    assert "did you mean 'latency_ms'" in msg


def test_bad_duration_names_field(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD.replace("    duration: 3s", "    duration: soon"))
    assert f"{tmp_path / 's.yaml'}:16 faults[0].duration: expected a duration" in msg
    assert "'soon'" in msg


def test_python_tag_is_refused(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD + "extra: !!python/object/apply:os.system ['touch /tmp/pwned']\n")
    assert ":18 unsupported YAML tag !!python/object/apply:os.system" in msg
    assert not Path("/tmp/pwned").exists()


def test_param_of_another_fault_type(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD.replace("    latency_ms: 300", "    latency_ms: 300\n    rate_kbps: 5"))
    assert ":16 faults[0].rate_kbps: not a parameter of latency faults" in msg


def test_missing_required_param(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD.replace("    latency_ms: 300\n", ""))
    assert f"{tmp_path / 's.yaml'}:12 faults[0].latency_ms: required for latency faults" in msg


def test_fault_past_its_phase(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD.replace("    duration: 3s", "    duration: 4s"))
    assert ":16 faults[0].duration: at 0s + duration 4s runs past the fault phase (3s)" in msg


def test_bad_enum_and_missing_field(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD.replace("    type: latency", "    type: meteor"))
    assert ":13 faults[0].type:" in msg and "'meteor'" in msg
    msg = problem(tmp_path, GOOD.replace("kind: Scenario\n", ""))
    assert "kind: required field is missing" in msg


def test_misspelled_fault_type_suggests_the_closest(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD.replace("    type: latency", "    type: latancy"))
    assert ":13 faults[0].type: unknown fault type 'latancy' (did you mean 'latency'?)" in msg
    assert "gpu_node_loss" in msg  # the whole set is listed too
    msg = problem(tmp_path, GOOD.replace("  users: 2", "  users: 2\n  request: {method: PSOT}"))
    assert "load.request.method: unknown value 'PSOT' (did you mean 'POST'?)" in msg


def test_pace_applies_to_drills_own_users_not_a_locustfile(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("")
    msg = problem(tmp_path, GOOD.replace("  users: 2", "  users: 2\n  pace_hz: 5\n  locustfile: mine.py"))
    assert "load: pace_hz paces drill's own users" in msg
    msg = problem(tmp_path, GOOD.replace("  users: 2", "  users: 2\n  pace_hz: 0"))
    assert "load.pace_hz:" in msg and "greater than 0" in msg


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD.replace("  users: 2", "  users: [2"))
    assert "invalid YAML" in msg and str(tmp_path / "s.yaml") in msg


def test_missing_stack_file(tmp_path: Path) -> None:
    msg = problem(tmp_path, GOOD.replace("toxiproxy:", "stack: {runtime: local, file: nope.yaml}\ntoxiproxy:"))
    assert "stack.file: no such file" in msg


def test_shipped_scenarios_validate() -> None:
    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "scenarios").glob("*.yaml"))
    assert files, "no shipped scenarios"
    for path in files:
        if path.name == "quarterly.yaml":
            continue
        assert load_scenario(path).spec.faults


def test_key_inside_a_plain_union_member_keeps_its_hint_and_no_member_names(tmp_path: Path) -> None:
    """``p95_ms`` is ``number | text | {max, during}``: pydantic names the members (``float``,
    ``LatencyObjective``) in its locations; the message names only the keys as written."""
    msg = problem(tmp_path, GOOD.replace("p95_ms: 2x baseline", "p95_ms: {max: 2x baseline, durng: fault}"))
    assert ":17 objectives.p95_ms.durng: unknown key 'durng' (did you mean 'during'?); allowed: max, during" in msg
    assert ".float" not in msg and "LatencyObjective" not in msg
