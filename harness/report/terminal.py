"""What the terminal shows people: the dry-run plan, the ``--repeat`` summary, campaign lines.

Pure functions from scenario models and results dicts to text (rich markup, user text escaped)
or rich tables, so the CLI only prints and tests need no stack. Rules (docs/STYLE in
/work/shared): no Python reprs, a unit on every number, names never cut at 80 columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.load.canaries import read_canaries
from harness.report.formatting import MISSING, parse_utc, plain, quantity, seconds, utc_text
from harness.report.reasons import at_least
from harness.results.model import ObjectiveResult, RunResults
from harness.scenario.model import Objectives
from harness.scenario.timelines import plan_timeline
from harness.verdict import VERDICT_COUNTS

# Below this many runs a bootstrap interval of the median is rough: with 3 values it can only
# return those values, so it says little about where the next run will land.
MIN_RUNS_FOR_CI = 5
VERDICT_STYLE = {"passed": "green", "failed": "red", "aborted": "yellow", "bad_input": "red",
                 "inconclusive": "magenta"}


def value_text(value: Any) -> str:
    """One parameter value for a person: lists comma-joined, mappings as ``k=v``, no reprs."""
    if isinstance(value, dict):
        return ",".join(f"{k}={value_text(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ",".join(value_text(v) for v in value) or "none"
    if value is None:
        return "none"
    return plain(value)


def params_text(params: dict[str, Any]) -> str:
    """``{'latency_ms': 2000, 'mode': 'kill'}`` -> ``latency_ms=2000 mode=kill``."""
    return " ".join(f"{key}={value_text(value)}" for key, value in params.items())


def verdict_word(verdict: Any) -> str:
    word = str(verdict or "aborted")
    return f"[{VERDICT_STYLE.get(word, 'yellow')}]{word.upper()}[/]"


# --- drill run --dry-run --------------------------------------------------------------------
def plan_lines(loaded: Any, runtime: str | None) -> list[str]:
    """The dry-run plan of a loaded scenario (``harness.scenario.LoadedScenario``), one line each."""
    s = loaded.spec
    p = s.phases
    lines = [f"[bold]{escape(s.name)}[/bold] ({escape(str(loaded.path))}) — dry run, nothing will be changed"]
    if s.description:
        lines.append(f"about: {escape(' '.join(s.description.split()))}")
    where = escape(str(s.stack.file or "(external)"))
    if (runtime or s.stack.runtime) == "kubernetes":  # the context and namespace say which cluster
        where = escape(f"context {s.stack.context}, namespace {s.stack.namespace}"
                       + (f", kubeconfig {s.stack.file}" if s.stack.file else ""))
    lines.append(f"stack: {runtime or s.stack.runtime} {where}")
    pace = "" if s.load.pace_hz is None else f" (each at most {s.load.pace_hz:g} requests/s)"
    lines.append(f"load: {s.load.users} users{pace} + probe {s.load.probe_rate_hz:g} Hz against {escape(s.load.host)}")
    if s.load.canaries is not None:  # answer quality (docs/quality.md); the loader checked the file
        canaries = read_canaries(s.load.canaries.file, s.load.canaries.k)
        count = len(canaries.canaries)
        scored = (f"similarity to the primary's answer to {count} prompts" if canaries.kind == "chat"
                  else f"recall@{canaries.k} of {count} queries over {len(canaries.documents)} documents")
        lines.append(f"canaries: {escape(Path(s.load.canaries.file).name)}, every probe answer scored: {scored}")
    lines.append(f"phases: baseline {p.baseline:g} s, fault {p.fault:g} s, recovery {p.recovery:g} s")
    planned = {t.index: t for t in plan_timeline(s.faults, p.fault)[0]}
    for i, f in enumerate(s.faults):
        start = planned[i].start_s if i in planned else f.at
        end = planned[i].end_s if i in planned else start + (f.duration or 0.0)
        params = params_text(f.params())
        lines.append(
            f"  fault {escape(f.name)}: {f.type} on {escape(f.target.describe())}"
            + (f" ({escape(params)})" if params else "")
            + f" from +{start:g} s to +{end:g} s of the fault phase"
            + (f" (after {escape(f.after.describe())})" if f.after is not None else "")
            + (f", branch {escape(f.branch)}" if f.branch is not None else "")
            + (f", {escape(schedule.describe())}" if (schedule := getattr(f, "schedule", None)) is not None else "")
        )
    lines.append(f"objectives: {escape(objectives_text(s.objectives))}")
    if s.stop_when is not None:
        lines.append(f"stop when: {escape(stop_condition_text(s.stop_when))}")
    for check in s.steady_state:  # issue 15: PromQL, before any fault and after recovery
        lines.append(f"steady state: {escape(check.describe())}")
    if s.metrics:
        lines.append(f"metrics recorded: {escape('; '.join(m.title for m in s.metrics))}")
    return lines


def objectives_text(objectives: Objectives) -> str:
    """``rto_s ≤ 10.0 s, max_error_rate ≤ 10 %, p95_ms ≤ 2x baseline, failover_to gpu``: every
    objective set, in the order the model declares them (a new objective shows without a change
    here: ``min_*`` is a floor, any other a ceiling)."""
    parts = []
    for name in type(objectives).model_fields:
        target = getattr(objectives, name)
        if target is None:
            continue
        if name in ("p95_ms", "ttft_p95_ms"):
            parts.append(f"{name} ≤ {p95_target_text(objectives, name)}")
        elif name == "failover_to":
            parts.append(f"failover_to {target}")
        elif name in ("failover_by", "breaker_open_by"):  # the magnitude each reaction must come by
            words = name.removesuffix("_by").replace("_", " ")
            parts += [f"{words} by {param} ≤ {most:g}" for param, most in sorted(target.items())]
        elif name == "min_quality":
            metric, floor = target.metric
            parts.append(f"min_quality {metric} ≥ {floor}")
        else:
            parts.append(f"{name} {'≥' if name.startswith('min_') else '≤'} {quantity(name, target)}")
    return ", ".join(parts) or "none (the drill only measures)"


def p95_target_text(objectives: Objectives, name: str = "p95_ms") -> str:
    """``2x baseline`` or, judged on another window, ``2x baseline after failover`` (``name``:
    ``p95_ms`` or ``ttft_p95_ms``, which share the shape)."""
    ttft = name == "ttft_p95_ms"
    objective = objectives.ttft_p95_ms if ttft else objectives.p95_ms
    bound = getattr(objective, "max", objective)
    during = objectives.ttft_p95_during if ttft else objectives.p95_during
    return quantity(name, bound) + ("" if during == "fault" else f" {during.replace('_', ' ')}")


def stop_condition_text(stop_when: Any) -> str:
    """``error rate ≥ 5 % for 1 s``: the stop condition as the abort line names it (PromQL
    conditions follow, each with its own bound and ``for``)."""
    parts = [] if stop_when.error_rate is None else [
        f"error rate ≥ {quantity('error_rate', stop_when.error_rate)} for {stop_when.for_s:g} s"]
    parts += [f"{q.query} not {q.bounds_text()}" + (f" for {q.for_s:g} s" if q.for_s else "")
              for q in stop_when.queries]
    return " or ".join(parts)


# --- faults with what they hit --------------------------------------------------------------
def targets_text(targets: Iterable[Any]) -> str:
    """The containers / processes / proxies a fault actually acted on, comma-joined."""
    return ", ".join(str(t) for t in targets) or "no target"


# --- drill run --repeat ---------------------------------------------------------------------
def run_verdict_line(index: int, total: int, results: RunResults) -> str:
    """``run 2/3 FAILED: rto_s 12.1 s > target 10.0 s`` — the verdict and the reason together."""
    head = f"run {index}/{total} {verdict_word(results.verdict)}"
    if results.verdict == "aborted":
        return f"{head}: {escape(results.abort_reason or 'no reason recorded')}"
    objectives = results.objectives
    missed = [o for o in objectives if not o.passed]
    if not objectives:
        return f"{head}: no objectives set (measured only)"
    if not missed:
        return f"{head}: all {len(objectives)} objectives met"
    return f"{head}: " + "; ".join(escape(_missed_text(o)) for o in missed)


def _missed_text(objective: ObjectiveResult) -> str:
    name = objective.name
    measured = objective.measured
    target = quantity(name, objective.target)
    if measured is None:
        return f"{name} not measured ({objective.note or 'no data'}), target {target}"
    return f"{name} {quantity(name, measured)} {'<' if at_least(name) else '>'} target {target}"


def repeat_targets(objectives: Any) -> dict[str, str]:
    """Which summary figure each objective bounds: rto_s every fault's RTO, the error rate and
    p95 objectives the fault phase's."""
    targets: dict[str, str] = {}
    if objectives.max_error_rate is not None:
        targets["phases.fault.error_rate"] = "≤ " + quantity("error_rate", objectives.max_error_rate)
    if objectives.p95_ms is not None:
        during = getattr(objectives, "p95_during", "fault")
        phase = "recovery" if during == "recovery" else "fault"  # after_failover lies in the fault phase
        targets[f"phases.{phase}.p95_ms"] = "≤ " + p95_target_text(objectives)
    if objectives.ttft_p95_ms is not None:
        phase = "recovery" if objectives.ttft_p95_during == "recovery" else "fault"
        targets[f"phases.{phase}.ttft_p95_ms"] = "≤ " + p95_target_text(objectives, "ttft_p95_ms")
    if objectives.rto_s is not None:
        targets["*.rto_s"] = "≤ " + quantity("rto_s", objectives.rto_s)
    return targets


# Column minimum widths shared by every group's table, so the groups line up in one column grid
# that fits 80 columns: 70 characters of cells and 3 between columns (capacity_restored_s, the
# longest figure name, is 19 characters).
_REPEAT_COLUMNS = (
    ("figure", 19, "left"), ("median", 8, "right"), ("min–max", 14, "right"),
    ("95 % CI of median", 14, "right"), ("n", 2, "right"), ("target", 13, "left"),
)


def figure_text(name: str, value: Any) -> str:
    """A figure in a narrow column: ``125 s`` rather than the report's ``125 s (2 min 5 s)``."""
    return quantity(name, value).split(" (")[0]


def span_text(name: str, low: Any, high: Any) -> str:
    """``2.50–12.0 s``: two figures of one unit, the unit said once."""
    a, b = figure_text(name, low), figure_text(name, high)
    unit = b.rpartition(" ")[2] if " " in b else ""
    if unit and a.endswith(" " + unit):
        a = a[: -len(unit) - 1]
    return f"{a}–{b}"


def repeat_table(name: str, summary: dict[str, Any], targets: dict[str, str]) -> Group:
    """The ``--repeat`` summary: one small table per fault and per phase under a heading that
    carries the whole fault name (so no name is cut), short figure names, units on every number,
    and the objective's target beside the figure it bounds."""
    verdicts = summary.get("verdicts") or {}
    counts = ", ".join(f"{verdicts.get(v, 0)} {v}" for v in VERDICT_COUNTS)
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for key, d in (summary.get("figures") or {}).items():
        if d.get("n", 0) == 0:
            continue
        kind, _, rest = key.partition(".")
        owner, _, figure = rest.rpartition(".")
        label = f"fault {owner}" if kind == "faults" else f"{owner} phase"
        target = (targets.get(key) or targets.get(f"*.{figure}", "")) if kind == "faults" else targets.get(key, "")
        groups.setdefault(label, []).append((figure, target, d))
    parts: list[Any] = [Text(f"{name}: {len(summary.get('runs') or [])} runs ({counts})", style="bold")]
    for i, (label, rows) in enumerate(groups.items()):
        table = Table(box=box.SIMPLE_HEAD, show_header=i == 0, show_edge=False, padding=(0, 1), pad_edge=False,
                      collapse_padding=True,
                      title=escape(label), title_justify="left", title_style="bold")
        for column, width, justify in _REPEAT_COLUMNS:
            # fold, never ellipsis: a long value wraps inside its cell instead of losing its end
            table.add_column(column, width=width, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for figure, target, d in rows:
            table.add_row(
                figure,
                figure_text(figure, d.get("median")),
                span_text(figure, d.get("min"), d.get("max")),
                span_text(figure, d.get("ci_low"), d.get("ci_high")),
                str(d.get("n")),
                target,
            )
        parts.append(table)
    return Group(*parts)


def small_sample_caution(runs: int) -> str | None:
    """A word of caution under the table when the interval rests on too few runs."""
    if runs >= MIN_RUNS_FOR_CI:
        return None
    return (
        f"[yellow]caution:[/yellow] n = {runs}: a 95 % interval of the median from fewer than "
        f"{MIN_RUNS_FOR_CI} runs is rough (it can only span the values seen); "
        f"use --repeat {MIN_RUNS_FOR_CI} or more before relying on it"
    )


# --- campaigns ------------------------------------------------------------------------------
def campaign_when_line(summary: dict[str, Any]) -> str:
    """``ran 2026-11-30 07:12:03.000 UTC for 4 min 10 s (3 of 4 scenarios)``."""
    started, ended = parse_utc(summary.get("started_at")), parse_utc(summary.get("ended_at"))
    took = seconds(ended - started) if started is not None and ended is not None else MISSING
    runs = summary.get("runs") or []
    return f"ran {utc_text(summary.get('started_at'))}, took {took} ({len(runs)} scenario run(s))"


def campaign_verdict_lines(summary: dict[str, Any]) -> list[str]:
    """One line per scenario: its verdict and why (missed objectives, abort reason, bad input)."""
    lines = []
    runs = summary.get("runs") or []
    for i, r in enumerate(runs, 1):
        scenario = escape(Path(str(r.get("scenario", "?"))).name)
        verdict = r.get("verdict")
        head = f"{i}/{len(runs)} {scenario} {verdict_word(verdict)}"
        if r.get("error"):
            lines.append(f"{head}: {escape(' '.join(str(r['error']).split()))}")
            continue
        # campaign.json keeps each objective's results.json keys: read them with the model.
        objectives = [ObjectiveResult.model_validate(o) for o in r.get("objectives") or []]
        missed = [o for o in objectives if not o.passed and not o.undecided]
        rtos = [f"{escape(str(f.get('name')))} {quantity('rto_s', f.get('rto_s'))}"
                for f in r.get("faults") or [] if "rto_s" in f]
        why = "; ".join([escape(_missed_text(o)) for o in missed]
                        + [f"{escape(o.name)} undecided" for o in objectives if o.undecided])
        rto = f"RTO {', '.join(rtos)}" if rtos else ""
        lines.append(head + (": " if why or rto else "") + "; ".join(x for x in (why, rto) if x))
    return lines
