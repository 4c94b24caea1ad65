"""The story of a run in plain words, for a drill lead who was not watching.

Told from the typed results (every figure was computed once, in harness/measure/, and carried in
results.json), the journal's actions and the stack's own events; a figure the results lack is left
out of the story, never guessed or recomputed here:

- :func:`summary_sentences`  what broke, when, who noticed, how long users felt it, against which target
- :func:`impact_rows`        requests failed, requests slow, and the time users were affected
                             (results ``impact``: the RTO's evidence rule), with why it differs from the RTO
- :func:`runbook_view`       when the runbook trigger (the scenario's ``runbook:``, else error rate > 10 %
                             or p95 > 2x baseline over 10 s) would have fired and cleared (results ``runbook``)
- :func:`event_timeline`     the journal's actions (applied, reverted, aborted), the harness's
                             measured instants and the stack's own events, merged in time order

Times in sentences are offsets from the run start (``phases.baseline.start``) so they match the
charts' time axis; the timeline also gives each instant in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import DrillError
from harness.report.charts import run_start_epoch
from harness.report.formatting import MISSING, is_missing, milliseconds, percent, seconds, utc_text
from harness.results.model import FaultResult, ImpactResult, ObjectiveResult, RunbookResult, RunResults, epoch
from harness.rundir import journal_path, read_stack_events
from harness.rundir.events import (
    CleanupVerified,
    FaultApplied,
    FaultApplyFailed,
    FaultIntent,
    FaultReverted,
    FaultRevertFailed,
    GamedayAbort,
    GamedayHold,
    GamedayInject,
    HumanEntry,
    PhaseStart,
    RunAborted,
    StackEvents,
)
from harness.rundir.journal import Record, read_journal
from harness.scenario.units import parse_latency_bound

MAX_TIMELINE_EVENTS = 400
NOT_RECORDED = "not in this results.json (written before drill measured it): recompute it with `drill report RUN_DIR`"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or is_missing(value):
        return None
    return float(value)


def run_origin(results: RunResults) -> float | None:
    """Epoch seconds of the run's t = 0 (the charts' origin)."""
    return run_start_epoch(results)


def offset_text(epoch_s: float | None, origin: float | None) -> str:
    if epoch_s is None or origin is None:
        return MISSING
    delta = epoch_s - origin
    return f"+{seconds(delta)}" if delta >= 0 else f"−{seconds(-delta)}"


# --- impact -----------------------------------------------------------------------------------


def first_onset(results: RunResults) -> float | None:
    known = [o for o in (f.onset_epoch for f in results.faults) if o is not None]
    return min(known) if known else None


def impact_rows(impact: ImpactResult, latency_bound_ms: float | None) -> list[tuple[str, str]]:
    """The impact table: results ``impact`` as (label, text) rows."""
    bound = f" (ok but over {milliseconds(latency_bound_ms)})" if latency_bound_ms else ""

    def share(n: int) -> str:
        return f"{n:,}" + (f" ({percent(n / impact.requests)})" if impact.requests else "")

    rows = [
        ("requests after onset", f"{impact.requests:,}"),
        ("requests failed", share(impact.failed)),
        (f"requests slow{bound}", share(impact.slow)),
        (f"time users were affected ({impact.unhealthy_buckets:,} of {impact.judged_buckets:,} "
         f"{seconds(impact.bucket_s)} buckets unhealthy on evidence, the RTO's rule)", seconds(impact.affected_s)),
    ]
    summary = impact.incidents
    if summary is not None:  # docs/method.md "Incidents": the incidents' own clocks, summed
        count = f"{summary.incidents} incident{'s' if summary.incidents != 1 else ''}"
        when = "" if summary.first_affected_s is None else (
            f", first at +{summary.first_affected_s:.2f} s, last "
            + ("still open" if summary.open else f"at +{(summary.last_affected_s or 0.0):.2f} s"))
        rows.append((f"incidents ({count}{when}), their lengths summed", seconds(summary.impact_s)))
    return rows


# --- runbook ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunbookView:
    """When the runbook trigger would have fired and cleared, beside what the stack did itself."""

    rule: str
    fired_at: float | None = None
    fired_because: str | None = None
    cleared_at: float | None = None
    reason: str | None = None  # why nothing could be computed
    compare: list[tuple[str, float | None]] = field(default_factory=list)


def _p95_words(p95: float | str, limit_ms: float | None) -> str:
    """A runbook p95 in words: ``p95 > 250 ms`` or ``p95 > 2x baseline (45.9 ms)``."""
    try:
        absolute, factor = parse_latency_bound(p95)
    except ValueError:
        return f"p95 > {p95} (not understood)"
    if absolute is not None:
        return f"p95 > {milliseconds(absolute)}"
    if limit_ms is None or factor is None:
        return f"p95 > {p95} (baseline p95 unknown)"
    return f"p95 > {factor:g}x baseline ({milliseconds(limit_ms)})"


def runbook_rule(runbook: RunbookResult) -> str:
    rule = (f"error rate > {percent(runbook.error_rate)} or {_p95_words(runbook.p95, runbook.p95_limit_ms)}, "
            f"over the last {seconds(runbook.window_s)}")
    return rule + (f", on {runbook.stream}" if runbook.stream else "")


def runbook_view(results: RunResults) -> RunbookView:
    """results ``runbook`` (harness/measure/impact.py walked the trigger over the samples) in words,
    beside the stack's own failover and recovery instants."""
    compare = _stack_instants(results)
    runbook = results.runbook
    if runbook is None:
        return RunbookView("the runbook trigger", reason=NOT_RECORDED, compare=compare)
    rule = runbook_rule(runbook)
    if runbook.reason:
        return RunbookView(rule, reason=runbook.reason, compare=compare)
    because = None
    if runbook.fired_value is not None:
        because = (f"error rate {percent(runbook.fired_value)}" if runbook.fired_by == "error_rate"
                   else f"p95 {milliseconds(runbook.fired_value)}") + f" over {runbook.fired_answers or 0:,} answers"
    return RunbookView(rule, runbook.fired_epoch, because, runbook.cleared_epoch, None, compare)


def _stack_instants(results: RunResults) -> list[tuple[str, float | None]]:
    """What the stack did by itself, per fault: failover, recovery (epoch seconds)."""
    out: list[tuple[str, float | None]] = []
    for fault in results.faults:
        onset = fault.onset_epoch
        if onset is None:
            continue
        moved = onset + fault.failover_s if fault.failover_s is not None else None
        out.append((f"{fault.name}: stack moved traffic (failover)", moved))
        recovered = fault.recovered_epoch
        rto = fault.rto_s
        if recovered is None and rto:
            recovered = onset + rto
        out.append((f"{fault.name}: service healthy again (RTO)", recovered if rto != 0 else onset))
    return out


def runbook_rows(view: RunbookView, origin: float | None, onset: float | None) -> list[tuple[str, str]]:
    """The runbook view as (label, text) rows for the report and the tabletop sheet."""
    def when(at: float | None, none: str) -> str:
        if at is None:
            return none
        after = f", {seconds(at - onset)} after onset" if onset is not None else ""
        return f"{offset_text(at, origin)} ({utc_text(at)}{after})"

    rows = [("trigger", view.rule)]
    if view.reason:
        rows.append(("would have fired", f"{MISSING} ({view.reason})"))
        return rows
    fired = when(view.fired_at, "never: the trigger's condition never held after onset")
    if view.fired_because:
        fired += f" — {view.fired_because}"
    rows.append(("would have fired", fired))
    if view.fired_at is not None:
        rows.append(("would have cleared", when(view.cleared_at, "not before the data ended")))
    for label, at in view.compare:
        rows.append((label, when(at, f"{MISSING} (not observed)")))
    return rows


# --- summary in plain words -------------------------------------------------------------------


def _what_broke(fault: FaultResult, params: dict[str, Any]) -> str:
    target = ", ".join(t.split(":", 1)[-1] for t in fault.targets) or "its target"
    kind = fault.type
    latency = _number(params.get("latency_ms"))
    if kind == "latency" and latency is not None:
        return f"the {target} link was slowed by {seconds(latency / 1000)}"
    return {
        "latency": f"the {target} link was slowed",
        "jitter": f"the {target} link became jittery",
        "bandwidth": f"the {target} link was throttled",
        "blackhole": f"the {target} link went silent (a blackhole)",
        "reset": f"connections to {target} were reset",
        "down": f"the {target} link was cut",
        "endpoint_kill": f"{target} was killed",
        "gpu_node_loss": f"GPU node {target} was lost",
        "region_quota_denial": (f"region {params.get('region')} refused new GPU instances"
                                if params.get("region") else f"{target} refused new GPU instances"),
        "http_error": _http_error_words(target, params),
        "first_token_delay": f"the provider behind route {target} held each first token"
                             + (f" for {seconds(delay / 1000)}" if (delay := _number(params.get("delay_ms"))) else ""),
        "stream_cut": f"the provider behind route {target} cut its streams"
                      + (f" after {int(after)} events" if (after := _number(params.get("after_events"))) is not None
                         else ""),
        "stream_stall": f"the provider behind route {target} stalled its streams mid-answer",
        "malformed": f"the provider behind route {target} sent malformed answers",
    }.get(kind, f"fault {kind or '?'} hit {target}")


def _http_error_words(target: str, params: dict[str, Any]) -> str:
    status = _number(params.get("status"))
    share = _number(params.get("share"))
    retry = _number(params.get("retry_after_s"))
    words = f"the provider behind route {target} answered HTTP {int(status) if status else 'errors'}"
    if share is not None and share < 1:
        words += f" to {percent(share)} of calls"
    return words + (f" with Retry-After {seconds(retry)}" if retry is not None else "")


def _streaming_sentence(results: RunResults) -> str | None:
    """How the streams of the fault and recovery phases ended, when requests streamed."""
    if results.measurement.streaming is None:
        return None
    window = results.measurement.streaming.completion
    streams, completed = window.streams, window.completed
    if not streams:
        return None
    mid = window.failed_mid_stream
    before = window.failed_before_first_token
    sentence = f"Of {streams:,} streamed answers in the fault and recovery phases, {completed:,} completed"
    details = []
    if mid:
        median = window.cut_after_tokens_p50
        tokens = f" (after a median of {median:g} tokens)" if median is not None else ""
        details.append(f"{mid:,} broke mid-stream{tokens}")
    if before:
        details.append(f"{before:,} failed before their first token")
    return sentence + (f"; {' and '.join(details)}." if details else ".")


def _failover_tier(results: RunResults) -> str | None:
    for objective in results.objectives:
        if objective.name.startswith("failover_to") and isinstance(objective.target, str):
            return objective.target
    return None


def _objective_sentence(objective: ObjectiveResult) -> str:
    from harness.report.formatting import quantity

    name = objective.name
    label = {"rto_s": "RTO", "max_error_rate": "Error budget", "p95_ms": "p95 latency",
             "failover_to": "Failover", "max_lost_requests": "Lost requests",
             "ttft_p95_ms": "Time-to-first-token p95", "min_stream_completion": "Stream completion",
             }.get(name.split("[")[0], name)
    target = quantity(name, objective.target)
    measured = quantity(name, objective.measured)
    status = "passed" if objective.passed else "FAILED"
    if objective.undecided:  # the instrument could not see well enough (measurement health)
        status = "UNDECIDED"
    return f"{label} objective {target}: {status} (measured {measured})."


def summary_sentences(results: RunResults, params: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """A few sentences a drill lead can read in 30 seconds. ``params`` maps fault name to its
    parameters (from the journal) so "slowed by 2 s" can say by how much."""
    params = params or {}
    origin = run_origin(results)
    sentences: list[str] = []
    tier = _failover_tier(results)
    for fault in results.faults:
        name = fault.name
        onset = fault.onset_epoch
        what = _what_broke(fault, params.get(name, {}))
        if onset is None:
            sentences.append(f"Fault {name} was planned but never took effect ({fault.impact or 'not applied'}).")
            continue
        sentences.append(f"{what[0].upper()}{what[1:]} at {offset_text(onset, origin)} ({name}).")
        ttd, failover, rto = fault.time_to_detect_s, fault.failover_s, fault.rto_s
        if ttd is not None:
            sentences.append(f"Clients first felt it {seconds(ttd)} after onset.")
        if failover is not None:
            sentences.append(f"The gateway moved traffic to {('the ' + tier + ' tier') if tier else 'another tier'} "
                             f"{seconds(failover)} after onset.")
        if rto == 0:
            sentences.append("No client-visible impact was observed.")
        elif rto is not None:
            sentences.append(f"Service was healthy again {seconds(rto)} after onset (the RTO).")
        else:
            sentences.append("Service was not healthy again before the run ended.")
        reverted = fault.reverted_epoch
        failback = fault.failback_s
        if reverted is not None:
            # failback_s counts from the onset, like every fault figure.
            back = ""
            if failback is not None:
                after_revert = onset + failback - reverted
                back = f"; traffic moved back {seconds(max(0.0, after_revert))} after the revert"
            sentences.append(f"The fault was removed at {offset_text(reverted, origin)}{back}.")
        restored = fault.capacity_restored_s
        if restored:
            region = fault.replacement_region
            sentences.append(f"The GPU pool was back at its target {seconds(restored)} after onset"
                             + (f", with a replacement from {region}." if region else "."))
    impact = results.impact
    if impact is not None:
        if impact.failed == 0 and impact.slow == 0:
            sentences.append(f"Of {impact.requests:,} requests after onset, none failed and none were slow.")
        else:
            slow = "none" if impact.slow == 0 else f"{impact.slow:,}"
            failed = "none" if impact.failed == 0 else f"{impact.failed:,}"
            sentences.append(f"Of {impact.requests:,} requests after onset, {failed} failed and {slow} were slow; "
                             f"users were affected for {seconds(impact.affected_s)}"
                             + (" (see Impact for why that is not the RTO)." if impact.note else "."))
    streaming = _streaming_sentence(results)
    if streaming is not None:
        sentences.append(streaming)
    for objective in results.objectives:
        sentences.append(_objective_sentence(objective))
    if results.verdict == "aborted":
        sentences.append(f"The drill was aborted: {results.abort_reason or 'no reason recorded'}.")
    if results.verdict == "inconclusive":
        sentences.append("The drill is inconclusive: the instrument could not see well enough to decide "
                         "(see Measurement health).")
    return sentences


# --- event timeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: float
    source: str  # journal | measured | stack | runbook
    text: str


def read_journal_records(run_dir: Path | None) -> list[Record]:
    """The journal's records, typed, or [] when there is none (a report rendered from results alone)."""
    if run_dir is None or not journal_path(run_dir).is_file():
        return []
    # Lenient: the figures were computed from the journal already (damage there is reported as
    # FILE:LINE); the story only draws on the intact lines.
    try:
        return list(read_journal(journal_path(run_dir), lenient=True))
    except (OSError, ValueError):
        return []


def fault_params(records: list[Record]) -> dict[str, dict[str, Any]]:
    """Fault name -> the parameters its ``fault.intent`` recorded."""
    return {rec.event.name: dict(rec.event.params) for rec in records
            if isinstance(rec.event, FaultIntent) and rec.event.name}


def _recorded_stack_events(run_dir: Path | None) -> list[dict[str, Any]]:
    """The stack's own event log as harness/rundir reads it ([] when the run kept none or it is
    damaged: the results already named the damage)."""
    if run_dir is None:
        return []
    try:
        return read_stack_events(Path(run_dir)) or []
    except DrillError:
        return []


def stack_events(run_dir: Path | None, results: RunResults, records: list[Record]) -> list[Event]:
    """The stack's own record where the run kept it: a journal record carrying ``events`` (e.g.
    the gateway's /admin/events), the run directory's stack event log (harness/rundir), and each
    fault's ``agreement`` (the stack's instant beside the harness's)."""
    raw: list[Any] = []
    for rec in records:
        if isinstance(rec.event, StackEvents):
            inline = rec.document().get("events")  # journals of older versions carried the log inline
            if isinstance(inline, list):
                raw += inline
    raw += _recorded_stack_events(run_dir)
    events = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        at = _instant(item.get("ts", item.get("at")))
        if at is None:
            continue
        words = [str(item.get(k)) for k in ("event", "tier", "detail") if item.get(k) not in (None, "")]
        events.append(Event(at, "stack", " ".join(words) or "event"))
    logged = [e.at for e in events]
    for fault in results.faults:
        agreement = fault.agreement
        onset = fault.onset_epoch
        if agreement is None or onset is None or agreement.failover_s is None:
            continue
        stack_failover = agreement.failover_s
        if any(abs(at - (onset + stack_failover)) < 0.001 for at in logged):
            continue  # the log's own failover line already says it
        delta = agreement.failover_delta_s
        source = agreement.source or "the stack"
        extra = f" (harness differs by {seconds(abs(delta))})" if delta is not None else ""
        events.append(Event(onset + stack_failover, "stack", f"{source}: {fault.name} failover recorded{extra}"))
    return events


def _instant(value: Any) -> float | None:
    """A journal's or stack log's instant (epoch seconds, or UTC ISO text) -> epoch seconds."""
    if isinstance(value, str):
        try:
            return epoch(value)
        except ValueError:
            return None
    return _number(value)


def event_timeline(results: RunResults, records: list[Record], extra: list[Event] | None = None) -> list[Event]:
    """Journal actions + measured instants + ``extra`` (stack, runbook), in time order."""
    names = {rec.event.fault_id: rec.event.name for rec in records if isinstance(rec.event, FaultIntent)}
    events: list[Event] = []
    seen_journal_faults = False
    for rec in records:
        ts, event = rec.ts, rec.event
        fault_id = event.fault_id if isinstance(event, (FaultApplied, FaultApplyFailed, FaultReverted,
                                                       FaultRevertFailed)) else ""
        name = names.get(fault_id) or "fault"
        match event:
            case PhaseStart():
                events.append(Event(ts, "journal", f"{event.phase} phase started"))
            case FaultApplied():
                seen_journal_faults = True
                events.append(Event(event.onset_at or ts, "journal",
                                    f"fault {name} applied (onset; source {event.onset_source})"))
            case FaultApplyFailed():
                events.append(Event(ts, "journal", f"fault {name} could not be applied: {event.error}"))
            case FaultReverted():
                events.append(Event(event.reverted_at or ts, "journal",
                                    f"fault {name} reverted ({event.why or 'scheduled'})"))
            case FaultRevertFailed():
                events.append(Event(ts, "journal", f"fault {name} revert FAILED: {event.error}"))
            case RunAborted():
                events.append(Event(ts, "journal", f"drill aborted: {event.reason}"))
            case CleanupVerified():
                events.append(Event(ts, "journal", "cleanup verified: " + (
                    "nothing left applied" if event.ok else "something may still be applied")))
            case HumanEntry():  # the people's lane (drill gameday, docs/gameday.md)
                events.append(Event(ts, "human", f"{event.participant} {event.kind}"
                                    + (f": {event.note}" if event.note else "")))
            case GamedayInject():
                events.append(Event(ts, "human", f"{event.by or 'the facilitator'} injected {event.fault}"))
            case GamedayHold():
                events.append(Event(ts, "human", f"{event.by or 'the facilitator'} held the {event.phase} phase "
                                    f"{seconds(event.seconds)} longer"))
            case GamedayAbort():
                events.append(Event(ts, "human", f"{event.by or 'the facilitator'} aborted the drill"))
    for fault in results.faults:
        name = fault.name
        onset = fault.onset_epoch
        if onset is None:
            continue
        reverted = fault.reverted_epoch
        if not seen_journal_faults:
            events.append(Event(onset, "journal", f"fault {name} applied (onset)"))
            if reverted is not None:
                events.append(Event(reverted, "journal", f"fault {name} reverted"))
        if fault.time_to_detect_s is not None:
            events.append(Event(onset + fault.time_to_detect_s, "measured", f"{name}: first client saw the impact"))
        if fault.failover_s is not None:
            events.append(Event(onset + fault.failover_s, "measured",
                                f"{name}: good answers moved to another tier (failover)"))
        rto = fault.rto_s
        recovered = fault.recovered_epoch or (onset + rto if rto else None)
        if recovered is not None and rto:
            events.append(Event(recovered, "measured", f"{name}: service healthy again (RTO {seconds(rto)})"))
        if fault.failback_s is not None and reverted is not None:
            events.append(Event(reverted + fault.failback_s, "measured", f"{name}: traffic moved back (failback)"))
    events += extra or []
    events.sort(key=lambda e: e.at)
    return events[:MAX_TIMELINE_EVENTS]


def timeline_rows(events: list[Event], origin: float | None) -> list[dict[str, str]]:
    return [{"offset": offset_text(e.at, origin), "utc": utc_text(e.at), "source": e.source, "text": e.text}
            for e in events]


def runbook_events(view: RunbookView) -> list[Event]:
    out = []
    if view.fired_at is not None:
        out.append(Event(view.fired_at, "runbook", f"runbook trigger would fire ({view.fired_because})"))
    if view.cleared_at is not None:
        out.append(Event(view.cleared_at, "runbook", "runbook trigger would clear"))
    return out


@dataclass
class Story:
    """Everything the story sections show, formatted (see :func:`build_story`)."""

    summary: list[str]
    impact: list[tuple[str, str]] | None
    impact_reason: str | None
    runbook: list[tuple[str, str]]
    timeline: list[dict[str, str]]
    chart_marks: list[tuple[float, str]] = field(default_factory=list)  # (s from run start, label)
    impact_note: str | None = None  # why the time users were affected differs from the RTO

    def as_context(self) -> dict[str, Any]:
        return {"summary": self.summary, "impact": self.impact, "impact_reason": self.impact_reason,
                "impact_note": self.impact_note, "runbook": self.runbook, "timeline": self.timeline,
                "chart_marks": self.chart_marks}


def impact_reason(results: RunResults) -> str | None:
    """Why there is no impact table: no fault took effect, no samples, or an older results.json."""
    if results.impact is not None:
        return None
    if first_onset(results) is None:
        return "no fault took effect"
    if results.runbook is None:
        return NOT_RECORDED
    return "no request samples"


def build_story(results: RunResults, run_dir: Path | None) -> Story:
    """The story of one run from its results, and its journal and stack events when ``run_dir``
    is given (a report rendered from results alone tells it without them)."""
    records = read_journal_records(run_dir)
    origin = run_origin(results)
    onset = first_onset(results)
    view = runbook_view(results)
    stack = stack_events(run_dir, results, records)
    events = event_timeline(results, records, stack + runbook_events(view))
    marks: list[tuple[float, str]] = []
    if origin is not None:
        if view.fired_at is not None:
            marks.append((view.fired_at - origin, "runbook trigger fires"))
        if view.cleared_at is not None:
            marks.append((view.cleared_at - origin, "runbook trigger clears"))
        marks += [(e.at - origin, "stack event") for e in stack][:50]
    impact = results.impact
    return Story(
        summary=summary_sentences(results, fault_params(records)),
        impact=impact_rows(impact, results.measurement.latency_bound_ms) if impact is not None else None,
        impact_reason=impact_reason(results),
        runbook=runbook_rows(view, origin, onset),
        timeline=timeline_rows(events, origin),
        chart_marks=marks,
        impact_note=impact.note if impact is not None else None,
    )


__all__ = ["Event", "RunbookView", "Story", "build_story", "event_timeline", "impact_rows", "runbook_view",
           "summary_sentences"]
