"""Objectives: each set objective of a scenario checked against the measured figures."""

from __future__ import annotations

from dataclasses import dataclass

from harness.measure.answers import AnswerStats
from harness.measure.incidents import IncidentSummary
from harness.measure.model import ObjectiveSpec
from harness.measure.phases import PhaseStats
from harness.measure.recovery import IMPACT_UNRECOVERED, FaultMeasure
from harness.measure.streams import StreamStats

Target = float | int | str


@dataclass(frozen=True)
class ObjectiveResult:
    """One objective: ``measured`` None means it could not be measured, and then it failed.

    ``note`` says why ``measured`` is missing or how ``target`` was resolved.
    """

    name: str
    target: Target
    measured: float | int | str | None
    passed: bool
    note: str | None = None


def evaluate_objectives(
    spec: ObjectiveSpec,
    *,
    phases: dict[str, PhaseStats],
    faults: list[FaultMeasure],
    baseline_p95_ms: float | None,
    p95_window: PhaseStats | None,
    failover_to_s: float | None,
    lost_requests: int | None,
    baseline_ttft_p95_ms: float | None = None,
    ttft_window: StreamStats | None = None,
    completion: StreamStats | None = None,
    answers: AnswerStats | None = None,
    impact: IncidentSummary | None = None,
) -> list[ObjectiveResult]:
    """Every objective set in ``spec``, in the order rto_s, max_impact_s, max_error_rate, p95_ms,
    failover_to, max_lost_requests, ttft_p95_ms, min_stream_completion, splice_gap_p95_ms,
    max_tokens_lost, max_tokens_repeated, max_foreign_tokens, max_invalid_answer_rate.

    ``rto_s`` is checked against the worst fault; ``max_impact_s`` against ``impact`` (the
    incidents from the first onset to the end of the data, their lengths summed);
    ``max_error_rate`` against the fault phase (constant-rate stream); ``p95_ms`` against
    ``p95_window`` (the window ``spec.p95_during`` names, None when it does not exist);
    ``failover_to_s`` is first onset -> first good response from that tier; ``lost_requests``
    counts status-0 requests after the first onset.
    ``ttft_p95_ms`` is checked against ``ttft_window`` (the window ``spec.ttft_p95_during`` names,
    streams only) and a relative bound against ``baseline_ttft_p95_ms``; ``min_stream_completion``
    against ``completion`` (the streams of the fault and recovery phases), and so are the splice
    objectives (its probe streams); ``max_invalid_answer_rate`` against ``answers`` (the fault
    phase's).
    """
    results: list[ObjectiveResult] = []
    fault_phase = phases.get("fault")
    if spec.rto_s is not None:
        results.append(_rto(spec.rto_s, faults))
    if spec.max_impact_s is not None:
        results.append(_impact(spec.max_impact_s, impact, bool(faults)))
    if spec.max_error_rate is not None:
        measured = None if fault_phase is None else fault_phase.error_rate
        results.append(
            _at_most("max_error_rate", spec.max_error_rate, measured, "the fault phase has no requests")
        )
    if spec.has_p95:
        results.append(_p95(spec, p95_window, baseline_p95_ms, _no_after_failover(phases, faults)))
    if spec.failover_to is not None:
        results.append(_failover_to(spec.failover_to, failover_to_s, bool(faults)))
    if spec.max_lost_requests is not None:
        results.append(
            _at_most("max_lost_requests", spec.max_lost_requests, lost_requests, "no fault was applied")
        )
    if spec.has_ttft_p95:
        results.append(_ttft_p95(spec, ttft_window, baseline_ttft_p95_ms, _no_after_failover(phases, faults)))
    if spec.min_stream_completion is not None:
        results.append(_stream_completion(spec.min_stream_completion, completion))
    if spec.splice_gap_p95_ms is not None:
        results.append(_splice_gap(spec.splice_gap_p95_ms, completion))
    for name, bound in (("max_tokens_lost", spec.max_tokens_lost), ("max_tokens_repeated", spec.max_tokens_repeated),
                        ("max_foreign_tokens", spec.max_foreign_tokens)):
        if bound is not None:
            results.append(_answer_tokens(name, bound, completion))
    if spec.max_invalid_answer_rate is not None:
        results.append(_invalid_answers(spec.max_invalid_answer_rate, answers))
    return results


def _moved_at(faults: list[FaultMeasure]) -> float | None:
    """When traffic had moved: the first answer from another tier arrived *and* new requests were
    good again (the fault's ``service_restored_s``), whichever is later, for the earliest fault
    that failed over; None without a failover."""
    moved = [f.fault.onset_at + max(f.failover_s, f.service_restored_s or 0.0)
             for f in faults if f.failover_s is not None]
    return min(moved) if moved else None


def after_failover_span(stats: dict[str, PhaseStats], faults: list[FaultMeasure]) -> tuple[float, float] | None:
    """From the moment traffic had moved (:func:`_moved_at`) to the end of the fault phase: a
    window opened while requests were still slow would judge the incident a second time, which the
    RTO already does. None without a fault phase or a failover inside it."""
    fault_phase = stats.get("fault")
    moved = _moved_at(faults)
    if fault_phase is None or moved is None or moved >= fault_phase.end:
        return None
    return moved, fault_phase.end


def _no_after_failover(phases: dict[str, PhaseStats], faults: list[FaultMeasure]) -> str:
    """Why a run has no ``after_failover`` window (:func:`after_failover_span` gave None)."""
    fault_phase = phases.get("fault")
    moved = _moved_at(faults)
    if fault_phase is None:
        return "the run has no fault phase"
    if moved is None:
        return "no failover was observed"
    return (f"traffic moved (another tier answering, requests good again) only "
            f"{moved - fault_phase.end:.2f} s after the fault phase ended, so no part of it follows")


def all_met(results: list[ObjectiveResult]) -> bool:
    """True when every objective passed (or none was set). The verdict is decided from this, the
    abort and the cleanup in one place: harness/verdict.py."""
    return all(r.passed for r in results)


def _at_most(name: str, target: float | int, measured: float | int | None, why_missing: str) -> ObjectiveResult:
    if measured is None:
        return ObjectiveResult(name, target, None, False, why_missing)
    if isinstance(measured, float):
        measured = round(measured, 6)
    return ObjectiveResult(name, target, measured, measured <= target)


def _rto(target_s: float, faults: list[FaultMeasure]) -> ObjectiveResult:
    if not faults:
        return ObjectiveResult("rto_s", target_s, None, False, "no fault was applied")
    unrecovered = [f.fault.name for f in faults if f.impact == IMPACT_UNRECOVERED or f.rto_s is None]
    if unrecovered:
        reasons = [
            f"{f.fault.name}: {f.notes.get('rto_s', 'not recovered')}" for f in faults if f.fault.name in unrecovered
        ]
        return ObjectiveResult("rto_s", target_s, None, False, "not recovered: " + "; ".join(reasons))
    worst = max(faults, key=lambda f: f.rto_s or 0.0)
    measured = round(worst.rto_s or 0.0, 6)
    note = f"worst fault: {worst.fault.name}" if len(faults) > 1 else None
    return ObjectiveResult("rto_s", target_s, measured, measured <= target_s, note)


def _impact(target_s: float, impact: IncidentSummary | None, any_fault: bool) -> ObjectiveResult:
    """The time users were affected in all, from the first onset to the end of the data. An
    incident still open at the end makes the sum a lower bound: the objective then fails."""
    name = "max_impact_s"
    if not any_fault or impact is None:
        return ObjectiveResult(name, target_s, None, False, "no fault was applied")
    measured = round(impact.total_s, 6)
    if impact.incidents == 0:
        return ObjectiveResult(name, target_s, measured, measured <= target_s, "no incident")
    said = (f"{impact.incidents} incident{'s' if impact.incidents != 1 else ''}: first at "
            f"+{impact.first_s or 0.0:.2f} s, last until +{impact.last_s or 0.0:.2f} s")
    if impact.open:
        return ObjectiveResult(name, target_s, measured, False,
                               f"at least {measured:.2f} s: an incident is still open at the end of the data; {said}")
    return ObjectiveResult(name, target_s, measured, measured <= target_s, said)


MIN_LATENCY_SAMPLES = 20
"""A p95 needs at least 20 successful requests (one in the top 5 %) to say anything."""

WINDOW_WORDS = {
    "fault": "the fault phase",
    "after_failover": "the fault phase after traffic moved",
    "recovery": "the recovery phase",
}


def _p95(
    spec: ObjectiveSpec, window: PhaseStats | None, baseline_p95_ms: float | None, no_after_failover: str
) -> ObjectiveResult:
    where = WINDOW_WORDS[spec.p95_during]
    target, bound_ms = _bound_target(spec.p95_ms, spec.p95_baseline_factor, spec.p95_during, baseline_p95_ms)
    if bound_ms is None:
        measured_p95 = None if window is None or window.p95_ms is None else round(window.p95_ms, 3)
        return ObjectiveResult(
            "p95_ms", target, measured_p95, False, "not measurable: no successful baseline request, so no baseline p95"
        )
    if window is None:
        why = no_after_failover if spec.p95_during == "after_failover" else f"{where} has no data"
        return ObjectiveResult("p95_ms", target, None, False, f"not measurable: {why}")
    if window.latency_samples < MIN_LATENCY_SAMPLES or window.p95_ms is None:
        return ObjectiveResult(
            "p95_ms", target, None, False,
            f"not measurable: {window.latency_samples} successful {window.stream} requests in {where} "
            f"(a p95 needs at least {MIN_LATENCY_SAMPLES}); {window.stream_requests - window.latency_samples} failed",
        )
    measured = round(window.p95_ms, 3)
    note = f"p95 of {window.latency_samples} successful {window.stream} requests in {where}"
    return ObjectiveResult("p95_ms", target, measured, measured <= bound_ms, note)


def _failover_to(tier: str, seen_after_s: float | None, any_fault: bool) -> ObjectiveResult:
    if not any_fault:
        return ObjectiveResult("failover_to", tier, None, False, "no fault was applied")
    if seen_after_s is None:
        return ObjectiveResult(
            "failover_to", tier, None, False, f"no good response from tier {tier!r} after the first onset"
        )
    return ObjectiveResult("failover_to", tier, f"{tier} after {seen_after_s:.2f} s", True)


def _bound_target(
    absolute_ms: float | None, factor: float | None, during: str, baseline_ms: float | None
) -> tuple[Target, float | None]:
    """The target as results.json shows it (``800.0``, ``2x baseline (= 84.0 ms)``, ``... during
    recovery``) and the bound in ms (None: relative, and the baseline is unknown)."""
    target: Target
    if factor is not None:
        bound_ms = None if baseline_ms is None else factor * baseline_ms
        target = f"{factor:g}x baseline (= {bound_ms:.1f} ms)" if bound_ms is not None else f"{factor:g}x baseline"
    else:
        bound_ms = float(absolute_ms or 0.0)
        target = bound_ms
    if during != "fault":
        unit = " ms" if isinstance(target, float) else ""
        target = f"{target}{unit} during {during}"
    return target, bound_ms


def _ttft_p95(
    spec: ObjectiveSpec, window: StreamStats | None, baseline_ms: float | None, no_after_failover: str
) -> ObjectiveResult:
    name = "ttft_p95_ms"
    where = WINDOW_WORDS[spec.ttft_p95_during]
    target, bound_ms = _bound_target(spec.ttft_p95_ms, spec.ttft_p95_baseline_factor, spec.ttft_p95_during,
                                     baseline_ms)
    if bound_ms is None:
        measured = None if window is None or window.ttft_p95_ms is None else round(window.ttft_p95_ms, 3)
        return ObjectiveResult(
            name, target, measured, False,
            "not measurable: no streamed baseline request got a first token, so no baseline TTFT p95",
        )
    if window is None:
        why = no_after_failover if spec.ttft_p95_during == "after_failover" else f"{where} has no data"
        return ObjectiveResult(name, target, None, False, f"not measurable: {why}")
    if window.streams == 0:
        return ObjectiveResult(
            name, target, None, False,
            f"not measurable: no streamed request in {where} (does the load ask for \"stream\": true?)",
        )
    if window.ttft_samples < MIN_LATENCY_SAMPLES or window.ttft_p95_ms is None:
        return ObjectiveResult(
            name, target, None, False,
            f"not measurable: {window.ttft_samples} {window.ttft_stream} streams got a first token in {where} "
            f"(a p95 needs at least {MIN_LATENCY_SAMPLES}); {window.failed_before_first_token} of {window.streams} "
            "streams failed before their first token",
        )
    measured = round(window.ttft_p95_ms, 3)
    note = f"TTFT p95 of {window.ttft_samples} {window.ttft_stream} streams with a first token in {where}"
    return ObjectiveResult(name, target, measured, measured <= bound_ms, note)


def _stream_completion(target: float, window: StreamStats | None) -> ObjectiveResult:
    name = "min_stream_completion"
    if window is None or window.streams == 0 or window.completion_rate is None:
        return ObjectiveResult(
            name, target, None, False,
            "not measurable: no streamed request in the fault and recovery phases "
            "(does the load ask for \"stream\": true?)",
        )
    measured = round(window.completion_rate, 6)
    note = f"{window.completed} of {window.streams} streams completed in the fault and recovery phases; "
    if window.ended_short:
        floors = ", ".join(f"{n} tokens ({source})" for source, n in sorted((window.expected or {}).items()))
        note += f"{window.ended_short} ended with [DONE] but short of the baseline's {floors}, "
    note += f"{window.failed_mid_stream} failed mid-stream, {window.failed_before_first_token} before the first token"
    return ObjectiveResult(name, target, measured, measured >= target, note)


SPLICE_WHERE = "the fault and recovery phases"


def _splice_gap(target_ms: float, window: StreamStats | None) -> ObjectiveResult:
    name = "splice_gap_p95_ms"
    splices = None if window is None else window.splices
    if splices is None or splices.splice_gap_p95_ms is None:
        streams = 0 if window is None else window.streams
        return ObjectiveResult(
            name, target_ms, None, False,
            f"not measurable: no stream was spliced in {SPLICE_WHERE} ({streams} streams; a stream that "
            "broke without being resumed is no splice: see min_stream_completion)",
        )
    measured = round(splices.splice_gap_p95_ms, 3)
    note = (f"splice gap p95 of {splices.spliced} spliced {splices.stream} streams in {SPLICE_WHERE} "
            f"(p50 {splices.splice_gap_p50_ms or 0.0:.1f} ms, max {splices.splice_gap_max_ms or 0.0:.1f} ms)")
    return ObjectiveResult(name, target_ms, measured, measured <= target_ms, note)


_ANSWER_WORDS = {"max_tokens_lost": ("tokens_lost", "tokens_lost_max", "lost"),
                 "max_tokens_repeated": ("tokens_repeated", "tokens_repeated_max", "repeated"),
                 "max_foreign_tokens": ("foreign_tokens", "foreign_tokens_max", "from another answer")}


def _answer_tokens(name: str, target: int, window: StreamStats | None) -> ObjectiveResult:
    """The worst checked stream's count of lost / repeated / foreign tokens."""
    total_field, max_field, word = _ANSWER_WORDS[name]
    splices = None if window is None else window.splices
    worst = None if splices is None else getattr(splices, max_field)
    if splices is None or worst is None:
        return ObjectiveResult(
            name, target, None, False,
            f"not measurable: no stream in {SPLICE_WHERE} could be checked token by token (the request "
            "must be a chat request with model and messages, answered by a server whose answers are "
            "known: the reference model servers)",
        )
    total = getattr(splices, total_field)
    note = (f"worst of {splices.checked} checked {splices.stream} streams in {SPLICE_WHERE}; {total} tokens "
            f"{word} in all, {splices.spliced} streams spliced")
    return ObjectiveResult(name, target, worst, worst <= target, note)


def _invalid_answers(target: float, answers: AnswerStats | None) -> ObjectiveResult:
    name = "max_invalid_answer_rate"
    if answers is None or answers.invalid_rate is None:
        return ObjectiveResult(name, target, None, False, "not measurable: the fault phase has no requests")
    measured = round(answers.invalid_rate, 6)
    note = (f"{answers.invalid} of {answers.requests} {answers.stream} answers in the fault phase "
            "did not match their API")
    if answers.reasons:
        reason, count = next(iter(answers.reasons.items()))
        note += f"; most often ({count}): {reason}"
    return ObjectiveResult(name, target, measured, measured <= target, note)
