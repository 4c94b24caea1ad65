"""Scenario files: the ``drill/v1`` model and loading with file:line errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ScenarioError
from harness.scenario.cost import PriceFile
from harness.scenario.fault_specs import FAULT_TYPES, FaultSpec, parse_fault_spec
from harness.scenario.loader import (
    format_loc,
    load_model,
    parse_yaml,
    read_text_safely,
    show_path,
    validate_model,
)
from harness.scenario.model import (
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
    "parse_fault_spec",
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
    text = read_text_safely(path, "scenario file")
    data, lines = parse_yaml(text, path)
    spec = validate_model(path, Scenario, data, lines)
    shown = show_path(path)
    problems = []
    for loc, message in cross_checks(spec):
        line = next((lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in lines), 1)
        problems.append(f"{shown}:{line} {format_loc(loc)}: {message}")
    base = path.resolve().parent
    for loc, field in ((("stack", "file"), "stack.file"), (("load", "locustfile"), "load.locustfile")):
        owner = spec.stack if loc[0] == "stack" else spec.load
        value = getattr(owner, loc[1])
        if value is None:
            continue
        resolved = _resolve(base, value)
        setattr(owner, loc[1], resolved)
        if resolved is None or not resolved.is_file():
            shown_value = show_path(resolved or value)
            problems.append(f"{shown}:{lines.get(loc, 1)} {field}: no such file: {shown_value}")
    if spec.cost is not None and spec.cost.prices is not None:
        resolved = _resolve(base, spec.cost.prices)
        if resolved is None or not resolved.is_file():
            problems.append(f"{shown}:{lines.get(('cost', 'prices'), 1)} cost.prices: no such file: "
                            f"{show_path(resolved or spec.cost.prices)}")
        else:
            try:
                spec.cost.use_file(load_model(resolved, PriceFile))
            except ScenarioError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ScenarioError("\n".join(problems), problems)
    raw = text.encode("utf-8")
    return LoadedScenario(spec=spec, path=path, sha256=hashlib.sha256(raw).hexdigest(), text=text)


def _resolve(base: Path, value: Path) -> Path | None:
    """``value`` against ``base``; None when the file system cannot even look it up."""
    try:
        return (base / value).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
