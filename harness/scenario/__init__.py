"""Scenario files: the ``drill/v1`` model and loading with file:line errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ScenarioError
from harness.load.canaries import read_canaries
from harness.scenario.cost import PriceFile
from harness.scenario.fault_specs import FAULT_TYPES, FaultSpec, parse_fault_spec
from harness.scenario.loader import (
    Loc,
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
    canaries = spec.load.canaries
    if canaries is not None:  # the canary file is read (and checked) when the plan is made
        resolved = _resolve(base, canaries.file)
        loc = ("load", "canaries", "file")
        if resolved is None or not resolved.is_file():
            problems.append(f"{shown}:{lines.get(loc, 1)} load.canaries.file: no such file: "
                            f"{show_path(resolved or canaries.file)}")
        else:
            canaries.file = resolved
            try:
                kind = read_canaries(resolved, canaries.k).kind
            except ValueError as exc:
                problems.append(f"{shown}:{lines.get(loc, 1)} load.canaries.file: {exc}")
            else:
                problems += _quality_metric_problems(spec, kind, shown, lines)
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


def _quality_metric_problems(spec: Scenario, kind: str, shown: str, lines: dict[Loc, int]) -> list[str]:
    """min_quality's metric must be the canary file's: recall for retrieval, similarity for chat;
    chat canaries are compared whole, so their request must not stream."""
    problems = []
    quality = spec.objectives.min_quality
    wanted = "similarity" if kind == "chat" else "recall_at_k"
    if quality is not None and quality.metric[0] != wanted:
        loc = ("objectives", "min_quality", quality.metric[0])
        line = lines.get(loc, lines.get(("objectives", "min_quality"), 1))
        problems.append(f"{shown}:{line} objectives.min_quality.{quality.metric[0]}: the canary file holds {kind} "
                        f"canaries: use {wanted}")
    body = spec.load.probe_request.json_body
    if kind == "chat" and isinstance(body, dict) and body.get("stream") is True:
        problems.append(f"{shown}:{lines.get(('load', 'canaries'), 1)} load.canaries: chat canaries compare whole "
                        "answers: the probe's request must not stream (drop \"stream\": true)")
    return problems


def _resolve(base: Path, value: Path) -> Path | None:
    """``value`` against ``base``; None when the file system cannot even look it up."""
    try:
        return (base / value).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
