"""The story of a run in plain words, for a drill lead who was not watching.

Built from what a run directory keeps, read defensively (a figure a results.json lacks is left
out of the story, never guessed):

- :func:`summary_sentences`  what broke, when, who noticed, how long users felt it, against which target
- :func:`impact_counts`      requests failed, requests slow, and the time users were affected (samples)
- :func:`runbook_view`       when the runbook trigger (error rate > 10 % or p95 > 2x baseline over a
                             window, or the scenario's ``runbook:``) would have fired and cleared
- :func:`event_timeline`     the journal's actions (applied, reverted, aborted), the harness's
                             measured instants and the stack's own events, merged in time order

Times in sentences are offsets from the run start (``phases.baseline.start``) so they match the
charts' time axis; the timeline also gives each instant in UTC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.report.formatting import MISSING, is_missing, milliseconds, parse_utc, percent, seconds, utc_text
from harness.rundir import STACK_EVENTS_FILE, journal_path, scenario_path

# The playbook's trigger (DESIGN.md): route away when error rate > 10 % or p95 > 2x baseline.
DEFAULT_RUNBOOK = {"error_rate": 0.10, "p95": "2x baseline", "window_s": 10.0}
MAX_RUNBOOK_STEPS = 5000  # evaluation instants; a long run is stepped more coarsely
MAX_TIMELINE_EVENTS = 400
STACK_EVENT_FILES = ("stack-events.jsonl", STACK_EVENTS_FILE, "gateway-events.json")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or is_missing(value):
        return None
    return float(value)


def run_origin(results: dict[str, Any]) -> float | None:
    """Epoch seconds of the run's t = 0 (the charts' origin)."""
    from harness.report.charts import run_start_epoch

    return run_start_epoch(results)


def offset_text(epoch: float | None, origin: float | None) -> str:
    if epoch is None or origin is None:
        return MISSING
    delta = epoch - origin
    return f"+{seconds(delta)}" if delta >= 0 else f"−{seconds(-delta)}"


# --- impact -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Impact:
    """Requests sent or answered at or after the first onset, and how many of them users felt."""

    requests: int
    failed: int
    slow: int
    latency_bound_ms: float | None
    affected_s: float
    bucket_s: float
    unhealthy_above: float

    def rows(self) -> list[tuple[str, str]]:
        bound = f" (ok but over {milliseconds(self.latency_bound_ms)})" if self.latency_bound_ms else ""

        def share(n: int) -> str:
            return f"{n:,}" + (f" ({percent(n / self.requests)})" if self.requests else "")

        return [
            ("requests after onset", f"{self.requests:,}"),
            ("requests failed", share(self.failed)),
            (f"requests slow{bound}", share(self.slow)),
            (f"time users were affected ({seconds(self.bucket_s)} buckets with more than "
             f"{percent(self.unhealthy_above)} bad requests)", seconds(self.affected_s)),
        ]


def first_onset(results: dict[str, Any]) -> float | None:
    onsets = [parse_utc(f.get("onset_at")) for f in results.get("faults") or []]
    known = [o for o in onsets if o is not None]
    return min(known) if known else None


def impact_counts(results: dict[str, Any], samples: pd.DataFrame | None) -> Impact | None:
    """Impact from the raw samples: a request belongs to the incident when it ended at or after
    the first onset (in-flight requests included, as in docs/method.md). Failed = not ok; slow =
    ok but over ``measurement.latency_bound_ms`` (the bound a good request must meet). Affected
    time counts the buckets (by send time) whose bad share exceeds the error objective (any bad
    request without one), like the RTO method's unhealthy buckets."""
    onset = first_onset(results)
    if onset is None or samples is None or samples.empty:
        return None
    measurement = results.get("measurement") or {}
    bound = _number(measurement.get("latency_bound_ms"))
    bucket_s = _number(measurement.get("bucket_s")) or 0.25
    from harness.report.results import objective_target

    threshold = _number(objective_target(results, "max_error_rate")) or 0.0
    after = samples[samples["end"].to_numpy(dtype=float) >= onset]
    ok = after["ok"].to_numpy(dtype=int) == 1
    latency = after["latency_ms"].to_numpy(dtype=float)
    slow = ok & (latency > bound) if bound is not None else np.zeros(len(after), dtype=bool)
    bad = ~ok | slow
    bucket = np.floor((np.maximum(after["start"].to_numpy(dtype=float), onset) - onset) / bucket_s).astype(np.int64)
    affected = 0
    if len(after):
        counts = np.bincount(bucket)
        bad_counts = np.bincount(bucket, weights=bad.astype(float), minlength=len(counts))
        with np.errstate(invalid="ignore", divide="ignore"):
            affected = int(((counts > 0) & (bad_counts / np.maximum(counts, 1) > threshold)).sum())
    return Impact(
        requests=int(len(after)),
        failed=int((~ok).sum()),
        slow=int(slow.sum()),
        latency_bound_ms=bound,
        affected_s=affected * bucket_s,
        bucket_s=bucket_s,
        unhealthy_above=threshold,
    )


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


def runbook_spec(run_dir: Path | None) -> dict[str, Any]:
    """The scenario's ``runbook:`` (from the run's scenario.yaml), else the default trigger."""
    spec = dict(DEFAULT_RUNBOOK)
    if run_dir is None:
        return spec
    import yaml

    path = scenario_path(run_dir)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return spec  # a missing or damaged copy must not cost the whole report
    declared = data.get("runbook") if isinstance(data, dict) else None
    if isinstance(declared, dict):
        from harness.scenario.units import parse_duration

        if _number(declared.get("error_rate")) is not None:
            spec["error_rate"] = float(declared["error_rate"])
        if declared.get("p95") is not None:
            spec["p95"] = declared["p95"]
        if declared.get("window") is not None:
            try:
                spec["window_s"] = float(parse_duration(declared["window"]))
            except (ValueError, TypeError):
                pass
    return spec


def _p95_limit(p95: Any, results: dict[str, Any]) -> tuple[float | None, str]:
    """(limit ms, words) for a runbook p95: a number of ms or ``Nx baseline``."""
    if _number(p95) is not None:
        return float(p95), f"p95 > {milliseconds(float(p95))}"
    text = str(p95)
    from harness.scenario.units import parse_latency_bound

    try:
        absolute, factor = parse_latency_bound(text)
    except (ValueError, TypeError):
        return None, f"p95 > {text} (not understood)"
    if absolute is not None:
        return float(absolute), f"p95 > {milliseconds(float(absolute))}"
    baseline = _number((results.get("measurement") or {}).get("baseline_p95_ms"))
    if baseline is None:
        baseline = _number(((results.get("phases") or {}).get("baseline") or {}).get("p95_ms"))
    if baseline is None or factor is None:
        return None, f"p95 > {text} (baseline p95 unknown)"
    return factor * baseline, f"p95 > {factor:g}x baseline ({milliseconds(factor * baseline)})"


def runbook_view(
    results: dict[str, Any], samples: pd.DataFrame | None, spec: dict[str, Any] | None = None
) -> RunbookView:
    """Walk the run in steps of the bucket width from the first onset; at each instant t the
    trigger looks at the requests *answered* in (t - window, t] (what a dashboard sees) and fires
    when their error rate exceeds the rule's or their p95 exceeds its limit. Cleared is the first
    later instant where it no longer holds."""
    spec = spec or dict(DEFAULT_RUNBOOK)
    error_rate = float(spec.get("error_rate", 0.10))
    window_s = float(spec.get("window_s", 10.0))
    limit_ms, p95_words = _p95_limit(spec.get("p95", "2x baseline"), results)
    rule = f"error rate > {percent(error_rate)} or {p95_words}, over the last {seconds(window_s)}"
    compare = _stack_instants(results)
    onset = first_onset(results)
    if onset is None:
        return RunbookView(rule, reason="no fault took effect", compare=compare)
    if samples is None or samples.empty:
        return RunbookView(rule, reason="no request samples", compare=compare)
    stream = "all requests"
    if "source" in samples.columns and (samples["source"] == "probe").any():
        # The constant-rate stream: closed-loop users slow down with the stack (coordinated
        # omission), so their share of a window shrinks exactly when it matters.
        samples = samples[samples["source"] == "probe"]
        stream = "the constant-rate probe stream"
    rule += f", on {stream}"
    ends = samples["end"].to_numpy(dtype=float)
    order = np.argsort(ends, kind="stable")
    ends = ends[order]
    bad = (samples["ok"].to_numpy(dtype=int)[order] != 1).astype(np.int64)
    latency = samples["latency_ms"].to_numpy(dtype=float)[order]
    bad_before = np.concatenate([[0], np.cumsum(bad)])
    step_s = float((results.get("measurement") or {}).get("bucket_s") or 0.25)
    stop = float(ends[-1])
    phase_ends = [parse_utc(p.get("end")) for p in (results.get("phases") or {}).values() if isinstance(p, dict)]
    known_ends = [e for e in phase_ends if e is not None]
    if known_ends:
        stop = min(stop, max(known_ends))  # load winding down after the last phase is not the drill
    if stop <= onset:
        return RunbookView(rule, reason="no answer after the onset", compare=compare)
    step_s = max(step_s, (stop - onset) / MAX_RUNBOOK_STEPS)
    fired_at = cleared_at = None
    because = None
    for t in np.arange(onset + step_s, stop + step_s / 2, step_s):
        lo, hi = np.searchsorted(ends, t - window_s, "right"), np.searchsorted(ends, t, "right")
        n = hi - lo
        if n == 0:
            continue
        rate = (bad_before[hi] - bad_before[lo]) / n
        p95 = float(np.percentile(latency[lo:hi], 95)) if limit_ms is not None else None
        firing = rate > error_rate or (p95 is not None and limit_ms is not None and p95 > limit_ms)
        if fired_at is None and firing:
            fired_at = float(t)
            because = (f"error rate {percent(rate)}" if rate > error_rate
                       else f"p95 {milliseconds(p95 or 0.0)}") + f" over {n:,} answers"
        elif fired_at is not None and not firing:
            cleared_at = float(t)
            break
    return RunbookView(rule, fired_at, because, cleared_at, None, compare)


def _stack_instants(results: dict[str, Any]) -> list[tuple[str, float | None]]:
    """What the stack did by itself, per fault: failover, recovery (epoch seconds)."""
    out: list[tuple[str, float | None]] = []
    for fault in results.get("faults") or []:
        onset = parse_utc(fault.get("onset_at"))
        if onset is None:
            continue
        name = str(fault.get("name") or "fault")
        failover = _number(fault.get("failover_s"))
        out.append((f"{name}: stack moved traffic (failover)", onset + failover if failover is not None else None))
        recovered = parse_utc(fault.get("recovered_at"))
        rto = _number(fault.get("rto_s"))
        if recovered is None and rto:
            recovered = onset + rto
        out.append((f"{name}: service healthy again (RTO)", recovered if rto != 0 else onset))
    return out


def runbook_rows(view: RunbookView, origin: float | None, onset: float | None) -> list[tuple[str, str]]:
    """The runbook view as (label, text) rows for the report and the tabletop sheet."""
    def when(epoch: float | None, none: str) -> str:
        if epoch is None:
            return none
        after = f", {seconds(epoch - onset)} after onset" if onset is not None else ""
        return f"{offset_text(epoch, origin)} ({utc_text(epoch)}{after})"

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
    for label, epoch in view.compare:
        rows.append((label, when(epoch, f"{MISSING} (not observed)")))
    return rows


# --- summary in plain words -------------------------------------------------------------------


def _what_broke(fault: dict[str, Any], params: dict[str, Any]) -> str:
    targets = fault.get("targets") or []
    target = ", ".join(str(t).split(":", 1)[-1] for t in targets) or "its target"
    kind = str(fault.get("type") or "")
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


def _streaming_sentence(results: dict[str, Any]) -> str | None:
    """How the streams of the fault and recovery phases ended, when requests streamed."""
    window = ((results.get("measurement") or {}).get("streaming") or {}).get("completion") or {}
    streams, completed = _number(window.get("streams")), _number(window.get("completed"))
    if not streams or completed is None:
        return None
    mid = int(_number(window.get("failed_mid_stream")) or 0)
    before = int(_number(window.get("failed_before_first_token")) or 0)
    sentence = f"Of {int(streams):,} streamed answers in the fault and recovery phases, {int(completed):,} completed"
    details = []
    if mid:
        median = _number(window.get("cut_after_tokens_p50"))
        tokens = f" (after a median of {median:g} tokens)" if median is not None else ""
        details.append(f"{mid:,} broke mid-stream{tokens}")
    if before:
        details.append(f"{before:,} failed before their first token")
    return sentence + (f"; {' and '.join(details)}." if details else ".")


def _failover_tier(results: dict[str, Any]) -> str | None:
    for objective in results.get("objectives") or []:
        if str(objective.get("name", "")).startswith("failover_to") and isinstance(objective.get("target"), str):
            return str(objective["target"])
    return None


def _objective_sentence(objective: dict[str, Any]) -> str:
    from harness.report.formatting import quantity

    name = str(objective.get("name", "?"))
    label = {"rto_s": "RTO", "max_error_rate": "Error budget", "p95_ms": "p95 latency",
             "failover_to": "Failover", "max_lost_requests": "Lost requests",
             "ttft_p95_ms": "Time-to-first-token p95", "min_stream_completion": "Stream completion",
             }.get(name.split("[")[0], name)
    target = quantity(name, objective.get("target"))
    measured = quantity(name, objective.get("measured"))
    passed = objective.get("passed")
    status = "passed" if passed is True else "FAILED" if passed is False else "not evaluated"
    if objective.get("undecided"):  # the instrument could not see well enough (measurement health)
        status = "UNDECIDED"
    return f"{label} objective {target}: {status} (measured {measured})."


def summary_sentences(
    results: dict[str, Any], impact: Impact | None = None, params: dict[str, dict[str, Any]] | None = None
) -> list[str]:
    """A few sentences a drill lead can read in 30 seconds. ``params`` maps fault name to its
    parameters (from the journal) so "slowed by 2 s" can say by how much."""
    params = params or {}
    origin = run_origin(results)
    sentences: list[str] = []
    tier = _failover_tier(results)
    for fault in results.get("faults") or []:
        name = str(fault.get("name") or "fault")
        onset = parse_utc(fault.get("onset_at"))
        what = _what_broke(fault, params.get(name, {}))
        if onset is None:
            words = fault.get("impact")
            sentences.append(f"Fault {name} was planned but never took effect "
                             f"({words if isinstance(words, str) and words else 'not applied'}).")
            continue
        sentences.append(f"{what[0].upper()}{what[1:]} at {offset_text(onset, origin)} ({name}).")
        ttd = _number(fault.get("time_to_detect_s"))
        failover = _number(fault.get("failover_s"))
        rto = _number(fault.get("rto_s"))
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
        reverted = parse_utc(fault.get("reverted_at"))
        failback = _number(fault.get("failback_s"))
        if reverted is not None:
            # failback_s counts from the onset, like every fault figure.
            back = ""
            if failback is not None and onset is not None:
                after_revert = onset + failback - reverted
                back = f"; traffic moved back {seconds(max(0.0, after_revert))} after the revert"
            sentences.append(f"The fault was removed at {offset_text(reverted, origin)}{back}.")
        restored = _number(fault.get("capacity_restored_s"))
        if restored:
            region = fault.get("replacement_region")
            sentences.append(f"The GPU pool was back at its target {seconds(restored)} after onset"
                             + (f", with a replacement from {region}." if region else "."))
    if impact is not None:
        if impact.failed == 0 and impact.slow == 0:
            sentences.append(f"Of {impact.requests:,} requests after onset, none failed and none were slow.")
        else:
            slow = "none" if impact.slow == 0 else f"{impact.slow:,}"
            failed = "none" if impact.failed == 0 else f"{impact.failed:,}"
            sentences.append(f"Of {impact.requests:,} requests after onset, {failed} failed and {slow} were slow; "
                             f"users were affected for {seconds(impact.affected_s)}.")
    streaming = _streaming_sentence(results)
    if streaming is not None:
        sentences.append(streaming)
    for objective in results.get("objectives") or []:
        sentences.append(_objective_sentence(objective))
    verdict = str(results.get("verdict") or "aborted")
    if verdict == "aborted":
        sentences.append(f"The drill was aborted: {results.get('abort_reason') or 'no reason recorded'}.")
    if verdict == "inconclusive":
        sentences.append("The drill is inconclusive: the instrument could not see well enough to decide "
                         "(see Measurement health).")
    return sentences


# --- event timeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: float
    source: str  # journal | measured | stack | runbook
    text: str


def read_journal_records(run_dir: Path | None) -> list[dict[str, Any]]:
    """The journal's records, or [] when there is none (a report rendered from results alone)."""
    if run_dir is None or not journal_path(run_dir).is_file():
        return []
    from harness.rundir.journal import read_journal

    # Lenient: the figures were computed from the journal already (damage there is reported as
    # FILE:LINE); the story only draws on the intact lines.
    try:
        return [record.document() for record in read_journal(journal_path(run_dir), lenient=True)]
    except (OSError, ValueError):
        return []


def fault_params(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Fault name -> the parameters its ``fault.intent`` recorded."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        if rec.get("event") == "fault.intent" and rec.get("name"):
            params = rec.get("params")
            out[str(rec["name"])] = params if isinstance(params, dict) else {}
    return out


def stack_events(run_dir: Path | None, results: dict[str, Any], records: list[dict[str, Any]]) -> list[Event]:
    """The stack's own record where the run kept it: results ``stack_events``, a journal record
    carrying ``events`` (e.g. the gateway's /admin/events), a stack-events file in the run
    directory, and each fault's ``agreement`` (the stack's instant beside the harness's)."""
    raw: list[Any] = []
    if isinstance(results.get("stack_events"), list):
        raw += results["stack_events"]
    for rec in records:
        if str(rec.get("event", "")).endswith("events") and isinstance(rec.get("events"), list):
            raw += rec["events"]
    if run_dir is not None:
        for name in STACK_EVENT_FILES:
            raw += _read_events_file(Path(run_dir) / name)
    events = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        at = parse_utc(item.get("ts", item.get("at")))
        if at is None:
            continue
        words = [str(item.get(k)) for k in ("event", "tier", "detail") if item.get(k) not in (None, "")]
        events.append(Event(at, "stack", " ".join(words) or "event"))
    logged = [e.at for e in events]
    for fault in results.get("faults") or []:
        agreement = fault.get("agreement")
        onset = parse_utc(fault.get("onset_at"))
        if not isinstance(agreement, dict) or onset is None:
            continue
        stack_failover = _number(agreement.get("failover_s"))
        if stack_failover is None:
            continue
        if any(abs(at - (onset + stack_failover)) < 0.001 for at in logged):
            continue  # the log's own failover line already says it
        delta = _number(agreement.get("failover_delta_s", agreement.get("delta_s")))
        source = agreement.get("source") or "the stack"
        extra = f" (harness differs by {seconds(abs(delta))})" if delta is not None else ""
        events.append(Event(onset + stack_failover, "stack",
                            f"{source}: {fault.get('name')} failover recorded{extra}"))
    return events


def _read_events_file(path: Path) -> list[Any]:
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except (OSError, ValueError):
        return []
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        return list(data["events"])
    return data if isinstance(data, list) else []


def event_timeline(
    results: dict[str, Any], records: list[dict[str, Any]], extra: list[Event] | None = None
) -> list[Event]:
    """Journal actions + measured instants + ``extra`` (stack, runbook), in time order."""
    names = {rec.get("fault_id"): rec.get("name") for rec in records if rec.get("event") == "fault.intent"}
    events: list[Event] = []
    seen_journal_faults = False
    for rec in records:
        event, ts = rec.get("event"), _number(rec.get("ts"))
        if ts is None:
            continue
        name = names.get(rec.get("fault_id")) or rec.get("name") or "fault"
        if event == "phase.start":
            events.append(Event(ts, "journal", f"{rec.get('phase')} phase started"))
        elif event == "fault.applied":
            seen_journal_faults = True
            at = parse_utc(rec.get("onset_at")) or ts
            events.append(Event(at, "journal", f"fault {name} applied (onset; source {rec.get('onset_source')})"))
        elif event == "fault.apply_failed":
            events.append(Event(ts, "journal", f"fault {name} could not be applied: {rec.get('error')}"))
        elif event == "fault.reverted":
            at = parse_utc(rec.get("reverted_at")) or ts
            events.append(Event(at, "journal", f"fault {name} reverted ({rec.get('why') or 'scheduled'})"))
        elif event == "fault.revert_failed":
            events.append(Event(ts, "journal", f"fault {name} revert FAILED: {rec.get('error')}"))
        elif event == "run.aborted":
            events.append(Event(ts, "journal", f"drill aborted: {rec.get('reason')}"))
        elif event == "cleanup.verified":
            events.append(Event(ts, "journal", "cleanup verified: " + ("nothing left applied" if rec.get("ok")
                                                                       else "something may still be applied")))
    for fault in results.get("faults") or []:
        name = str(fault.get("name") or "fault")
        onset = parse_utc(fault.get("onset_at"))
        if onset is None:
            continue
        if not seen_journal_faults:
            events.append(Event(onset, "journal", f"fault {name} applied (onset)"))
            reverted = parse_utc(fault.get("reverted_at"))
            if reverted is not None:
                events.append(Event(reverted, "journal", f"fault {name} reverted"))
        ttd = _number(fault.get("time_to_detect_s"))
        if ttd is not None:
            events.append(Event(onset + ttd, "measured", f"{name}: first client saw the impact"))
        failover = _number(fault.get("failover_s"))
        if failover is not None:
            events.append(Event(onset + failover, "measured", f"{name}: good answers moved to another tier (failover)"))
        rto = _number(fault.get("rto_s"))
        recovered = parse_utc(fault.get("recovered_at")) or (onset + rto if rto else None)
        if recovered is not None and rto:
            events.append(Event(recovered, "measured", f"{name}: service healthy again (RTO {seconds(rto)})"))
        failback = _number(fault.get("failback_s"))
        reverted = parse_utc(fault.get("reverted_at"))
        if failback is not None and reverted is not None:
            events.append(Event(reverted + failback, "measured", f"{name}: traffic moved back (failback)"))
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

    def as_context(self) -> dict[str, Any]:
        return {"summary": self.summary, "impact": self.impact, "impact_reason": self.impact_reason,
                "runbook": self.runbook, "timeline": self.timeline, "chart_marks": self.chart_marks}


def build_story(results: dict[str, Any], run_dir: Path | None, samples: pd.DataFrame | None) -> Story:
    """The story of one run from its results, journal, samples and stack events (each optional)."""
    records = read_journal_records(run_dir)
    origin = run_origin(results)
    onset = first_onset(results)
    impact = impact_counts(results, samples)
    view = runbook_view(results, samples, runbook_spec(run_dir))
    stack = stack_events(run_dir, results, records)
    events = event_timeline(results, records, stack + runbook_events(view))
    if impact is None:
        reason = "no fault took effect" if onset is None else "no request samples"
    else:
        reason = None
    marks: list[tuple[float, str]] = []
    if origin is not None:
        if view.fired_at is not None:
            marks.append((view.fired_at - origin, "runbook trigger fires"))
        if view.cleared_at is not None:
            marks.append((view.cleared_at - origin, "runbook trigger clears"))
        marks += [(e.at - origin, "stack event") for e in stack][:50]
    return Story(
        summary=summary_sentences(results, impact, fault_params(records)),
        impact=impact.rows() if impact is not None else None,
        impact_reason=reason,
        runbook=runbook_rows(view, origin, onset),
        timeline=timeline_rows(events, origin),
        chart_marks=marks,
    )


def load_run_samples(run_dir: Path | None) -> tuple[pd.DataFrame | None, str | None]:
    """The run's samples for the story, or None and why (a damaged file must not cost the report)."""
    if run_dir is None:
        return None, "no run directory"
    from harness.errors import DrillError
    from harness.rundir.frames import read_samples

    try:
        return read_samples(Path(run_dir)), None
    except (DrillError, OSError, ValueError, KeyError) as exc:
        return None, f"samples could not be read ({exc})"


__all__ = ["DEFAULT_RUNBOOK", "Event", "Impact", "RunbookView", "Story", "build_story", "event_timeline",
           "impact_counts", "load_run_samples", "runbook_view", "summary_sentences"]

