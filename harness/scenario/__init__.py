"""Scenario files: the ``drill/v1`` model and loading with file:line errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ScenarioError
from harness.scenario.loader import format_loc, load_model, read_yaml
from harness.scenario.model import (
    FAULT_TYPES,
    FaultSpec,
    LoadSpec,
    Objectives,
    Scenario,
    cross_checks,
)
from harness.scenario.units import parse_duration

__all__ = [
    "FAULT_TYPES",
    "FaultSpec",
    "LoadSpec",
    "LoadedScenario",
    "Objectives",
    "Scenario",
    "load_scenario",
    "parse_duration",
]


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario plus where it came from. Relative paths are resolved."""

    spec: Scenario
    path: Path
    sha256: str
    text: str


def load_scenario(path: str | Path) -> LoadedScenario:
    """Load and validate a scenario file. Raises ScenarioError (exit 2) naming file:line and field."""
    path = Path(path)
    spec = load_model(path, Scenario)
    data, lines = read_yaml(path)
    problems = []
    for loc, message in cross_checks(spec):
        line = next((lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in lines), 1)
        problems.append(f"{path}:{line} {format_loc(loc)}: {message}")
    base = path.resolve().parent
    if spec.stack.file is not None:
        spec.stack.file = (base / spec.stack.file).resolve()
        if not spec.stack.file.exists():
            line = lines.get(("stack", "file"), 1)
            problems.append(f"{path}:{line} stack.file: no such file: {spec.stack.file}")
    if spec.load.locustfile is not None:
        spec.load.locustfile = (base / spec.load.locustfile).resolve()
        if not spec.load.locustfile.exists():
            line = lines.get(("load", "locustfile"), 1)
            problems.append(f"{path}:{line} load.locustfile: no such file: {spec.load.locustfile}")
    if problems:
        raise ScenarioError("\n".join(problems), problems)
    raw = path.read_bytes()
    return LoadedScenario(spec=spec, path=path, sha256=hashlib.sha256(raw).hexdigest(), text=raw.decode())
