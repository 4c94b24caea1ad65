"""The user's own stack (``runtime: local`` without ``stack.file``): drill starts, stops and kills
nothing of it, and says so when a fault needs a stack it manages."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.faults import FaultContext, build_fault
from harness.runtime import ExternalRuntime, open_stack
from harness.scenario import load_scenario
from harness.testing import REPO, free_port

MANAGED = "needs a stack the harness manages"


def own_stack_scenario(tmp_path: Path, fault: str) -> Path:
    path = tmp_path / "own.yaml"
    path.write_text(textwrap.dedent(f"""\
        apiVersion: drill/v1
        kind: Scenario
        name: own-stack
        load: {{host: http://127.0.0.1:{free_port()}}}
        faults: [{fault}]
        """))
    return path


def test_a_scenario_without_a_stack_file_opens_the_external_runtime(tmp_path: Path) -> None:
    loaded = load_scenario(own_stack_scenario(tmp_path, "{name: down, type: endpoint_kill, target: {service: web}}"))
    runtime = open_stack(loaded.spec.stack, tmp_path)
    assert isinstance(runtime, ExternalRuntime) and runtime.kind == "external"
    assert runtime.find("web") == [] and runtime.members() == [] and runtime.process_groups() == {}
    assert runtime.fingerprint().details["stack"] == "external (started by the user)"


@pytest.mark.parametrize("fault", [
    "{name: down, type: endpoint_kill, target: {service: web}}",
    "{name: gpu, type: gpu_node_loss, target: {service: gpu-a1}, mode: kill}",
])
def test_faults_that_kill_members_need_a_managed_stack(tmp_path: Path, fault: str) -> None:
    loaded = load_scenario(own_stack_scenario(tmp_path, fault))
    with pytest.raises(ScenarioError, match=MANAGED):
        build_fault(loaded.spec.faults[0], FaultContext(runtime=ExternalRuntime(tmp_path)))


def test_drill_run_tells_the_user_endpoint_kill_needs_a_managed_stack(tmp_path: Path) -> None:
    """Exit 2 with the reason, not "matched 0 processes": the user's own stack has no members
    drill could kill."""
    path = own_stack_scenario(tmp_path, "{name: down, type: endpoint_kill, target: {service: web}}")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, output
    assert f"fault 'down': endpoint_kill {MANAGED}" in output
    assert "matched 0" not in output
    assert "fault.intent" not in (tmp_path / "run" / "journal.jsonl").read_text()
