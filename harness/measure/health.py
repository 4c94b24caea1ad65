"""Measurement health: where the instrument itself could not see, and which verdicts that voids.

Pure, like the rest of measure: given the samples, the phases, what measure found
(:class:`~harness.measure.run.Measurement`) and the harness's own trouble records
(:class:`~harness.measure.model.HarnessTrouble`, from ``RUN_DIR/health.jsonl``), it returns
:class:`Health`:

1. **Problems** — stretches of time in which the instrument could not see well, each with its
   start, length, kind and a sentence: the troubles the harness recorded as they happened (host
   stalls, a failed write, ...), plus what the samples themselves show — probes sent late by
   their schedule (``start - intended`` above :data:`LAG_PROBLEM_S`), probes skipped because too
   many were in flight, and stretches without any sample while load ran (:data:`SAMPLE_GAP_S`).
2. **Widened figures** — every fault figure (time to detect, RTO, failover, failback) whose
   deciding window overlaps a problem gets a wider resolution (its own plus each overlapping
   problem's magnitude) and the reason.
3. **Undecided objectives** — an objective whose pass/fail could flip within that uncertainty,
   with one line per cause (``probe schedule slipped 0.70 s at +12.3 s, inside the recovery
   window that decides rto_s``). A trouble marked ``partial`` (data after it may be missing)
   leaves every objective whose window reaches past its start undecided.

harness/verdict.py turns undecided objectives into the verdict ``inconclusive``; docs/method.md
states the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.measure.goodness import constant_rate_rows
from harness.measure.incidents import IncidentSummary
from harness.measure.model import HarnessTrouble, ObjectiveSpec, Phases
from harness.measure.objectives import ObjectiveResult
from harness.measure.phases import PERCENTILES, PhaseStats, phase_slice
from harness.measure.recovery import FaultMeasure

LATE_S = 0.010
"""A probe sent more than 10 ms after its intended instant is counted late."""
LAG_PROBLEM_S = 0.1
"""A probe sent more than 100 ms late is a health problem: on a quiet host the lag is well under
a millisecond (bench/load_overhead.py), and 100 ms is under half a 250 ms bucket."""
SAMPLE_GAP_S = 1.0
"""A stretch of at least 1 s without a single request sent while load ran (20 probes at 20 Hz)
is a health problem, unless a recorded trouble already explains it."""
LAG_STRETCH_JOIN_S = 1.0
"""Late probes closer than this to one another belong to one problem."""
SKIPPED_PREFIX = "skipped"


@dataclass(frozen=True)
class HealthProblem:
    """One stretch in which the instrument could not see well (epoch seconds)."""

    kind: str
    start_s: float
    end_s: float
    magnitude_s: float
    detail: str
    partial: bool = False

    @property
    def length_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    def overlaps(self, start_s: float, end_s: float) -> bool:
        return self.start_s < end_s and self.end_s > start_s


@dataclass(frozen=True)
class ProbeSchedule:
    """How well the probe kept its schedule: rows with an intended instant, how many went out
    late (> :data:`LATE_S`) or were skipped, and the lag's percentiles (ms)."""

    probes: int
    late: int
    skipped: int
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    lag_max_ms: float | None


@dataclass(frozen=True)
class IntendedLatency:
    """A phase's successful probe latencies measured from the intended send instant
    (``end - intended``): what a user arriving on schedule would have waited. Reported beside
    the judging figures (actual send), never instead of them."""

    probes: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class WidenedFigure:
    """A fault figure whose deciding window overlaps a problem."""

    fault: str
    figure: str
    resolution_s: float
    widened_resolution_s: float
    reason: str


@dataclass(frozen=True)
class UndecidedObjective:
    """An objective whose pass/fail could flip within the measurement's own trouble; ``reasons``
    holds one line per cause."""

    name: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Health:
    """Everything :func:`assess_health` found; ``run_start_s`` is the instant ``+X s`` offsets
    count from (the baseline's start)."""

    problems: list[HealthProblem]
    schedule: ProbeSchedule | None
    figures: list[WidenedFigure] = field(default_factory=list)
    undecided: list[UndecidedObjective] = field(default_factory=list)
    latency_from_intended: dict[str, IntendedLatency] = field(default_factory=dict)
    run_start_s: float | None = None

    @property
    def undecided_names(self) -> list[str]:
        return [u.name for u in self.undecided]


# --- problems ---------------------------------------------------------------------------------
def probe_rows(samples: pd.DataFrame) -> pd.DataFrame:
    """The probe rows that carry an intended instant, ordered by it."""
    probes = samples[constant_rate_rows(samples) & samples["intended"].notna().to_numpy()]
    return probes.sort_values("intended", kind="mergesort")


def probe_schedule(samples: pd.DataFrame) -> ProbeSchedule | None:
    """The probe's schedule figures; None when no probe row carries an intended instant."""
    probes = probe_rows(samples)
    if probes.empty:
        return None
    lag_s = (probes["start"] - probes["intended"]).to_numpy()
    skipped = probes["error"].astype(str).str.startswith(SKIPPED_PREFIX).to_numpy()
    lag_ms = np.maximum(lag_s, 0.0) * 1000.0
    p50, p99 = (float(v) for v in np.percentile(lag_ms, [50.0, 99.0]))
    return ProbeSchedule(
        probes=int(len(probes)), late=int(np.count_nonzero(lag_s > LATE_S)), skipped=int(skipped.sum()),
        lag_p50_ms=round(p50, 3), lag_p99_ms=round(p99, 3), lag_max_ms=round(float(lag_ms.max()), 3),
    )


def _stretches(instants: np.ndarray, join_s: float) -> list[tuple[int, int]]:
    """Index ranges [i, j) of sorted ``instants`` whose neighbours are closer than ``join_s``."""
    if instants.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(instants) > join_s) + 1
    edges = [0, *breaks.tolist(), int(instants.size)]
    return list(zip(edges[:-1], edges[1:], strict=False))


def lag_problems(samples: pd.DataFrame) -> list[HealthProblem]:
    """Stretches of probes sent more than :data:`LAG_PROBLEM_S` after their intended instant,
    from the first such intended instant to the last late send; magnitude the largest lag."""
    probes = probe_rows(samples)
    if probes.empty:
        return []
    lag = (probes["start"] - probes["intended"]).to_numpy()
    late = lag > LAG_PROBLEM_S
    intended = probes["intended"].to_numpy()[late]
    starts = probes["start"].to_numpy()[late]
    lags = lag[late]
    problems = []
    for i, j in _stretches(intended, LAG_STRETCH_JOIN_S):
        worst = float(lags[i:j].max())
        problems.append(HealthProblem(
            "probe_lag", float(intended[i]), float(starts[i:j].max()), worst,
            f"probe schedule slipped {worst:.2f} s ({j - i} probes sent late)",
        ))
    return problems


def skipped_problems(samples: pd.DataFrame, probe_interval_s: float) -> list[HealthProblem]:
    """Stretches of probes not sent because too many were in flight; each skipped probe costs
    one probe interval of resolution."""
    probes = probe_rows(samples)
    if probes.empty:
        return []
    skipped = probes["error"].astype(str).str.startswith(SKIPPED_PREFIX).to_numpy()
    due = probes["intended"].to_numpy()[skipped]
    problems = []
    for i, j in _stretches(due, LAG_STRETCH_JOIN_S):
        problems.append(HealthProblem(
            "probe_skipped", float(due[i]), float(due[j - 1]) + probe_interval_s, probe_interval_s,
            f"{j - i} probes skipped (too many in flight)",
        ))
    return problems


def gap_problems(samples: pd.DataFrame, start_s: float, end_s: float) -> list[HealthProblem]:
    """Stretches of at least :data:`SAMPLE_GAP_S` between two requests sent in ``[start_s,
    end_s)`` in which no request of any source was sent (or none was recorded). Before the first
    and after the last there is no gap: load had not started or had stopped (an abort, the end);
    data lost after a failed write is the write error's own ``partial`` trouble."""
    starts = samples["start"].to_numpy()
    edges = np.sort(starts[(starts >= start_s) & (starts < end_s)])
    gaps = np.diff(edges)
    problems = []
    for k in np.flatnonzero(gaps >= SAMPLE_GAP_S):
        a, b = float(edges[k]), float(edges[k + 1])
        problems.append(HealthProblem("sample_gap", a, b, b - a, f"no request recorded for {b - a:.2f} s"))
    return problems


def trouble_problems(troubles: list[HarnessTrouble]) -> list[HealthProblem]:
    return [HealthProblem(t.kind, t.start_s, max(t.end_s, t.start_s), max(t.magnitude_s, 0.0), t.detail, t.partial)
            for t in troubles]


def find_problems(
    samples: pd.DataFrame, troubles: list[HarnessTrouble], phases: Phases, probe_interval_s: float
) -> list[HealthProblem]:
    """Every health problem of a run, ordered by start. A sample gap that a recorded trouble or
    probe lag already covers is not listed twice."""
    known = trouble_problems(troubles) + lag_problems(samples) + skipped_problems(samples, probe_interval_s)
    if phases:
        start = min(s for s, _ in phases.values())
        end = max(e for _, e in phases.values())
        for gap in gap_problems(samples, start, end):
            if not any(p.start_s <= gap.start_s + LAG_STRETCH_JOIN_S and p.end_s >= gap.end_s - LAG_STRETCH_JOIN_S
                       for p in known):
                known.append(gap)
    return sorted(known, key=lambda p: (p.start_s, p.kind))


# --- deciding windows, widened figures ----------------------------------------------------------
FAULT_FIGURE_WINDOWS = ("time_to_detect_s", "rto_s", "failover_s", "failback_s")


def fault_figure_window(f: FaultMeasure, figure: str, window_s: float, data_end_s: float) -> tuple[float, float]:
    """The stretch that decides one fault figure: from the onset to the figure's instant (the
    RTO's also the W of healthy buckets that confirmed it); to the data's end when missing."""
    onset = f.fault.onset_at
    value: float | None = getattr(f, figure)
    if value is None:
        return onset, data_end_s
    extra = window_s if figure == "rto_s" else 0.0
    return onset, min(onset + value + extra, data_end_s)


def at_text(problem: HealthProblem, run_start_s: float | None) -> str:
    """``probe schedule slipped 0.70 s at +12.3 s``."""
    if run_start_s is None:
        return problem.detail
    return f"{problem.detail} at +{problem.start_s - run_start_s:.1f} s"


def widened_figures(
    faults: list[FaultMeasure], problems: list[HealthProblem], window_s: float, data_end_s: float,
    run_start_s: float | None,
) -> list[WidenedFigure]:
    out = []
    for f in faults:
        for figure in FAULT_FIGURE_WINDOWS:
            if figure != "rto_s" and getattr(f, figure) is None:
                continue
            start, end = fault_figure_window(f, figure, window_s, data_end_s)
            touching = [p for p in problems if p.overlaps(start, end)]
            if not touching:
                continue
            out.append(WidenedFigure(
                fault=f.fault.name, figure=figure, resolution_s=f.resolution_s,
                widened_resolution_s=round(f.resolution_s + sum(p.magnitude_s for p in touching), 6),
                reason="; ".join(at_text(p, run_start_s) for p in touching),
            ))
    return out


# --- undecided objectives ----------------------------------------------------------------------
WINDOW_WORDS = {
    "rto_s": "the recovery window that decides rto_s",
    "max_impact_s": "the stretch from the first onset to the end of the data that decides max_impact_s",
    "max_error_rate": "the fault phase that decides max_error_rate",
    "p95_ms": "the window that decides p95_ms",
}


def _window_words(name: str) -> str:
    return WINDOW_WORDS.get(name, f"the window that decides {name}")


def _partial_lines(name: str, window: tuple[float, float], problems: list[HealthProblem],
                   run_start_s: float | None) -> list[str]:
    return [f"{at_text(p, run_start_s)}: data after it may be missing, inside {_window_words(name)}"
            for p in problems if p.partial and p.start_s < window[1]]


def _lines(name: str, touching: list[HealthProblem], run_start_s: float | None) -> tuple[str, ...]:
    return tuple(f"{at_text(p, run_start_s)}, inside {_window_words(name)}" for p in touching)


def _rto_undecided(
    objective: ObjectiveResult, faults: list[FaultMeasure], problems: list[HealthProblem],
    window_s: float, data_end_s: float, run_start_s: float | None,
) -> tuple[str, ...]:
    """The worst RTO passes when it is <= the target; each touched fault's RTO could lie anywhere
    within its widened resolution, so the worst could be anything in [max(rto - w), max(rto + w)];
    an unrecovered fault with a problem in its window could have recovered unseen."""
    target = float(objective.target) if isinstance(objective.target, int | float) else None
    if target is None or not faults:
        return ()
    low = high = 0.0
    touching_all: list[HealthProblem] = []
    for f in faults:
        window = fault_figure_window(f, "rto_s", window_s, data_end_s)
        touching = [p for p in problems if not p.partial and p.overlaps(*window)]
        touching_all += [p for p in touching if p not in touching_all]
        if f.rto_s is None:
            if touching:
                return _lines("rto_s", touching, run_start_s)
            return ()  # unrecovered with a clean window: a decided failure
        widen = f.resolution_s + sum(p.magnitude_s for p in touching) if touching else 0.0
        low, high = max(low, f.rto_s - widen), max(high, f.rto_s + widen)
    if touching_all and low <= target < high:
        return _lines("rto_s", touching_all, run_start_s)
    return ()


def _error_rate_undecided(
    objective: ObjectiveResult, fault_phase: PhaseStats | None, problems: list[HealthProblem],
    run_start_s: float | None,
) -> tuple[str, ...]:
    """The fault phase's error rate can move by at most the share of its probes the problems
    displaced: the share of the phase's time they cover (at least their magnitude, for a problem
    with no length such as a clock step). A probe due in a stall went out after it; had it gone on
    time its outcome could have been the other one."""
    if fault_phase is None or not isinstance(objective.measured, int | float) or fault_phase.end <= fault_phase.start:
        return ()
    touching = [p for p in problems if not p.partial and p.overlaps(fault_phase.start, fault_phase.end)]
    if not touching:
        return ()
    length = fault_phase.end - fault_phase.start
    share = sum(max(min(p.end_s, fault_phase.end) - max(p.start_s, fault_phase.start), p.magnitude_s)
                for p in touching) / length
    target = float(objective.target) if isinstance(objective.target, int | float) else None
    if target is not None and abs(float(objective.measured) - target) <= share:
        return _lines("max_error_rate", touching, run_start_s)
    return ()


def _p95_undecided(
    objective: ObjectiveResult, window: PhaseStats | None, bound_ms: float | None, samples: pd.DataFrame,
    problems: list[HealthProblem], run_start_s: float | None,
) -> tuple[str, ...]:
    """A stall can only add time to a request it overlaps. So a missed p95 is undecided when the
    p95 with every overlapped latency shortened by its overlap would pass; a met p95 stays met."""
    if window is None or bound_ms is None or objective.passed or not isinstance(objective.measured, int | float):
        return ()
    touching = [p for p in problems if not p.partial and p.overlaps(window.start, window.end)]
    if not touching:
        return ()
    rows = phase_slice(samples["start"].to_numpy(), window.start, window.end)
    chosen = samples.iloc[rows]
    if window.stream == "probe":
        chosen = chosen[constant_rate_rows(chosen)]
    chosen = chosen[chosen["ok"].to_numpy() == 1]
    starts, ends = chosen["start"].to_numpy(), chosen["end"].to_numpy()
    latency = chosen["latency_ms"].to_numpy().copy()
    for p in touching:
        overlap_s = np.clip(np.minimum(ends, p.end_s) - np.maximum(starts, p.start_s), 0.0, None)
        latency -= overlap_s * 1000.0
    if latency.size == 0:
        return ()
    lowest = float(np.percentile(np.maximum(latency, 0.0), 95.0))
    if lowest <= bound_ms:
        return _lines("p95_ms", touching, run_start_s)
    return ()


def _impact_undecided(
    objective: ObjectiveResult, impact: IncidentSummary | None, window: tuple[float, float],
    problems: list[HealthProblem], bucket_s: float, run_start_s: float | None,
) -> tuple[str, ...]:
    """The summed impact can move by a bucket and the problem's magnitude for each problem in its
    window (a stall can make a bucket look bad, or leave one empty that was): undecided when the
    target lies within that much of the measured sum."""
    if impact is None or not isinstance(objective.measured, int | float) or impact.open:
        return ()
    touching = [p for p in problems if not p.partial and p.overlaps(*window)]
    target = float(objective.target) if isinstance(objective.target, int | float) else None
    if not touching or target is None:
        return ()
    widen = sum(p.magnitude_s + bucket_s for p in touching)
    if abs(float(objective.measured) - target) <= widen:
        return _lines("max_impact_s", touching, run_start_s)
    return ()


def objective_windows(
    spec: ObjectiveSpec, phases: dict[str, PhaseStats], faults: list[FaultMeasure], p95_window: PhaseStats | None,
    window_s: float, data_end_s: float,
) -> dict[str, tuple[float, float]]:
    """The stretch of time each objective is decided on (a partial trouble after its end leaves
    it decided)."""
    first_onset = min((f.fault.onset_at for f in faults), default=data_end_s)
    fault_phase = phases.get("fault")
    fault_start = fault_phase.start if fault_phase is not None else first_onset
    rto_end = max((fault_figure_window(f, "rto_s", window_s, data_end_s)[1] for f in faults), default=data_end_s)
    windows = {
        "rto_s": (first_onset, rto_end),
        "max_error_rate": (fault_start, fault_phase.end if fault_phase is not None else data_end_s),
        "p95_ms": (p95_window.start, p95_window.end) if p95_window is not None else (fault_start, data_end_s),
    }
    del spec  # every other objective is decided on the rest of the run
    return windows


def undecided_objectives(
    objectives: list[ObjectiveResult],
    *,
    spec: ObjectiveSpec,
    samples: pd.DataFrame,
    phases: dict[str, PhaseStats],
    faults: list[FaultMeasure],
    p95_window: PhaseStats | None,
    p95_bound_ms: float | None,
    problems: list[HealthProblem],
    window_s: float,
    data_end_s: float,
    run_start_s: float | None,
    bucket_s: float = 0.25,
    impact: IncidentSummary | None = None,
) -> list[UndecidedObjective]:
    """The objectives whose pass/fail could flip within the problems (see the module docstring).
    ``failover_to``, ``max_lost_requests`` and the streaming objectives are left undecided only
    by a partial trouble: a stall can hide neither a tier's answer nor a lost request."""
    if not problems:
        return []
    windows = objective_windows(spec, phases, faults, p95_window, window_s, data_end_s)
    first_onset = min((f.fault.onset_at for f in faults), default=data_end_s)
    out = []
    for objective in objectives:
        name = objective.name
        window = windows.get(name, (first_onset, data_end_s))
        lines = _partial_lines(name, window, problems, run_start_s)
        if not lines:
            if name == "rto_s":
                lines = list(_rto_undecided(objective, faults, problems, window_s, data_end_s, run_start_s))
            elif name == "max_impact_s":
                lines = list(_impact_undecided(objective, impact, window, problems, bucket_s, run_start_s))
            elif name == "max_error_rate":
                lines = list(_error_rate_undecided(objective, phases.get("fault"), problems, run_start_s))
            elif name == "p95_ms":
                lines = list(_p95_undecided(objective, p95_window, p95_bound_ms, samples, problems, run_start_s))
        if lines:
            out.append(UndecidedObjective(name, tuple(lines)))
    return out


# --- latency from the intended instant -----------------------------------------------------------
def latency_from_intended(samples: pd.DataFrame, phases: Phases) -> dict[str, IntendedLatency]:
    """Per phase, successful probes' ``end - intended`` percentiles (ms); phases are cut by the
    intended instant (the schedule), {} without intended instants."""
    probes = probe_rows(samples)
    if probes.empty:
        return {}
    probes = probes[probes["ok"].to_numpy() == 1]
    intended = probes["intended"].to_numpy()
    latency_ms = (probes["end"].to_numpy() - intended) * 1000.0
    out = {}
    for name, (start, end) in phases.items():
        inside = (intended >= start) & (intended < end)
        values = latency_ms[inside]
        if values.size:
            p50, p95, p99 = (round(float(v), 3) for v in np.percentile(values, PERCENTILES))
            out[name] = IntendedLatency(int(values.size), p50, p95, p99)
        else:
            out[name] = IntendedLatency(0, None, None, None)
    return out


def p95_bound_ms(spec: ObjectiveSpec, baseline_p95_ms: float | None) -> float | None:
    """The p95 objective's bound in ms (None: relative and no baseline, or no p95 objective)."""
    if spec.p95_ms is not None:
        return float(spec.p95_ms)
    if spec.p95_baseline_factor is not None and baseline_p95_ms is not None:
        return spec.p95_baseline_factor * baseline_p95_ms
    return None


def assess_health(
    samples: pd.DataFrame,
    phases: Phases,
    troubles: list[HarnessTrouble],
    *,
    spec: ObjectiveSpec,
    objectives: list[ObjectiveResult],
    stats: dict[str, PhaseStats],
    faults: list[FaultMeasure],
    p95_window: PhaseStats | None,
    baseline_p95_ms: float | None,
    probe_interval_s: float,
    window_s: float,
    bucket_s: float = 0.25,
    impact: IncidentSummary | None = None,
) -> Health:
    """Problems, widened fault figures, undecided objectives and the intended-clock latencies of
    one run (``samples`` sorted by start)."""
    problems = find_problems(samples, troubles, phases, probe_interval_s)
    run_start = min((s for s, _ in phases.values()), default=None)
    data_end = max((e for _, e in phases.values()), default=float(samples["end"].max()) if len(samples) else 0.0)
    return Health(
        problems=problems,
        schedule=probe_schedule(samples),
        figures=widened_figures(faults, problems, window_s, data_end, run_start),
        undecided=undecided_objectives(
            objectives, spec=spec, samples=samples, phases=stats, faults=faults, p95_window=p95_window,
            p95_bound_ms=p95_bound_ms(spec, baseline_p95_ms), problems=problems, window_s=window_s,
            data_end_s=data_end, run_start_s=run_start, bucket_s=bucket_s, impact=impact,
        ),
        latency_from_intended=latency_from_intended(samples, phases),
        run_start_s=run_start,
    )
