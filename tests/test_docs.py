"""The scenario reference (docs/scenarios.md) says what the model accepts: every fault type, its
target, parameters and modes, and every parameter's values, compared with the pydantic model
and its rules. Also: what the docs promise about the description reaches the report."""

from __future__ import annotations

import re
import typing
from typing import Any

import annotated_types
import pytest
from conftest import REPO
from test_report import example_results, example_timeline

from harness.report.html import render_report
from harness.scenario.model import FAULT_RULES, FAULT_TYPES, PARAM_FIELDS, FaultSpec

DOC = REPO / "docs" / "scenarios.md"
TARGET_WORDS = {"proxy": "`{proxy}`", "service": "`{service, labels}`", "hook": "`{hook}`"}


def faults_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## `faults`")
    return text[start: text.index("\n## ", start + 1)]


def table(section: str, header: str) -> list[list[str]]:
    """The rows (cells stripped) of the markdown table whose header row starts with ``header``."""
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def ticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def type_rows() -> dict[str, list[str]]:
    rows = table(faults_section(), "| type | target | parameters |")
    return {ticked(row[0])[0]: row for row in rows}


def test_every_fault_type_is_documented_in_order() -> None:
    assert list(type_rows()) == list(FAULT_TYPES)


@pytest.mark.parametrize("fault_type", FAULT_TYPES)
def test_each_type_row_matches_its_rules(fault_type: str) -> None:
    _, target, params, _ = type_rows()[fault_type]
    required, optional, target_kind, modes = FAULT_RULES[fault_type]
    assert target == TARGET_WORDS[target_kind]
    outside = re.sub(r"\([^)]*\)", "", params)  # values and notes are in parentheses
    assert set(ticked(outside)) == set(required) | set(optional)
    for name in required:
        assert re.search(rf"`{name}` \(required", params), f"{fault_type}: {name} not marked required"
    for name in optional:
        assert not re.search(rf"`{name}` \(required", params), f"{fault_type}: {name} marked required"
    if modes:
        listed = re.search(r"`mode` \(([^)]*)\)", params)
        assert listed is not None and tuple(ticked(listed.group(1))) == modes, f"{fault_type} modes"


def parameter_rows() -> dict[str, list[str]]:
    return {ticked(row[0])[0]: row for row in table(faults_section(), "| parameter | value |")}


def test_every_parameter_is_documented_with_the_types_that_take_it() -> None:
    rows = parameter_rows()
    assert set(rows) == set(PARAM_FIELDS)
    for name, (_, _, _, of, _) in rows.items():
        takers = [t for t, (req, opt, _, _) in FAULT_RULES.items() if name in req + opt]
        assert ticked(of) == takers, name


def _bounds(name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in FaultSpec.model_fields[name].metadata:
        for kind in ("ge", "gt", "le"):
            if isinstance(item, getattr(annotated_types, kind.capitalize())):
                out[kind] = getattr(item, kind)
    return out


@pytest.mark.parametrize("name", PARAM_FIELDS)
def test_parameter_values_match_the_model(name: str) -> None:
    value = parameter_rows()[name][1]
    annotation = FaultSpec.model_fields[name].annotation
    inner = [a for a in typing.get_args(annotation) if a is not type(None)]
    bounds = _bounds(name)
    if inner and typing.get_origin(inner[0]) is typing.Literal:
        assert sorted(ticked(value)) == sorted(typing.get_args(inner[0]))
        return
    if int in inner:
        assert "integer" in value
    if bounds.get("ge") == 0 and bounds.get("le") == 1:
        assert "0..1" in value
        return
    if "ge" in bounds:
        assert f"≥ {bounds['ge']:g}" in value
    if "gt" in bounds:
        assert f"> {bounds['gt']:g}" in value
    if "le" in bounds:
        assert f"≤ {bounds['le']:g}" in value


def test_the_keys_every_fault_has_are_documented() -> None:
    common = [name for name in FaultSpec.model_fields if name not in PARAM_FIELDS]
    prose = faults_section().split("| type |")[0]
    assert common == ["name", "type", "target", "at", "duration"]
    for name in common:
        assert f"`{name}`" in prose


def test_report_shows_the_scenario_description_escaped() -> None:
    results = example_results()
    results["scenario"]["description"] = "The hosted model goes dark; the gateway <b>must</b> fail over."
    html = render_report(results, example_timeline(results))
    assert "The hosted model goes dark; the gateway &lt;b&gt;must&lt;/b&gt; fail over." in html
