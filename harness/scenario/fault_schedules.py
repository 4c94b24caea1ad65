"""Fault schedules: a fault's magnitude changing while it is in force (docs/scenarios.md,
"Schedules").

A fault whose family has a magnitude (``latency_ms`` of ``latency``, ``jitter_ms`` of ``jitter``,
``delay_ms`` of ``first_token_delay``, ``share`` of ``http_error`` and ``malformed``) may carry
one ``schedule`` of three shapes::

    ramp:  {from: 0, to: 3000, over: 60s, steps: 20}   # 20 values from -> to, equal steps over `over`
    steps: [{value: 100, for: 10s}, {value: 800, for: 10s}]
    flap:  {on_for: 5s, off_for: 5s, jitter_s: 1, seed: 7}  # the fault's magnitude, then 0, in turn

(``on_for``/``off_for``, not ``on``/``off``: YAML 1.1 reads those keys as booleans.)

:func:`step_plan` turns a schedule into ``(offset_s, value)`` steps from the fault's apply
instant: the engine applies the first with the fault and each later one as an update of the
same toxic / HTTP fault, so the fault's undo record covers whichever step is in force.
"""

from __future__ import annotations

import math
import random
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from harness.scenario.common import Strict
from harness.scenario.units import Duration

__all__ = ["MAX_STEPS", "FlapSpec", "RampSpec", "ScheduleSpec", "StepSpec", "default_ramp_steps", "step_plan"]

MAX_STEPS = 1000
"""More steps than this in one fault is a typo (each one is an API call and two journal lines)."""
PROBES_PER_STEP = 10
"""A ramp without ``steps`` holds each step for at least this many probe intervals, so every step
is seen by the probe (a 20 Hz probe and a 60 s ramp: 120 steps of 0.5 s)."""


def _number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number like 300 or 0.25, got {value!r}")
    return value


Magnitude = Annotated[float, BeforeValidator(_number), Field(ge=0)]


class RampSpec(Strict):
    """``steps`` values from ``from`` to ``to`` (both included), each held ``over / steps`` (``over``
    defaults to the whole fault); ``to`` holds from then to the end of the fault."""

    from_: Magnitude = Field(alias="from")
    to: Magnitude
    over: Duration | None = None
    steps: int | None = Field(default=None, ge=2, le=MAX_STEPS)

    @model_validator(mode="after")
    def _moves(self) -> RampSpec:
        if self.from_ == self.to:
            raise ValueError("ramp: from and to are equal (a constant fault needs no schedule)")
        if self.over is not None and self.over <= 0:
            raise ValueError("ramp: over must be longer than 0s")
        return self


class StepSpec(Strict):
    """One step: ``value`` for ``for``."""

    value: Magnitude
    for_: Duration = Field(alias="for")

    @model_validator(mode="after")
    def _lasts(self) -> StepSpec:
        if self.for_ <= 0:
            raise ValueError("a step must last longer than 0s")
        return self


class FlapSpec(Strict):
    """``on_for`` at ``value`` (default: the fault's own magnitude), ``off_for`` at 0, in turn until the
    fault ends; each period moves by up to ± ``jitter_s`` (drawn from ``seed``: the same on every run)."""

    on_for: Duration
    off_for: Duration
    value: Magnitude | None = None
    jitter_s: float = Field(default=0.0, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _periods(self) -> FlapSpec:
        if self.on_for <= 0 or self.off_for <= 0:
            raise ValueError("flap: on_for and off_for must each last longer than 0s")
        if self.jitter_s >= min(self.on_for, self.off_for):
            raise ValueError(f"flap: jitter_s {self.jitter_s:g} must be shorter than on_for and off_for "
                             f"({min(self.on_for, self.off_for):g}s), or a period could vanish")
        return self


class ScheduleSpec(Strict):
    """Exactly one of ``ramp``, ``steps``, ``flap``."""

    ramp: RampSpec | None = None
    steps: list[StepSpec] | None = Field(default=None, min_length=1, max_length=MAX_STEPS)
    flap: FlapSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> ScheduleSpec:
        given = [name for name in ("ramp", "steps", "flap") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a schedule is one of ramp, steps or flap" +
                             (f" (got {' and '.join(given)})" if given else ""))
        return self

    @property
    def shape(self) -> str:
        return "ramp" if self.ramp is not None else "steps" if self.steps is not None else "flap"

    def describe(self) -> str:
        """``ramp 0 -> 3000 in 20 steps``, ``3 steps``, ``flap 5s on / 5s off``: the dry-run plan's words."""
        if self.ramp is not None:
            r = self.ramp
            over = f" over {r.over:g} s" if r.over is not None else ""
            steps = f" in {r.steps} steps" if r.steps is not None else ""
            return f"ramp {r.from_:g} -> {r.to:g}{steps}{over}"
        if self.steps is not None:
            return "steps " + ", ".join(f"{s.value:g} for {s.for_:g} s" for s in self.steps)
        assert self.flap is not None
        jitter = f" ± {self.flap.jitter_s:g} s" if self.flap.jitter_s else ""
        return f"flap {self.flap.on_for:g} s on / {self.flap.off_for:g} s off{jitter}"

    def length_s(self) -> float | None:
        """How long the schedule itself lasts (None: as long as the fault, a flap or a ramp
        without ``over``)."""
        if self.ramp is not None:
            return self.ramp.over
        if self.steps is not None:
            return sum(s.for_ for s in self.steps)
        return None

    def peak(self, own: float | None) -> float:
        """The largest magnitude the schedule reaches (``own``: the fault's own, for a flap)."""
        if self.ramp is not None:
            return max(self.ramp.from_, self.ramp.to)
        if self.steps is not None:
            return max(s.value for s in self.steps)
        assert self.flap is not None
        return self.flap.value if self.flap.value is not None else (own or 0.0)


def default_ramp_steps(over_s: float, probe_rate_hz: float) -> int:
    """Steps for a ramp that names none: each step lasts :data:`PROBES_PER_STEP` probe intervals
    (at least 1 s without a probe), between 2 and :data:`MAX_STEPS`."""
    step_s = PROBES_PER_STEP / probe_rate_hz if probe_rate_hz > 0 else 1.0
    return max(2, min(MAX_STEPS, math.floor(over_s / max(step_s, 1e-3))))


def step_plan(schedule: ScheduleSpec, length_s: float, own: float | None,
              probe_rate_hz: float = 20.0) -> list[tuple[float, float]]:
    """``(offset_s, value)`` for every step, offsets from the fault's apply instant, the first at
    0; only steps that start before ``length_s`` (the fault's duration)."""
    plan: list[tuple[float, float]] = []
    if schedule.ramp is not None:
        r = schedule.ramp
        over = r.over if r.over is not None else length_s
        n = r.steps if r.steps is not None else default_ramp_steps(over, probe_rate_hz)
        # n values, from at 0 and to at over * (n-1)/n (held to the end of the fault).
        plan = [(over * i / n, r.from_ + (r.to - r.from_) * i / (n - 1)) for i in range(n)]
    elif schedule.steps is not None:
        t = 0.0
        for s in schedule.steps:
            plan.append((t, s.value))
            t += s.for_
    else:
        f = schedule.flap
        assert f is not None
        rng = random.Random(f.seed)
        on_value = f.value if f.value is not None else (own or 0.0)
        t, on = 0.0, True
        while t < length_s and len(plan) < 100 * MAX_STEPS:
            plan.append((t, on_value if on else 0.0))
            period = f.on_for if on else f.off_for
            if f.jitter_s > 0:
                period += rng.uniform(-f.jitter_s, f.jitter_s)
            t += period
            on = not on
    return [(round(t, 6), v) for t, v in plan if t < length_s - 1e-9 or t == 0.0]
