"""Answer quality per window: the probe's scored canary answers (``samples/quality.csv``, rows of
:data:`~harness.measure.quality.QUALITY_COLUMNS`) summarised per phase and per tier, and the
``min_quality`` objective (docs/quality.md)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.measure.objectives import ObjectiveResult
from harness.measure.phases import phase_slice

MIN_SCORED_ANSWERS = 10
"""Fewer scored answers than this in a judged window leave ``min_quality`` undecided: five
canaries each asked twice is the least that says anything about a tier's relevance."""
QUALITY_WINDOW = "fault"


@dataclass(frozen=True)
class TierQuality:
    answers: int
    score: float | None


@dataclass(frozen=True)
class QualityStats:
    """The scored answers of one window: how many, their mean score (recall@k or similarity; None
    without one), the
    lowest canary mean, and the same per tier that answered."""

    name: str
    k: int | None
    answers: int
    score: float | None
    worst_canary_score: float | None
    by_tier: dict[str, TierQuality]


def quality_stats_for(rows: pd.DataFrame, name: str, start: float, end: float) -> QualityStats:
    """:class:`QualityStats` of the answers to probes sent in ``[start, end)``; ``rows`` (the
    :data:`QUALITY_COLUMNS`) sorted by start."""
    chosen = rows.iloc[phase_slice(rows["start"].to_numpy(), start, end)]
    ks = sorted(set(chosen["k"].astype(int).tolist()))
    score = chosen["score"].astype(float)
    by_tier = {
        str(tier or "none"): TierQuality(int(len(group)), float(group["score"].astype(float).mean()))
        for tier, group in chosen.groupby(chosen["tier"].astype(str), sort=True)
    }
    per_canary = score.groupby(chosen["canary"]).mean() if len(chosen) else pd.Series(dtype=float)
    return QualityStats(
        name=name,
        k=ks[0] if len(ks) == 1 else None,
        answers=int(len(chosen)),
        score=float(score.mean()) if len(chosen) else None,
        worst_canary_score=float(per_canary.min()) if len(per_canary) else None,
        by_tier=by_tier,
    )


def quality_phase_stats(rows: pd.DataFrame, phases: dict[str, tuple[float, float]]) -> dict[str, QualityStats]:
    """:class:`QualityStats` for every phase, in the given order."""
    ordered = rows.sort_values("start", kind="stable").reset_index(drop=True)
    return {name: quality_stats_for(ordered, name, s, e) for name, (s, e) in phases.items()}


@dataclass(frozen=True)
class QualityJudgement:
    objective: ObjectiveResult
    undecided: tuple[str, ...]
    """Lines saying why the objective could not be decided (too few scored answers); empty when
    it was."""


def min_quality_objective(
    metric: str,
    minimum: float | None,
    baseline_factor: float | None,
    stats: dict[str, QualityStats],
    index_problem: str | None = None,
    min_answers: int = MIN_SCORED_ANSWERS,
) -> QualityJudgement:
    """``min_quality``: the fault phase's mean ``metric`` (``recall@5``, ``similarity``: the
    score of the answers) must be at least ``minimum`` or
    ``baseline_factor`` x the baseline's. Fewer than ``min_answers`` scored answers in a window
    it needs leaves it undecided (the run is then inconclusive, never passed); no index at all
    (``index_problem``) fails it as not measurable."""
    name = "min_quality"
    target: float | str = minimum if minimum is not None else f"{baseline_factor:g}x baseline"
    window = stats.get(QUALITY_WINDOW)
    baseline = stats.get("baseline")
    label = metric
    if index_problem is not None:
        return QualityJudgement(ObjectiveResult(name, target, None, False,
                                                f"not measurable: no document index ({index_problem})"), ())
    needed = [(window, "the fault phase")] + ([(baseline, "the baseline")] if minimum is None else [])
    undecided = [f"{name}: {0 if s is None else s.answers} scored answers in {what}, fewer than {min_answers}"
                 for s, what in needed if s is None or s.answers < min_answers]
    measured = None if window is None or window.score is None else round(window.score, 6)
    base = None if baseline is None else baseline.score
    bound = minimum if minimum is not None else (None if base is None else (baseline_factor or 1.0) * base)
    note = _note(label, window, baseline, bound)
    if measured is None or bound is None:
        return QualityJudgement(ObjectiveResult(name, target, measured, False, "not measurable: " + note),
                                tuple(undecided))
    return QualityJudgement(ObjectiveResult(name, target, measured, measured >= round(bound, 6), note),
                            tuple(undecided))


def _note(label: str, window: QualityStats | None, baseline: QualityStats | None, bound: float | None) -> str:
    def said(s: QualityStats | None) -> str:
        if s is None or s.score is None:
            return "no scored answer"
        return f"{s.score:.2f} over {s.answers} answers"

    parts = [f"mean {label}: baseline {said(baseline)}, fault {said(window)}"]
    if window is not None and window.by_tier:
        parts.append("fault by tier " + ", ".join(
            f"{tier} {q.score:.2f} ({q.answers})" for tier, q in window.by_tier.items() if q.score is not None))
    if bound is not None:
        parts.append(f"floor {bound:.2f}")
    return "; ".join(parts)
