"""Figures of a scheduled fault (a ramp, steps, a flap): where the stack reacted, and how often
it moved (docs/method.md "Reaction threshold").

- **The magnitude in force at failover**: the failover instant from the samples (the arrival of
  the first good answer from another tier, :func:`harness.measure.routing.failover_s`) placed
  on the fault's journaled steps (``fault.step``: each step's onset); beside it the magnitude in
  force when the stack's own log (``stack-events.json``) first opened the primary tier's breaker
  (or logged a failover), and whether the two lie within one step of each other.
- **When users were first affected**: onset -> the end of the first bad answer, and the magnitude
  then.
- **Flaps**: the fault window cut into buckets; each bucket with good answers is labelled with the
  tier that served most of them; a change primary -> other is a failover, other -> primary a
  failback. Time on each tier is its buckets x bucket length; bad answers per transition are the
  window's bad answers over its transitions.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.measure.objectives import ObjectiveResult

__all__ = ["ShapeFigures", "Step", "magnitude_at", "shape_figures", "shape_objectives", "step_in_force"]

BREAKER_OPEN_EVENTS = ("breaker_open", "failover")
"""What in the stack's own log marks its reaction: the primary tier's breaker opening (the
reference gateway), or a routing ``failover`` event (any stack that logs only those)."""


@dataclass(frozen=True)
class Step:
    """One step of a schedule as it happened: its onset (epoch s) and its magnitude."""

    index: int
    at: float
    value: float


@dataclass
class ShapeFigures:
    shape: str
    param: str
    steps: int
    failover_magnitude: float | None = None
    failover_step: int | None = None
    stack_reaction_s: float | None = None
    stack_magnitude: float | None = None
    stack_step: int | None = None
    agrees_within_step: bool | None = None
    first_affected_s: float | None = None
    first_affected_magnitude: float | None = None
    failovers: int = 0
    failbacks: int = 0
    stack_breaker_opens: int | None = None
    time_on_tier_s: dict[str, float] = field(default_factory=dict)
    bad_answers: int = 0
    bad_per_transition: float | None = None
    breaker_open_s: float | None = None
    breaker_open_magnitude: float | None = None
    breaker_open_step: int | None = None
    bad_before_breaker: int | None = None
    timeline: list[tuple[float, float]] = field(default_factory=list)


def step_in_force(steps: list[Step], instant: float) -> Step | None:
    """The step in force at ``instant`` (the last whose onset is at or before it)."""
    i = bisect.bisect_right([s.at for s in steps], instant) - 1
    return steps[i] if i >= 0 else None


def magnitude_at(steps: list[Step], instant: float) -> float | None:
    step = step_in_force(steps, instant)
    return None if step is None else step.value


def shape_figures(
    shape: str,
    param: str,
    steps: list[Step],
    samples: pd.DataFrame,
    good: np.ndarray,
    primary: str | None,
    window: tuple[float, float],
    failover_at: float | None,
    bucket_s: float,
    stack_events: list[dict[str, Any]] | None,
) -> ShapeFigures:
    """The figures of one scheduled fault. ``samples`` start-sorted with ``good`` aligned;
    ``window`` (onset, revert) in epoch s; ``failover_at`` the harness's failover instant."""
    onset, until = window
    figures = ShapeFigures(shape=shape, param=param, steps=len(steps),
                           timeline=[(round(s.at, 6), round(s.value, 6)) for s in steps])
    if failover_at is not None:
        step = step_in_force(steps, failover_at)
        if step is not None:
            figures.failover_magnitude, figures.failover_step = round(step.value, 6), step.index

    ends = samples["end"].to_numpy(dtype=float)
    starts = samples["start"].to_numpy(dtype=float)
    tiers = samples["tier"].astype(str).to_numpy()
    inside = (starts >= onset) & (starts < until)
    bad_after = ~good & (ends >= onset) & (starts < until)
    if bad_after.any():
        first_bad = float(ends[bad_after].min())
        figures.first_affected_s = round(first_bad - onset, 6)
        in_force = magnitude_at(steps, first_bad)
        figures.first_affected_magnitude = None if in_force is None else round(in_force, 6)
    figures.bad_answers = int(np.count_nonzero(~good & inside))

    if stack_events is not None:
        reactions = [e for e in stack_events
                     if e["event"] in BREAKER_OPEN_EVENTS and onset - bucket_s <= e["ts"] < until
                     and (e["event"] == "failover" or primary is None or e.get("tier") == primary)]
        opens = [e for e in reactions if e["event"] == "breaker_open"]
        figures.stack_breaker_opens = len(opens) if opens or primary is not None else None
        if opens:
            first_open = min(float(e["ts"]) for e in opens)
            figures.breaker_open_s = round(first_open - onset, 6)
            step = step_in_force(steps, first_open)
            if step is not None:
                figures.breaker_open_magnitude, figures.breaker_open_step = round(step.value, 6), step.index
            # Of the window's bad answers (sent in it, as bad_answers counts them): one sent before the
            # onset and still open at it once made this exceed bad_answers (1 of 0, a whole run).
            figures.bad_before_breaker = int(np.count_nonzero(~good & inside & (starts < first_open)))
        if reactions:
            first = min(float(e["ts"]) for e in reactions)
            figures.stack_reaction_s = round(first - onset, 6)
            step = step_in_force(steps, first)
            if step is not None:
                figures.stack_magnitude, figures.stack_step = round(step.value, 6), step.index
                if figures.failover_step is not None:
                    figures.agrees_within_step = abs(figures.failover_step - step.index) <= 1

    if primary is not None:
        labels = _bucket_tiers(starts[inside & good], tiers[inside & good], onset, until, bucket_s)
        previous: str | None = None
        for label in labels:
            if label is None:
                continue
            figures.time_on_tier_s[label] = round(figures.time_on_tier_s.get(label, 0.0) + bucket_s, 6)
            if previous is not None and label != previous:
                if previous == primary:
                    figures.failovers += 1
                elif label == primary:
                    figures.failbacks += 1
            previous = label
        transitions = figures.failovers + figures.failbacks
        figures.bad_per_transition = round(figures.bad_answers / transitions, 6) if transitions else None
    return figures


def _bucket_tiers(starts: np.ndarray, tiers: np.ndarray, origin: float, until: float,
                  bucket_s: float) -> list[str | None]:
    """Per bucket of [origin, until): the tier that served most good answers (ties: the
    alphabetically first), None for a bucket without one."""
    n = max(0, int(np.ceil((until - origin) / bucket_s - 1e-9)))
    labels: list[str | None] = [None] * n
    if n == 0 or starts.size == 0:
        return labels
    index = np.floor((starts - origin) / bucket_s).astype(np.int64)
    frame = pd.DataFrame({"bucket": index, "tier": tiers})
    frame = frame[(frame["tier"] != "") & (frame["bucket"] >= 0) & (frame["bucket"] < n)]
    counts = frame.groupby(["bucket", "tier"]).size().reset_index(name="n")
    counts = counts.sort_values(["bucket", "n", "tier"], ascending=[True, False, True], kind="mergesort")
    for bucket, tier in counts.drop_duplicates("bucket")[["bucket", "tier"]].itertuples(index=False):
        labels[int(bucket)] = str(tier)
    return labels


def shape_objectives(
    failover_by: Mapping[str, float] | None, max_flaps: int | None, figures: dict[str, ShapeFigures],
    breaker_open_by: Mapping[str, float] | None = None, max_bad_answers: int | None = None,
) -> list[ObjectiveResult]:
    """``failover_by`` ({param: most}): every scheduled fault moving that param failed over by
    then (the magnitude in force at failover at most the target); ``max_flaps``: no scheduled
    fault made the stack fail over more than that many times; ``breaker_open_by`` ({param:
    most}): the stack's own log shows the primary tier's breaker opening while the magnitude in
    force was at most the target (a brownout's objective: the samples show a failover at any
    share when the stack retries each failed call on the next tier, its breaker is what says it
    stopped calling the provider); ``max_bad_answers``: at most that many bad answers while any
    scheduled fault ran."""
    results: list[ObjectiveResult] = []
    for param, target in sorted((breaker_open_by or {}).items()):
        name = f"breaker_open_by.{param}"
        moving = {fault: f for fault, f in figures.items() if f.param == param}
        if not moving:
            results.append(ObjectiveResult(name, target, None, False, f"no scheduled fault moves {param}"))
            continue
        unknown = [fault for fault, f in moving.items() if f.stack_breaker_opens is None]
        if unknown:
            results.append(ObjectiveResult(name, target, None, False,
                                           f"no breaker log from the stack (stack.events_url): {', '.join(unknown)}"))
            continue
        shut = [fault for fault, f in moving.items() if f.breaker_open_magnitude is None]
        if shut:
            results.append(ObjectiveResult(name, target, None, False,
                                           f"the breaker never opened while the schedule ran: {', '.join(shut)}"))
            continue
        worst = max(f.breaker_open_magnitude or 0.0 for f in moving.values())
        results.append(ObjectiveResult(name, target, round(worst, 6), worst <= target))
    if max_bad_answers is not None:
        if not figures:
            results.append(ObjectiveResult("max_bad_answers", max_bad_answers, None, False,
                                           "no scheduled fault was applied"))
        else:
            bad = sum(f.bad_answers for f in figures.values())
            results.append(ObjectiveResult("max_bad_answers", max_bad_answers, bad, bad <= max_bad_answers))
    for param, target in sorted((failover_by or {}).items()):
        name = f"failover_by.{param}"
        moving = {fault: f for fault, f in figures.items() if f.param == param}
        if not moving:
            results.append(ObjectiveResult(name, target, None, False, f"no scheduled fault moves {param}"))
            continue
        missed = [fault for fault, f in moving.items() if f.failover_magnitude is None]
        if missed:
            results.append(ObjectiveResult(name, target, None, False,
                                           f"no failover while the schedule ran: {', '.join(missed)}"))
            continue
        worst = max(f.failover_magnitude or 0.0 for f in moving.values())
        results.append(ObjectiveResult(name, target, round(worst, 6), worst <= target))
    if max_flaps is not None:
        if not figures:
            results.append(ObjectiveResult("max_flaps", max_flaps, None, False, "no scheduled fault was applied"))
        else:
            worst_flaps = max(f.failovers for f in figures.values())
            results.append(ObjectiveResult("max_flaps", max_flaps, worst_flaps, worst_flaps <= max_flaps))
    return results
