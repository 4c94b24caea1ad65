"""The verdict and its reasons in words, for the terminal, pytest and the report.

    FAILED: rto_s 6.20 s > 3.00 s (provider-down: never healthy for 5 s after bucket +6.00 s ...)

One line per missed objective, measured against target; an unmeasurable one says why. An
inconclusive run says one line per cause instead:

    INCONCLUSIVE: probe schedule slipped 0.70 s (14 probes sent late) at +12.3 s, inside the
    recovery window that decides rto_s
"""

from __future__ import annotations

from typing import Any

from harness.report.formatting import base_name, quantity

_COMPARISON = {"failover_to": "not reached"}


def at_least(name: str) -> bool:
    """Objectives that bound from below (``min_stream_completion``): missed when measured < target."""
    return base_name(name).startswith("min_")


def objective_line(objective: dict[str, Any]) -> str:
    """``rto_s 6.20 s > 3.00 s`` or ``p95_ms not measurable: ...``, with the note when it helps."""
    name = str(objective.get("name", "?"))
    target = objective.get("target")
    measured = objective.get("measured")
    note = objective.get("note")
    target_text = quantity(name, target)
    if measured is None:
        return f"{name} (target {target_text}): {note or 'not measured'}"
    sign = "<=" if objective.get("passed") else ">"
    if at_least(name):
        sign = ">=" if objective.get("passed") else "<"
    line = f"{name} {quantity(name, measured)} {sign} {target_text}"
    if name in _COMPARISON:
        line = f"{name} {quantity(name, measured)} (target {target_text})"
    return f"{line} ({note})" if note and not objective.get("passed") else line


def undecided_lines(results: dict[str, Any]) -> list[str]:
    """One line per cause of every objective the measurement's own trouble left undecided."""
    return [str(line) for o in results.get("objectives", []) for line in (o.get("undecided") or [])]


def reasons(results: dict[str, Any]) -> list[str]:
    """Every reason the verdict is not ``passed``: missed (decided) objectives, the causes that
    left objectives undecided (first, when the run is inconclusive), then the abort reason."""
    missed = [objective_line(o) for o in results.get("objectives", [])
              if not o.get("passed") and not o.get("undecided")]
    undecided = undecided_lines(results)
    if results.get("verdict") == "inconclusive":
        lines = undecided + missed
    else:
        lines = missed + [f"undecided: {line}" for line in undecided]
    if results.get("abort_reason"):
        lines.append(f"aborted: {results['abort_reason']}")
    return lines


def verdict_line(results: dict[str, Any]) -> str:
    """``PASSED``, or ``FAILED: <first reason>`` (``+N more`` when there are several)."""
    verdict = str(results.get("verdict", "?")).upper()
    found = reasons(results)
    if not found:
        return verdict
    more = f" (+{len(found) - 1} more below)" if len(found) > 1 else ""
    return f"{verdict}: {found[0]}{more}"


def fault_line(fault: dict[str, Any]) -> str:
    """One fault's figures on their clocks: detection, restoration, last impacted answer, RTO,
    failover, and the stack's own record beside them when there is one."""
    resolution = fault.get("resolution_s")
    res = f" ± {quantity('resolution_s', resolution)}" if resolution is not None else ""
    parts = [f"impact {fault.get('impact')}"]
    quiet = (fault.get("notes") or {}).get("impact")
    if fault.get("impact") == "none" and quiet:
        parts[0] += f" ({quiet})"
    if fault.get("time_to_detect_s") is not None:
        parts.append(f"detected {quantity('time_to_detect_s', fault['time_to_detect_s'])} after onset")
    if fault.get("rto_s") is not None:
        rto = f"RTO {quantity('rto_s', fault['rto_s'])}{res}"
        if fault.get("service_restored_s") is not None:
            rto += (
                f" (new requests good from {quantity('rto_s', fault['service_restored_s'])}, "
                f"last impacted answer {quantity('rto_s', fault.get('last_impacted_answer_s'))})"
            )
        parts.append(rto)
    elif fault.get("impact") == "unrecovered":
        parts.append("RTO missing: " + str((fault.get("notes") or {}).get("rto_s", "not recovered")))
    for key, word in (("failover_s", "failover"), ("failback_s", "failback")):
        if fault.get(key) is not None:
            text = f"{word} {quantity(key, fault[key])}"
            stack = (fault.get("agreement") or {}).get(key)
            if stack is not None:
                text += f" (stack's log {quantity(key, stack)})"
            parts.append(text)
    if fault.get("degraded_s"):
        parts.append(f"degraded {quantity('degraded_s', fault['degraded_s'])}")
    for key in ("capacity_restored_s", "replacement_region"):
        if fault.get(key) is not None:
            parts.append(f"{key.replace('_s', '').replace('_', ' ')} {quantity(key, fault[key])}")
    return "; ".join(parts)


def stream_lines(results: dict[str, Any]) -> list[str]:
    """One line per phase whose requests streamed: how many, the share completed, the cut ones
    (mid-stream or before the first token) and the TTFT p50/p95 (send clock); [] when nothing
    streamed. ``streams fault: 400 sent, 91.0 % completed; 36 failed mid-stream (cut after a
    median 3 tokens), 0 before the first token; TTFT p50 11 ms, p95 509 ms (probe)``."""
    lines = []
    for name, phase in (results.get("phases") or {}).items():
        figures = phase.get("streaming") if isinstance(phase, dict) else None
        if not isinstance(figures, dict):
            continue
        line = (f"streams {name}: {figures.get('streams', 0):,} sent, "
                f"{quantity('completion_rate', figures.get('completion_rate'))} completed; "
                f"{figures.get('failed_mid_stream', 0):,} failed mid-stream")
        cut_p50 = figures.get("cut_after_tokens_p50")
        if cut_p50 is not None:
            line += f" ({figures.get('cut', 0):,} cut, after a median {cut_p50:g} tokens)"
        line += (f", {figures.get('failed_before_first_token', 0):,} before the first token; "
                 f"TTFT p50 {quantity('ttft_p50_ms', figures.get('ttft_p50_ms'))}, "
                 f"p95 {quantity('ttft_p95_ms', figures.get('ttft_p95_ms'))} ({figures.get('ttft_stream', 'probe')})")
        lines.append(line)
    return lines
