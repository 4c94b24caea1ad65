"""Scenario files for tests of the scenario model: a fixed head and faults written one key a line,
so a test can assert the FILE:LINE of a message a person sees (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.scenario import load_scenario
from harness.scenario.fault_specs import FaultSpecBase

HEAD = """\
apiVersion: drill/v1
kind: Scenario
name: specs
toxiproxy: {url: http://127.0.0.1:8474}
load: {host: http://127.0.0.1:8080}
phases: {baseline: 1s, fault: 5s, recovery: 1s}
faults:
"""
FIRST_FAULT_LINE = HEAD.count("\n") + 1
PROXY = "{proxy: p}"
SERVICE = "{service: hosted-model}"
HOOK = "{hook: http://127.0.0.1:18090/fault}"


def fault(type: str | None, target: str | None, *params: str) -> str:
    """One fault in block style, one key a line: ``params`` are ``key: value`` lines."""
    lines = ["  - name: f"]
    lines += [f"    type: {type}"] if type is not None else []
    lines += [f"    target: {target}"] if target is not None else []
    lines += [f"    {param}" for param in params]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, *faults: str) -> Path:
    """``tmp_path/scenario.yaml``: the head, then ``faults``."""
    path = tmp_path / "scenario.yaml"
    path.write_text(HEAD + "".join(faults), encoding="utf-8")
    return path


def loaded(tmp_path: Path, *faults: str) -> list[FaultSpecBase]:
    """The fault specs of a scenario with ``faults``."""
    return list(load_scenario(write(tmp_path, *faults)).spec.faults)


def problem(tmp_path: Path, *faults: str) -> tuple[Path, str]:
    """The file and the message of a scenario with ``faults`` that must be refused (exit 2)."""
    path = write(tmp_path, *faults)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "faults.0" not in message and ".latency." not in message, "a pydantic location leaked"
    return path, message


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line holding ``text``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)
