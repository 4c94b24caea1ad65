"""YAML loading with file:line errors, for scenarios and stack files alike.

``yaml.safe_load`` does the parsing (so ``!!python/object`` and other unsafe tags are refused);
a second pass over the composed node tree records the line of every key and item, so a pydantic
error at ``faults[0].duration`` can be reported as ``scenarios/x.yaml:14 faults[0].duration: ...``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from harness.errors import ScenarioError

M = TypeVar("M", bound=BaseModel)

Loc = tuple[Any, ...]


MAX_FILE_BYTES = 256 * 1024
"""Scenario and campaign files are a few kilobytes; anything far larger is a mistake or an attack."""
MAX_DEPTH = 40
"""Nesting deeper than this (mappings and lists) is refused before it can exhaust the stack."""
MAX_INT_DIGITS = 18
MAX_PATH_CHARS = 1024


class _Refused(Exception):
    def __init__(self, mark: Any, message: str, node: Any = None) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message
        self.node = node


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (an alias bomb expands exponentially, in PyYAML and in the
    line-number pass alike), caps nesting, keeps dates as text, and refuses integers too long
    and numbers that are not finite."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self.current: yaml.Node | None = None

    def _next_event(self) -> Any:
        return self.peek_event()  # type: ignore[no-untyped-call]  # types-PyYAML leaves it unannotated

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self._next_event()
            raise _Refused(event.start_mark, f"YAML aliases (*{event.anchor}) are not accepted: write the value out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(self._next_event().start_mark, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        self.current = node
        return super().construct_object(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> Any:
        digits = re.sub(r"[^0-9a-fA-F]", "", str(node.value))
        if len(digits) > MAX_INT_DIGITS:
            raise _Refused(node.start_mark, node=node,
                           message=f"integer with {len(digits)} digits: numbers here have at most {MAX_INT_DIGITS}")
        return super().construct_yaml_int(node)

    def construct_yaml_str(self, node: Any) -> Any:
        value = super().construct_yaml_str(node)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Refused(node.start_mark, node=node,
                           message="text holds a lone surrogate (\\ud800-\\udfff): not valid Unicode") from None
        return value

    def construct_yaml_float(self, node: Any) -> Any:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _Refused(node.start_mark, node=node, message=f"{node.value} is not a finite number")
        return value


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
_Loader.add_constructor("tag:yaml.org,2002:str", _Loader.construct_yaml_str)


def _line_map(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _line_map(value_node, loc + (key,), lines)
            # keep the key's own line for the key (unknown-key errors point at it)
            lines[loc + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, loc + (i,), lines)


def _field_of(root: Any, target: Any) -> str:
    """``"faults[0].at: "`` for the node ``target`` inside ``root`` ("" when not found)."""
    stack: list[tuple[Any, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if node is target:
            return f"{format_loc(loc)}: " if loc else ""
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node is target:
                    return f"{format_loc(loc)}: " if loc else ""
                stack.append((value_node, loc + (str(key_node.value),)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, loc + (i,)) for i, item in enumerate(node.value))
    return ""


def path_problem(value: Any) -> str | None:
    """Why ``value`` cannot name a file (None when it can): too long, a NUL byte, a control
    character, or text that has no bytes on disk (a lone surrogate)."""
    text = str(value)
    if not text:
        return "empty path"
    if len(text) > MAX_PATH_CHARS:
        return f"path of {len(text)} characters: at most {MAX_PATH_CHARS}"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return "path holds a NUL byte or another control character"
    try:
        os.fsencode(text)
    except UnicodeError:
        return "path holds characters that cannot be a file name (a lone surrogate?)"
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in text.split("/")):
        return "a path component longer than 255 bytes"
    return None


def read_text_safely(path: Path, what: str = "file") -> str:
    """The UTF-8 text of a small regular file. A FIFO, device or directory is refused without
    reading (so ``/dev/zero`` or a pipe cannot hang or exhaust drill), as is a file over
    MAX_FILE_BYTES; every failure is a ScenarioError naming the file."""
    shown = show_path(path)
    problem = path_problem(path)
    if problem:
        raise ScenarioError(f"{shown}: cannot be read: {problem}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ScenarioError(f"{shown}: no such file") from None
    except OSError as exc:
        raise ScenarioError(f"{shown}: cannot read: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ScenarioError(f"{shown}: not a regular file (a directory, pipe or device); give a {what}")
    with os.fdopen(fd, "rb") as fh:
        if info.st_size > MAX_FILE_BYTES:
            raise ScenarioError(f"{shown}: {info.st_size} bytes; a {what} is at most {MAX_FILE_BYTES // 1024} KiB")
        try:
            raw = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ScenarioError(f"{shown}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(f"{shown}: a {what} is at most {MAX_FILE_BYTES // 1024} KiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ScenarioError(f"{shown}:{line} not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None


def show_path(path: Any) -> str:
    """A path as printable text: undecodable bytes and lone surrogates shown as escapes."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def read_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse a YAML file safely; return the data and a map of location -> 1-based line."""
    return parse_yaml(read_text_safely(Path(path), "scenario file"), path)


def parse_yaml(text: str, path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text read from ``path`` (named in errors); see :func:`read_yaml`."""
    shown = show_path(path)
    node: Any = None
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a control character PyYAML refuses outright
        line = text[: exc.position].count("\n") + 1
        raise ScenarioError(f"{shown}:{line} invalid YAML: character #x{exc.character:04x} is not allowed "
                            "(control characters are not YAML text)") from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        where = _field_of(node, exc.node) if exc.node is not None else ""
        raise ScenarioError(f"{shown}:{exc.mark.line + 1} {where}{exc.message}") from None
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        found = re.search(r"'([^']+)'", exc.problem or "")
        tag = found.group(1).replace("tag:yaml.org,2002:", "!!") if found else "?"
        if "unhashable" in str(exc.problem) or "expected a mapping" in str(exc.problem):
            raise ScenarioError(f"{shown}:{line} invalid YAML: {exc.problem}") from None
        raise ScenarioError(
            f"{shown}:{line} unsupported YAML tag {tag}: only plain YAML is accepted "
            "(tags such as !!python/object are refused)"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{shown}:{line} invalid YAML: {problem}") from None
    except Exception:  # a value PyYAML could not convert (!!bool maybe, !!float '', ...)
        current = loader.current
        line = current.start_mark.line + 1 if current is not None else 1
        tag = str(getattr(current, "tag", "")).replace("tag:yaml.org,2002:", "!!")
        value = str(getattr(current, "value", ""))[:40]
        where = _field_of(node, current) if current is not None else ""
        raise ScenarioError(
            f"{shown}:{line} {where}invalid YAML value {value!r} for {tag}: cannot convert it"
        ) from None
    finally:
        loader.dispose()
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


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation: itself, or inside Optional / list / dict /
    Annotated / a union (several for a union of models, such as the fault specs)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _tagged(models: list[type[BaseModel]], part: Any) -> type[BaseModel] | None:
    """The member of a union of models whose Literal tag is ``part``: pydantic puts the tag of
    a discriminated union into error locations (``faults.0.latency.latency_ms``)."""
    if len(models) < 2 or not isinstance(part, str):
        return None
    for model in models:
        for field in model.model_fields.values():
            if get_origin(field.annotation) is Literal and part in get_args(field.annotation):
                return model
    return None


def _keys(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key written in YAML (the alias where one is set)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


@dataclass(frozen=True)
class _Where:
    """Where a pydantic error sits, for the message: its location without union tags, the model
    that holds its last key and, when that model is one member of a tagged union, the tag
    (``latency``), the collection it is in (``faults``) and the union's members."""

    loc: Loc
    owner: type[BaseModel] | None
    tag: str | None = None
    collection: str | None = None
    members: tuple[type[BaseModel], ...] = ()

    def family(self) -> str:
        """``latency faults``: the tagged member as a person names it."""
        return f"{self.tag} {self.collection or 'items'}"

    def common_keys(self) -> set[str]:
        """Keys every member of the union has (``name``, ``type``, ``target`` ...)."""
        return set.intersection(*(set(_keys(m)) for m in self.members)) if self.members else set()


def _where(model: type[BaseModel], raw_loc: Loc) -> _Where:
    """Walk ``raw_loc`` through the model types, dropping union tags (see :class:`_Where`)."""
    loc: list[Any] = []
    current: list[type[BaseModel]] = [model]
    owner: type[BaseModel] | None = model
    pending: _Where | None = None  # a tag just passed, waiting for the key that follows it
    tagged: _Where | None = None
    for part in raw_loc:
        if isinstance(part, int):
            loc.append(part)
            continue
        named = next((m for m in current if m.__name__ == part), None)
        if named is not None:  # a plain union names its member by class: `float | LatencyObjective`
            current = [named]
            continue
        member = _tagged(current, part)
        if member is not None:
            collection = next((p for p in reversed(loc) if isinstance(p, str)), None)
            pending = _Where((), member, part, collection, tuple(current))
            current = [member]
            continue
        loc.append(part)
        owner = current[0] if len(current) == 1 else None
        tagged, pending = pending, None
        field = _keys(owner).get(part) if owner is not None else None
        current = _models_in(field.annotation) if field is not None else []
    if pending is not None:  # the location ends at the member itself (a check across its fields)
        tagged, owner = pending, pending.owner
    if tagged is None:
        return _Where(tuple(loc), owner)
    return replace(tagged, loc=tuple(loc), owner=owner)


def _message(err: ErrorDetails, where: _Where) -> str:
    kind = err.get("type", "")
    loc = where.loc
    if kind == "extra_forbidden":
        return _unknown_key_message(str(loc[-1]) if loc else "?", where)
    if kind == "missing":
        if where.tag is not None and loc and loc[-1] not in where.common_keys():
            return f"required for {where.family()}"
        return "required field is missing"
    if kind == "union_tag_not_found":
        return "required field is missing"
    if kind in ("model_attributes_type", "model_type", "dict_type"):
        got = err.get("input")
        names = {list: "a list", str: "text", type(None): "nothing", bool: "true/false", int: "a number",
                 float: "a number"}
        shown = names.get(type(got), "something else")
        return f"expected a mapping (key: value pairs), got {shown}"
    ctx = err.get("ctx") or {}
    if kind == "union_tag_invalid":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        return _literal_message(str(ctx.get("tag", "")), choices, loc)
    if kind == "literal_error" and isinstance(err.get("input"), str):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return _literal_message(str(err["input"]), choices, loc)
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if kind not in ("value_error", "assertion_error") and "input" in err:
        got = err["input"]
        if not isinstance(got, (dict, list)):
            shown = repr(got) if isinstance(got, str) else str(got)
            msg += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return msg


def _unknown_key_message(key: str, where: _Where) -> str:
    """An unknown key, with the closest known one. Inside one member of a tagged union (a fault
    family), a key another member takes reads "not a parameter of latency faults"."""
    known = list(_keys(where.owner)) if where.owner is not None else []
    if where.tag is not None and any(key in _keys(member) for member in where.members):
        common = where.common_keys()
        own = [k for k in known if k not in common]
        return f"not a parameter of {where.family()} (its parameters: {', '.join(own) or 'none'})"
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    allowed = f"; allowed: {', '.join(known)}" if known else ""
    return f"unknown key '{key}'{hint}{allowed}"


def _literal_message(got: str, choices: list[str], loc: Loc) -> str:
    """A value outside a fixed set (a fault type, a mode, a method): the set and the closest match,
    so ``type: latancy`` reads "did you mean 'latency'?" instead of the library's wording."""
    close = difflib.get_close_matches(got, choices, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    what = "fault type" if loc[-1:] == ("type",) and "faults" in loc else "value"
    return f"unknown {what} '{got}'{hint}; expected one of: {', '.join(choices)}"


def validation_problems(
    exc: ValidationError, model: type[BaseModel], data: Any, lines: dict[Loc, int], path: Path
) -> list[str]:
    """One ``file:line field: message`` string per pydantic error. The location is the key as
    written (``faults[0].latency_ms``): union tags pydantic adds are dropped."""
    problems: list[str] = []
    for err in exc.errors():
        where = _where(model, tuple(err.get("loc", ())))
        loc = _data_loc(where.loc, data)
        # A missing or unknown key is not in the data walk: name it after its parent. (Other
        # parts missing from the data are pydantic's names for union members: "float", "str".)
        missing_key = err["type"] in ("missing", "extra_forbidden")
        if missing_key and where.loc and isinstance(where.loc[-1], str) and where.loc[-1] not in loc[-1:]:
            loc = loc + (where.loc[-1],)
        # A tagged union that cannot pick its member: the tag key itself is to blame.
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = loc + (str((err.get("ctx") or {}).get("discriminator", "type")).strip("'"),)
        where = replace(where, loc=loc)
        line = _line_for(loc, lines)
        problems.append(f"{show_path(path)}:{line} {format_loc(loc)}: {_message(err, where)}")
    return list(dict.fromkeys(problems))


def load_model(path: Path, model: type[M], *, context: dict[str, Any] | None = None) -> M:
    """Load ``path`` and validate it as ``model``; raise ScenarioError naming file:line and field."""
    path = Path(path)
    data, lines = read_yaml(path)
    return validate_model(path, model, data, lines, context=context)


def validate_model(
    path: Path, model: type[M], data: Any, lines: dict[Loc, int], *, context: dict[str, Any] | None = None
) -> M:
    """Validate parsed YAML ``data`` as ``model``; raise ScenarioError naming file:line and field."""
    if not isinstance(data, dict):
        kind = {list: "a list", str: "text", type(None): "nothing"}.get(type(data), type(data).__name__)
        raise ScenarioError(f"{show_path(path)}:1 expected a mapping at the top level, got {kind}")
    try:
        return model.model_validate(data, context={"path": path, **(context or {})})
    except ValidationError as exc:
        problems = validation_problems(exc, model, data, lines, path)
        raise ScenarioError(problems[0] if len(problems) == 1 else "\n".join(problems), problems) from None
