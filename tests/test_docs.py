"""The scenario reference (docs/scenarios.md) says what the model accepts: every fault type, its
target, parameters and modes, and every parameter's values, compared with the pydantic model
and its rules. Also: what the docs promise about the description reaches the report."""

from __future__ import annotations

import re
import typing
from typing import Any

import annotated_types
import pytest

from harness.report.html import render_report
from harness.scenario.fault_specs import (
    FAULT_SPEC_CLASSES,
    FAULT_TYPES,
    FaultSpecBase,
    HookFaultSpec,
    HttpFaultSpec,
    KubeFaultSpec,
    ServiceFaultSpec,
    ToxiproxyFaultSpec,
)
from harness.testing import REPO
from harness.testing.runs import example_results, example_timeline, typed

DOC = REPO / "docs" / "scenarios.md"
SPEC_OF = {cls.fault_type(): cls for cls in FAULT_SPEC_CLASSES}
PARAMETERS = list(dict.fromkeys(name for cls in FAULT_SPEC_CLASSES for name in cls.parameter_names()))


def target_words(cls: type[FaultSpecBase]) -> str:
    if issubclass(cls, ToxiproxyFaultSpec):
        return "`{proxy}`"
    if issubclass(cls, ServiceFaultSpec):
        return "`{service, labels}`"
    if issubclass(cls, HttpFaultSpec):
        return "`{route}`"
    if issubclass(cls, KubeFaultSpec):
        return "`{service, labels}`"
    assert issubclass(cls, HookFaultSpec), cls
    return "`{hook}`"


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


def modes(cls: type[FaultSpecBase]) -> tuple[str, ...]:
    return typing.get_args(cls.model_fields["mode"].annotation) if "mode" in cls.model_fields else ()


@pytest.mark.parametrize("fault_type", FAULT_TYPES)
def test_each_type_row_matches_its_model(fault_type: str) -> None:
    _, target, params, _ = type_rows()[fault_type]
    cls = SPEC_OF[fault_type]
    names = cls.parameter_names()
    assert target == target_words(cls)
    outside = re.sub(r"\([^)]*\)", "", params)  # values and notes are in parentheses
    assert set(ticked(outside)) == set(names)
    for name in names:
        marked = re.search(rf"`{name}` \(required", params) is not None
        assert marked == cls.model_fields[name].is_required(), f"{fault_type}: {name} required is {not marked}"
    if modes(cls):
        listed = re.search(r"`mode` \(([^)]*)\)", params)
        assert listed is not None and tuple(ticked(listed.group(1))) == modes(cls), f"{fault_type} modes"
        assert cls.model_fields["mode"].default == modes(cls)[0], "the first mode listed is the default"


def parameter_rows() -> dict[str, list[str]]:
    return {ticked(row[0])[0]: row for row in table(faults_section(), "| parameter | value |")}


def test_every_parameter_is_documented_with_the_types_that_take_it() -> None:
    rows = parameter_rows()
    assert set(rows) == set(PARAMETERS)
    for name, (_, _, _, of, _) in rows.items():
        takers = [t for t, cls in SPEC_OF.items() if name in cls.parameter_names()]
        assert ticked(of) == takers, name


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in metadata:
        for kind in ("ge", "gt", "le"):
            if isinstance(item, getattr(annotated_types, kind.capitalize())):
                out[kind] = getattr(item, kind)
    return out


def _kinds(annotation: Any) -> list[Any]:
    """The types a parameter takes, without None and Annotated wrappers."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, type(int | None)) else ()
    out = []
    for arg in args or (annotation,):
        if typing.get_origin(arg) is typing.Annotated:
            arg = typing.get_args(arg)[0]
        if arg is not type(None):
            out.append(arg)
    return out


@pytest.mark.parametrize("name", PARAMETERS)
def test_parameter_values_match_the_models(name: str) -> None:
    """Every family that takes the parameter: its values (a fixed set, or a number and its
    bounds) are in the row; a set that differs per family is listed in the type table instead."""
    value = parameter_rows()[name][1]
    fields = [cls.model_fields[name] for cls in FAULT_SPEC_CLASSES if name in cls.model_fields]
    kinds = [kind for field in fields for kind in _kinds(field.annotation)]
    literals = {typing.get_args(kind) for kind in kinds if typing.get_origin(kind) is typing.Literal}
    if len(literals) > 1:
        assert "see the type" in value
        return
    if literals:
        assert sorted(ticked(value)) == sorted(str(v) for v in literals.pop())
        return
    for field in fields:
        kinds = _kinds(field.annotation)
        bounds = _bounds(field.metadata)
        if int in kinds:
            assert "integer" in value
        if str in kinds:
            assert "text" in value
        if bounds.get("ge") == 0 and bounds.get("le") == 1:
            assert "0..1" in value
            continue
        for kind, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤")):
            if kind in bounds:
                assert f"{sign} {bounds[kind]:.15g}" in value, f"{name}: {sign} {bounds[kind]}"


def test_the_keys_every_fault_has_are_documented() -> None:
    prose = faults_section().split("| type |")[0]
    assert list(FaultSpecBase.model_fields) == list(FaultSpecBase.COMMON_KEYS)
    assert FaultSpecBase.COMMON_KEYS == ("name", "type", "target", "at", "duration", "manual", "after", "branch")
    for name in FaultSpecBase.COMMON_KEYS:
        assert f"`{name}`" in prose


def test_report_shows_the_scenario_description_escaped() -> None:
    results = example_results()
    results["scenario"]["description"] = "The hosted model goes dark; the gateway <b>must</b> fail over."
    html = render_report(typed(results), example_timeline(results))
    assert "The hosted model goes dark; the gateway &lt;b&gt;must&lt;/b&gt; fail over." in html
