"""The verdict and its reasons in words, for the terminal, pytest and the report.

    FAILED: rto_s 6.20 s > 3.00 s (provider-down: never healthy for 5 s after bucket +6.00 s ...)

One line per missed objective, measured against target; an unmeasurable one says why. An
inconclusive run says one line per cause instead:

    INCONCLUSIVE: probe schedule slipped 0.70 s (14 probes sent late) at +12.3 s, inside the
    recovery window that decides rto_s
"""

from __future__ import annotations

from harness.report.formatting import base_name, quantity
from harness.results.model import FaultResult, ObjectiveResult, RunResults

_COMPARISON = {"failover_to": "not reached"}


def at_least(name: str) -> bool:
    """Objectives that bound from below (``min_stream_completion``): missed when measured < target."""
    return base_name(name).startswith("min_")


def objective_line(objective: ObjectiveResult) -> str:
    """``rto_s 6.20 s > 3.00 s`` or ``p95_ms not measurable: ...``, with the note when it helps."""
    name = objective.name
    measured = objective.measured
    note = objective.note
    target_text = quantity(name, objective.target)
    if measured is None:
        return f"{name} (target {target_text}): {note or 'not measured'}"
    sign = "<=" if objective.passed else ">"
    if at_least(name):
        sign = ">=" if objective.passed else "<"
    line = f"{name} {quantity(name, measured)} {sign} {target_text}"
    if name in _COMPARISON:
        line = f"{name} {quantity(name, measured)} (target {target_text})"
    return f"{line} ({note})" if note and not objective.passed else line


def undecided_lines(results: RunResults) -> list[str]:
    """One line per cause of every objective the measurement's own trouble left undecided."""
    return [line for o in results.objectives for line in (o.undecided or [])]


def reasons(results: RunResults) -> list[str]:
    """Every reason the verdict is not ``passed``: missed (decided) objectives, the causes that
    left objectives undecided (first, when the run is inconclusive), then the abort reason."""
    missed = [objective_line(o) for o in results.objectives if not o.passed and not o.undecided]
    undecided = undecided_lines(results)
    if results.verdict == "inconclusive":
        lines = undecided + missed
    else:
        lines = missed + [f"undecided: {line}" for line in undecided]
    if results.abort_reason:
        lines.append(f"aborted: {results.abort_reason}")
    return lines


def verdict_line(results: RunResults) -> str:
    """``PASSED``, or ``FAILED: <first reason>`` (``+N more`` when there are several), then when
    users were affected (:func:`affected_text`) when the results say."""
    verdict = str(results.verdict).upper()
    found = reasons(results)
    affected = affected_text(results)
    tail = f" — {affected}" if affected else ""
    if not found:
        return verdict + tail
    more = f" (+{len(found) - 1} more below)" if len(found) > 1 else ""
    return f"{verdict}: {found[0]}{more}{tail}"


def affected_text(results: RunResults) -> str | None:
    """``users affected 0.25 s in all: first at +13.76 s, last at +14.01 s (2 incidents)``, from
    the first onset (results.json ``impact.incidents``); None for results written before it."""
    summary = results.impact.incidents if results.impact is not None else None
    if summary is None:
        return None
    if summary.incidents == 0:
        return "no users affected (no incident on the evidence rule)"
    count = f"{summary.incidents} incident{'s' if summary.incidents != 1 else ''}"
    at_least = "at least " if summary.open else ""
    last = "still affected at the end of the data" if summary.open else f"last at {_offset(summary.last_affected_s)}"
    return (f"users affected {at_least}{quantity('impact_s', summary.impact_s)} in all: first at "
            f"{_offset(summary.first_affected_s)}, {last} ({count})")


def _offset(value: float | None) -> str:
    return "?" if value is None else f"+{value:.2f} s"


def incident_lines(fault: FaultResult) -> list[str]:
    """One line per incident of a fault: ``incident 2: +13.76 s to +14.01 s (0.25 s), 5 of 7
    requests bad (5 slow), worst 912 ms; cause: ...``; [] for a fault without any."""
    lines = []
    for n, i in enumerate(fault.incidents or [], 1):
        until = _offset(i.end_s) if i.end_s is not None else "still open"
        kinds = ", ".join(f"{count} {word}" for count, word in ((i.failed, "failed"), (i.slow, "slow")) if count)
        worst = quantity("worst_latency_ms", i.worst_latency_ms)
        line = (f"incident {n}: {_offset(i.start_s)} to {until} ({quantity('length_s', i.length_s)}), "
                f"{i.bad} of {i.requests} requests bad ({kinds}), worst {worst}")
        lines.append(line + (f"; cause: {i.cause}" if i.cause else ""))
    return lines


def fault_line(fault: FaultResult) -> str:
    """One fault's figures on their clocks: detection, restoration, last impacted answer, RTO,
    failover, and the stack's own record beside them when there is one."""
    res = f" ± {quantity('resolution_s', fault.resolution_s)}" if fault.resolution_s is not None else ""
    notes = fault.notes or {}
    parts = [f"impact {fault.impact}"]
    if fault.impact == "none" and notes.get("impact"):
        parts[0] += f" ({notes['impact']})"
    if fault.time_to_detect_s is not None:
        parts.append(f"detected {quantity('time_to_detect_s', fault.time_to_detect_s)} after onset")
    if fault.rto_s is not None:
        rto = f"RTO {quantity('rto_s', fault.rto_s)}{res}"
        if fault.service_restored_s is not None:
            rto += (
                f" (new requests good from {quantity('rto_s', fault.service_restored_s)}, "
                f"last impacted answer {quantity('rto_s', fault.last_impacted_answer_s)})"
            )
        parts.append(rto)
    elif fault.impact == "unrecovered":
        parts.append("RTO missing: " + notes.get("rto_s", "not recovered"))
    agreement = fault.agreement
    for key, word, harness, stack in (
        ("failover_s", "failover", fault.failover_s, agreement.failover_s if agreement else None),
        ("failback_s", "failback", fault.failback_s, agreement.failback_s if agreement else None),
    ):
        if harness is not None:
            text = f"{word} {quantity(key, harness)}"
            if stack is not None:
                text += f" (stack's log {quantity(key, stack)})"
            parts.append(text)
    if fault.degraded_s:
        parts.append(f"degraded {quantity('degraded_s', fault.degraded_s)}")
    if fault.capacity_restored_s is not None:
        parts.append(f"capacity restored {quantity('capacity_restored_s', fault.capacity_restored_s)}")
    if fault.replacement_region is not None:
        parts.append(f"replacement region {quantity('replacement_region', fault.replacement_region)}")
    return "; ".join(parts)


def stream_lines(results: RunResults) -> list[str]:
    """One line per phase whose requests streamed: how many, the share completed, the cut ones
    (mid-stream or before the first token) and the TTFT p50/p95 (send clock); [] when nothing
    streamed. ``streams fault: 400 sent, 91.0 % completed; 36 failed mid-stream (cut after a
    median 3 tokens), 0 before the first token; TTFT p50 11 ms, p95 509 ms (probe)``."""
    lines = []
    for name, phase in results.phases.items():
        figures = phase.streaming
        if figures is None:
            continue
        line = (f"streams {name}: {figures.streams:,} sent, "
                f"{quantity('completion_rate', figures.completion_rate)} completed; ")
        if figures.ended_short:
            line += f"{figures.ended_short:,} ended with [DONE] but short, "
        line += f"{figures.failed_mid_stream:,} failed mid-stream"
        if figures.cut_after_tokens_p50 is not None:
            line += f" ({figures.cut:,} cut, after a median {figures.cut_after_tokens_p50:g} tokens)"
        line += (f", {figures.failed_before_first_token:,} before the first token; "
                 f"TTFT p50 {quantity('ttft_p50_ms', figures.ttft_p50_ms)}, "
                 f"p95 {quantity('ttft_p95_ms', figures.ttft_p95_ms)} ({figures.ttft_stream})")
        lines.append(line)
    return lines
