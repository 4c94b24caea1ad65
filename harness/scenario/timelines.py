"""Compound timelines: faults that start after another fault, and parallel branches
(docs/scenarios.md "Compound timelines").

A fault starts at ``at`` into the fault phase, or ``after`` another fault's onset or revert plus
an ``offset``::

    - name: provider-brownout
      ...
    - name: gpu-node-lost
      after: {fault: provider-brownout, when: onset, offset: 5s}   # or just: after: provider-brownout

``branch`` names the lane a fault runs in: faults of one branch run one after another (a branch
whose faults overlap is refused), faults of different branches run side by side. Without
``branch`` every fault is its own branch.

:func:`plan_timeline` places every fault on the fault phase from the scenario alone (each onset
taken at its planned start): the scenario's cross-checks refuse a cycle, an unknown name, a
fault that starts beyond the fault phase or overlaps its branch, each with its field. During the
drill the engine starts an ``after`` fault from the instants that really happened
(``FaultSchedule.start_after``), so a late onset moves its followers with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import Field, model_validator

from harness.scenario.common import Strict
from harness.scenario.units import Duration

__all__ = ["AfterSpec", "PlannedFault", "TimelineProblem", "TimedFault", "plan_timeline"]

Loc = tuple[Any, ...]
TimelineProblem = tuple[Loc, str]
"""(location under the scenario, message), as :func:`harness.scenario.model.cross_checks` returns."""


class AfterSpec(Strict):
    """``{fault, when, offset}``: start ``offset`` after ``fault``'s ``onset`` (default) or
    ``revert``. A plain name is ``{fault: NAME}``."""

    fault: str = Field(min_length=1, max_length=200)
    when: Literal["onset", "revert"] = "onset"
    offset: Duration = 0.0

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: object) -> object:
        return {"fault": data} if isinstance(data, str) else data

    def describe(self) -> str:
        """``provider-brownout onset + 5 s``"""
        plus = f" + {self.offset:g} s" if self.offset else ""
        return f"{self.fault} {self.when}{plus}"


class TimedFault(Protocol):
    """What planning reads of a fault spec (``FaultSpecBase`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def duration(self) -> float | None: ...
    @property
    def after(self) -> AfterSpec | None: ...
    @property
    def branch(self) -> str | None: ...


@dataclass(frozen=True)
class PlannedFault:
    """One fault placed on the fault phase: seconds from its start."""

    index: int
    name: str
    start_s: float
    end_s: float
    branch: str
    after: AfterSpec | None


def _order(faults: Sequence[TimedFault]) -> tuple[list[int], list[TimelineProblem]]:
    """Faults in an order where each comes after the fault it follows; the problems (unknown
    names, cycles) of those that cannot be placed."""
    index = {f.name: i for i, f in enumerate(faults)}
    problems: list[TimelineProblem] = []
    parent: dict[int, int] = {}
    for i, f in enumerate(faults):
        if f.after is None:
            continue
        j = index.get(f.after.fault)
        if j is None:
            known = ", ".join(g.name for g in faults if g.name != f.name) or "none"
            problems.append((("faults", i, "after", "fault"), f"no fault named {f.after.fault!r} (faults: {known})"))
        elif j == i:
            problems.append((("faults", i, "after", "fault"), "a fault cannot start after itself"))
        else:
            parent[i] = j
    placed: list[int] = []
    done: set[int] = set()
    broken: set[int] = {i for i, f in enumerate(faults) if f.after is not None and i not in parent}
    for i in range(len(faults)):
        chain: list[int] = []
        k: int | None = i
        while k is not None and k not in done and k not in broken and k not in chain:
            chain.append(k)
            k = parent.get(k)
        if k is not None and k in chain:  # a cycle: k follows, through the chain, itself
            loop = chain[chain.index(k):]
            names = " -> ".join(faults[n].name for n in [*loop, k])
            for n in loop:
                problems.append((("faults", n, "after"),
                                 f"the after: chain loops ({names}): no fault of it could start"))
            broken.update(chain)
            continue
        if k is not None and k in broken:
            broken.update(chain)
            continue
        for n in reversed(chain):
            placed.append(n)
            done.add(n)
    return placed, problems


def plan_timeline(
    faults: Sequence[TimedFault], fault_phase_s: float, given_at: Sequence[bool] | None = None
) -> tuple[list[PlannedFault], list[TimelineProblem]]:
    """Every fault that can be placed, in scenario order, and every problem of the timeline.

    ``given_at[i]``: whether fault ``i`` set ``at`` itself (``at`` and ``after`` together are
    refused). An ``after`` fault without ``duration`` lasts to the end of the fault phase."""
    order, problems = _order(faults)
    index = {f.name: i for i, f in enumerate(faults)}
    planned: dict[int, PlannedFault] = {}
    for i in order:
        f = faults[i]
        loc: Loc = ("faults", i)
        if f.after is not None:
            if given_at is not None and given_at[i]:
                problems.append((loc + ("at",), "give at or after, not both (after places the fault)"))
            lead = planned.get(index[f.after.fault])
            if lead is None:
                continue  # the fault it follows could not be placed: that one carries the message
            start = (lead.start_s if f.after.when == "onset" else lead.end_s) + f.after.offset
            if start >= fault_phase_s - 1e-9:
                problems.append((loc + ("after",), f"starts at {start:g}s ({f.after.describe()}) but the fault "
                                 f"phase lasts {fault_phase_s:g}s"))
                continue
        else:
            start = f.at
            if start >= fault_phase_s:
                problems.append((loc + ("at",), f"starts at {start:g}s but the fault phase lasts {fault_phase_s:g}s"))
                continue
        if f.duration is not None and start + f.duration > fault_phase_s + 1e-9:
            if f.after is None:
                problems.append((loc + ("duration",), f"at {start:g}s + duration {f.duration:g}s runs past "
                                 f"the fault phase ({fault_phase_s:g}s)"))
            else:
                problems.append((loc + ("duration",), f"starts at {start:g}s ({f.after.describe()}) + duration "
                                 f"{f.duration:g}s runs past the fault phase ({fault_phase_s:g}s)"))
            continue
        end = start + f.duration if f.duration is not None else fault_phase_s
        planned[i] = PlannedFault(i, f.name, start, end, f.branch or f.name, f.after)
    problems += _branch_overlaps([planned[i] for i in sorted(planned)], faults)
    return [planned[i] for i in sorted(planned)], problems


def _branch_overlaps(planned: list[PlannedFault], faults: Sequence[TimedFault]) -> list[TimelineProblem]:
    """Faults of one named branch run one after another."""
    problems: list[TimelineProblem] = []
    branches: dict[str, list[PlannedFault]] = {}
    for p in planned:
        if faults[p.index].branch is not None:
            branches.setdefault(p.branch, []).append(p)
    for name, members in branches.items():
        members.sort(key=lambda p: (p.start_s, p.index))
        for before, later in zip(members, members[1:], strict=False):
            if later.start_s < before.end_s - 1e-9:
                problems.append((("faults", later.index, "branch"),
                                 f"branch {name!r} runs its faults one after another, but {later.name!r} starts "
                                 f"at {later.start_s:g}s while {before.name!r} runs ({before.start_s:g}s to "
                                 f"{before.end_s:g}s): start it after: {{fault: {before.name}, when: revert}}, "
                                 "or put it on another branch"))
    return problems
