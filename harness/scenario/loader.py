"""YAML loading with file:line errors, for scenarios and stack files alike.

``yaml.safe_load`` does the parsing (so ``!!python/object`` and other unsafe tags are refused);
a second pass over the composed node tree records the line of every key and item, so a pydantic
error at ``faults[0].duration`` can be reported as ``scenarios/x.yaml:14 faults[0].duration: ...``.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import ScenarioError

M = TypeVar("M", bound=BaseModel)

Loc = tuple[Any, ...]


def _line_map(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[loc + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, loc + (key,), lines)
            # keep the key's own line for the key (unknown-key errors point at it)
            lines[loc + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, loc + (i,), lines)


def read_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse a YAML file safely; return the data and a map of location -> 1-based line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        found = re.search(r"'([^']+)'", exc.problem or "")
        tag = found.group(1).replace("tag:yaml.org,2002:", "!!") if found else "?"
        raise ScenarioError(
            f"{path}:{line} unsupported YAML tag {tag}: only plain YAML is accepted "
            "(tags such as !!python/object are refused)"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path}:{line} invalid YAML: {problem}") from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _line_map(node, (), lines)
    return data, lines


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _data_loc(loc: Loc, data: Any) -> Loc:
    """Drop the parts of a pydantic location that are not in the data (union tags, validators)."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, (dict, list)):
            continue
        else:
            break
    return tuple(out)


def _fields_of(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names (aliases where set) of the model found at ``loc`` below ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside Optional[...] / list[...] / dict[str, ...], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _message(err: dict[str, Any], model: type[BaseModel], loc: Loc) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        known = _fields_of(model, loc[:-1])
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        allowed = f"; allowed: {', '.join(known)}" if known else ""
        return f"unknown key '{key}'{hint}{allowed}"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error" and isinstance(err.get("input"), str):
        return _literal_message(err, loc)
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if kind not in ("value_error", "assertion_error") and "input" in err:
        got = err["input"]
        if not isinstance(got, (dict, list)):
            msg += f", got {got!r}"
    return msg


def _literal_message(err: dict[str, Any], loc: Loc) -> str:
    """A value outside a fixed set (a fault type, a mode, a method): the set and the closest match,
    so ``type: latancy`` reads "did you mean 'latency'?" instead of the library's wording."""
    got = str(err["input"])
    choices = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
    close = difflib.get_close_matches(got, choices, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    what = "fault type" if loc[-1:] == ("type",) and "faults" in loc else "value"
    return f"unknown {what} '{got}'{hint}; expected one of: {', '.join(choices)}"


def validation_problems(
    exc: ValidationError, model: type[BaseModel], data: Any, lines: dict[Loc, int], path: Path
) -> list[str]:
    """One ``file:line field: message`` string per pydantic error."""
    problems: list[str] = []
    for err in exc.errors():
        raw_loc = tuple(err.get("loc", ()))
        loc = _data_loc(raw_loc, data)
        # A missing or unknown key is not in the data walk: name it after its parent.
        if raw_loc and isinstance(raw_loc[-1], str) and raw_loc[-1] not in loc[-1:]:
            loc = loc + (raw_loc[-1],)
        line = _line_for(loc, lines)
        problems.append(f"{path}:{line} {format_loc(loc)}: {_message(err, model, loc)}")
    return list(dict.fromkeys(problems))


def load_model(path: Path, model: type[M], *, context: dict[str, Any] | None = None) -> M:
    """Load ``path`` and validate it as ``model``; raise ScenarioError naming file:line and field."""
    path = Path(path)
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}:1 expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data, context={"path": path, **(context or {})})
    except ValidationError as exc:
        problems = validation_problems(exc, model, data, lines, path)
        raise ScenarioError(problems[0] if len(problems) == 1 else "\n".join(problems), problems) from None
