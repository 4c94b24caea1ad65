"""Judging PromQL bounds: pure functions over what Prometheus answered (no network here).

A check (:class:`harness.scenario.model.PromCheck`) is *healthy* while every series the query
returns lies within ``[min, max]``. A value that is not a number (NaN: e.g. a ratio over no
requests) is outside any bound: a steady state nobody can observe is not met.

- A **steady state** holds over a window when the query returned data there and every point of
  every series was within bounds (:func:`judge_window`).
- A **stop condition** trips when the check has been broken for ``for`` without a healthy
  evaluation in between (:class:`ConditionTracker`); an empty answer is healthy there (a query
  such as ``errors > 5`` returns nothing while all is well).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import JsonValue

from harness.metrics.client import Sample, Series, series_name
from harness.scenario.model import PromCheck


@dataclass(frozen=True)
class Breach:
    """One series outside its bounds at one instant."""

    series: str
    value: float
    at: float | None
    bound: str

    def text(self, query: str | None = None) -> str:
        """``up{tier="gpu"} = 0 (< min 1)``; a series with no labels is named by ``query`` (or
        ``value``): ``max(x) = 2 (> max 1)``."""
        value = "no number (NaN)" if math.isnan(self.value) else f"{self.value:.6g}"
        return f"{self.series or query or 'value'} = {value} ({self.bound})"


def breach_of(check: PromCheck, value: float) -> str | None:
    """Which bound ``value`` breaks (``"> max 0.05"``), or None when it is within bounds."""
    if math.isnan(value):
        return "not a number"
    if check.max is not None and value > check.max:
        return f"> max {check.max:g}"
    if check.min is not None and value < check.min:
        return f"< min {check.min:g}"
    return None


def breaches(check: PromCheck, samples: Sequence[Sample], at: float | None = None) -> list[Breach]:
    found = []
    for sample in samples:
        bound = breach_of(check, sample.value)
        if bound is not None:
            found.append(Breach(series_name(sample.labels), sample.value, at, bound))
    return found


@dataclass(frozen=True)
class CheckOutcome:
    """A steady-state check judged over a window, in the words the report and terminal use."""

    query: str
    condition: str
    passed: bool
    detail: str
    start: float
    end: float
    observed_min: float | None = None
    observed_max: float | None = None

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "query": self.query, "condition": self.condition, "passed": self.passed, "detail": self.detail,
            "start": self.start, "end": self.end, "observed_min": self.observed_min, "observed_max": self.observed_max,
        }


def judge_window(check: PromCheck, series: Sequence[Series], start: float, end: float) -> CheckOutcome:
    """Did ``check`` hold over [start, end]? ``series`` is the query evaluated over the window
    (a range query, or one instant as one-point series)."""
    condition = check.describe()
    values = [v for s in series for _, v in s.points]
    if not values:
        return CheckOutcome(check.query, condition, False,
                            "the query returned no data (no series matched: check the metric names and labels)",
                            start, end)
    numbers = [v for v in values if not math.isnan(v)]
    low = min(numbers) if numbers else None
    high = max(numbers) if numbers else None
    for s in series:
        for at, value in s.points:
            bound = breach_of(check, value)
            if bound is not None:
                breach = Breach(series_name(s.labels), value, at, bound)
                return CheckOutcome(check.query, condition, False, breach.text(), start, end, low, high)
    observed = f"{low:.6g}" if low == high else f"{low:.6g} to {high:.6g}"
    return CheckOutcome(check.query, condition, True, f"observed {observed}", start, end, low, high)


@dataclass(frozen=True)
class ConditionTrip:
    """A stop condition broke its bound for its ``for``: since when, and what was seen."""

    check: PromCheck
    broken_since: float
    held_at: float
    breach: Breach

    def condition(self) -> str:
        """``QUERY not ≤ 1 for 1 s``: the stop condition as the dry run and the journal name it."""
        held = f" for {self.check.for_s:g} s" if self.check.for_s else ""
        return f"{self.check.query} not {self.check.bounds_text()}{held}"

    def reason(self) -> str:
        held = f" for {self.check.for_s:g} s" if self.check.for_s else ""
        named = "" if not self.breach.series else f" (query {self.check.query})"
        return f"stop condition met: {self.breach.text(self.check.query)}{held}{named}"


class ConditionTracker:
    """One stop condition, fed each evaluation as it comes: ``update(now, samples)`` returns a
    trip once the check has been broken at every evaluation for ``for`` seconds."""

    def __init__(self, check: PromCheck) -> None:
        self.check = check
        self.broken_since: float | None = None

    def update(self, now: float, samples: Sequence[Sample]) -> ConditionTrip | None:
        found = breaches(self.check, samples, now)
        if not found:
            self.broken_since = None
            return None
        if self.broken_since is None:
            self.broken_since = now
        if now - self.broken_since >= self.check.for_s:
            return ConditionTrip(self.check, self.broken_since, now, found[0])
        return None


def first_broken_at(check: PromCheck, series: Sequence[Series], until: float) -> float | None:
    """The start of the last unbroken stretch of breaches up to ``until`` in a fine range query:
    when the condition became true in Prometheus (to the query's step), or None."""
    instants: dict[float, bool] = {}
    for s in series:
        for at, value in s.points:
            if at <= until:
                instants[at] = instants.get(at, False) or breach_of(check, value) is not None
    since: float | None = None
    for at in sorted(instants):
        if instants[at]:
            since = at if since is None else since
        else:
            since = None
    return since
