"""The report's charts as inline SVG strings (matplotlib, Agg backend, no pyplot).

Input is the per-bucket timeline DataFrame that measure builds:

- ``t_s``          bucket start, seconds from run start (``phases.baseline.start``)
- ``requests``     requests that started in the bucket
- ``error_rate``   bad / requests in the bucket (0..1; NaN when the bucket is empty)
- ``p95_ms``       95th percentile latency of the bucket (NaN when empty)
- ``tier_<name>``  share of the bucket's good responses served by tier ``<name>`` (0..1);
                   measure's ``tier:<name>`` spelling is accepted too
- ``bad_ratio``    optional: not-good share (failed or over the latency bound), drawn when present

The capacity chart's input is the raw capacity frame (``harness.rundir.frames.read_capacity``:
``ts`` epoch seconds, ``ok``, ``regions`` JSON ``{region: healthy nodes}``) or, without it,
results.json ``capacity.timeline.changes``.

Phase boundaries and fault bands come from the typed results (their instants as epoch seconds). matplotlib is
imported only when a chart is drawn, so importing ``harness`` stays cheap and never touches a
user's pyplot state. Text stays text (``svg.fonttype: none``), nothing is rasterized, and long
runs are downsampled to at most :data:`MAX_POINTS` buckets so the SVG stays small.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.report.formatting import seconds
from harness.report.health import health_spans
from harness.report.limits import objective_target, p95_limit_ms
from harness.results.model import FaultResult, MetricQuery, RunResults

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_POINTS = 720
TIER_PREFIXES = ("tier_", "tier:")
BAD_RATIO = "bad_ratio"

PHASE_COLOURS = {"baseline": "#e8eef7", "fault": "#fcf3e0", "recovery": "#e2f1e4"}
FAULT_COLOUR = "#c0392b"
HEALTH_COLOUR = "#8e44ad"  # a measurement problem: the instrument could not see (report/health.py)
RECOVERY_COLOUR = "#1e8449"
ERROR_COLOUR = "#c0392b"
BAD_COLOUR = "#7d3c98"
LATENCY_COLOUR = "#2c5d8f"
NO_GOOD_COLOUR = "#d5d8dc"
STOP_COLOUR = "#b9770e"
# Tier priority order of the reference stack, coloured so failover reads at a glance:
# hosted (blue) -> gpu (green) -> cpu (orange, degraded).
TIER_COLOURS = {"hosted": "#2e86c1", "gpu": "#28b463", "cpu": "#e67e22"}
OTHER_TIER_COLOURS = ("#8e44ad", "#16a085", "#d4ac0d", "#7f8c8d", "#a93226")
TIER_ORDER = ("hosted", "gpu", "cpu")
# Capacity chart: regions in soft colours (stacked), the pool's total in ink, the target in grey.
REGION_COLOURS = ("#85c1e9", "#82e0aa", "#f8c471", "#c39bd3", "#76d7c4", "#f1948a")
CAPACITY_COLOUR = "#1c2833"
TARGET_COLOUR = "#566573"
RESTORED_COLOUR = "#117a65"
UNANSWERED_COLOUR = "#7f8c8d"
# Event marks on the timeline chart (harness/report/story.py chart_marks).
EVENT_COLOURS = {"runbook trigger fires": "#d35400", "runbook trigger clears": "#a04000",
                 "stack event": "#5b2c6f", "other": "#5d6d7e"}


@dataclass(frozen=True)
class Band:
    """A span on the chart's time axis, seconds from run start."""

    label: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class FaultMarks:
    """One fault on the time axis: onset..revert band and the recovery instant.

    ``recovered_s`` is None when RTO is missing, and also when it is 0 (no observed impact:
    there is no recovery to mark).
    """

    name: str
    onset_s: float
    reverted_s: float | None
    recovered_s: float | None
    rto_s: float | None


def run_start_epoch(results: RunResults) -> float | None:
    """Epoch seconds of t_s = 0: ``phases.baseline.start``, else the earliest phase start."""
    baseline = results.phases.get("baseline")
    if baseline is not None:
        return baseline.start_epoch
    known = [s for s in (p.start_epoch for p in results.phases.values()) if s is not None]
    return min(known) if known else None


def phase_bands(results: RunResults) -> list[Band]:
    """baseline / fault / recovery spans relative to the run start, in time order."""
    origin = run_start_epoch(results)
    if origin is None:
        return []
    bands = []
    for name, phase in results.phases.items():
        start, end = phase.start_epoch, phase.end_epoch
        if start is not None and end is not None:
            bands.append(Band(name, start - origin, end - origin))
    return sorted(bands, key=lambda b: b.start_s)


def applied_faults(results: RunResults) -> Iterator[tuple[FaultResult, float, float]]:
    """(fault, run start epoch, onset relative to run start) for each fault that took effect."""
    origin = run_start_epoch(results)
    if origin is None:
        return
    for fault in results.faults:
        onset_at = fault.onset_epoch
        if onset_at is not None:
            yield fault, origin, onset_at - origin


def fault_marks(results: RunResults) -> list[FaultMarks]:
    """Each applied fault's onset, revert and recovery instant, relative to run start.

    The recovery instant is ``recovered_at`` when measure recorded it, else onset + RTO.
    """
    marks = []
    for fault, origin, onset in applied_faults(results):
        reverted_at = fault.reverted_epoch
        rto = fault.rto_s
        recovered_at = fault.recovered_epoch
        if not rto:
            recovered = None
        elif recovered_at is not None:
            recovered = recovered_at - origin
        else:
            recovered = onset + rto
        reverted = None if reverted_at is None else reverted_at - origin
        marks.append(FaultMarks(fault.name, onset, reverted, recovered, rto))
    return marks


def stop_mark_s(results: RunResults) -> float | None:
    """When the stop condition held (results.json ``stop.held_at``), relative to run start."""
    origin = run_start_epoch(results)
    held_at = results.stop.held_epoch if results.stop is not None else None
    return None if origin is None or held_at is None else held_at - origin


def tier_columns(timeline: pd.DataFrame) -> list[str]:
    """The tier share columns (``tier_<name>`` or measure's ``tier:<name>``), in the reference
    stack's priority order (hosted, gpu, cpu), others after."""
    names = [c for c in timeline.columns if isinstance(c, str) and c.startswith(TIER_PREFIXES)]
    rank = {tier: i for i, tier in enumerate(TIER_ORDER)}
    return sorted(names, key=lambda c: (rank.get(tier_name(c), len(rank)), c))


def tier_name(column: str) -> str:
    """``tier_gpu`` / ``tier:gpu`` -> ``gpu``; the empty tier (no X-Tier header) -> ``(no tier)``."""
    for prefix in TIER_PREFIXES:
        if column.startswith(prefix):
            return column[len(prefix):] or "(no tier)"
    return column


def downsample(timeline: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Merge consecutive buckets so at most ``max_points`` remain.

    ``requests`` is summed; ``error_rate``, ``bad_ratio`` and tier shares are request-weighted
    means (so the merged bucket's ratio is the true ratio over its requests); ``p95_ms`` keeps
    the worst bucket, so a latency spike never disappears by averaging.
    """
    n = len(timeline)
    if n <= max_points:
        return timeline.reset_index(drop=True)
    k = math.ceil(n / max_points)
    frame = timeline.reset_index(drop=True)
    group = frame.index // k
    weights = frame["requests"].fillna(0).astype(float)
    grouped_weights = weights.groupby(group).sum()
    out = pd.DataFrame({"t_s": frame["t_s"].groupby(group).first(), "requests": grouped_weights})

    def weighted(column: str) -> pd.Series:
        values = frame[column].astype(float)
        known = values.notna() & (weights > 0)
        total = (values.where(known, 0.0) * weights).groupby(group).sum()
        denominator = weights.where(known, 0.0).groupby(group).sum()
        return (total / denominator).where(denominator > 0)

    out["error_rate"] = weighted("error_rate")
    if BAD_RATIO in frame.columns:
        out[BAD_RATIO] = weighted(BAD_RATIO)
    out["p95_ms"] = frame["p95_ms"].astype(float).groupby(group).max()
    for column in tier_columns(frame):
        out[column] = weighted(column).fillna(0.0)
    return out.reset_index(drop=True)


def timeline_svg(
    results: RunResults, timeline: pd.DataFrame, event_marks: list[tuple[float, str]] | None = None
) -> str:
    """Error rate (top) and p95 latency (bottom) over time, phases shaded, faults banded.

    Each fault's onset..revert is hatched, its onset a solid line and its recovery instant
    (onset + RTO) a dashed green line labelled with the RTO. The error and latency objectives,
    when numeric, are drawn as dashed thresholds. ``event_marks`` (seconds from run start, label)
    are drawn as dash-dot lines: the report's runbook trigger and the stack's own events.
    """
    frame = downsample(timeline)
    fig = _figure(11.0, 5.6)
    ax_err, ax_lat = fig.subplots(2, 1, sharex=True)
    x = frame["t_s"].astype(float)

    for ax in (ax_err, ax_lat):
        _shade(ax, results, label_phases=ax is ax_err)

    ax_err.plot(*_steps(x, frame["error_rate"].astype(float) * 100), drawstyle="steps-post",
                color=ERROR_COLOUR, linewidth=1.2, label="error rate")
    ax_err.set_ylabel("error rate (%)")
    ax_err.set_ylim(0, 105)
    if BAD_RATIO in frame.columns:
        # What decides health: failed *or* too slow. Drawn only when it differs from errors.
        bad = frame[BAD_RATIO].astype(float)
        if not bad.fillna(0).equals(frame["error_rate"].astype(float).fillna(0)):
            ax_err.plot(*_steps(x, bad * 100), drawstyle="steps-post", color=BAD_COLOUR,
                        linewidth=1.0, label="bad ratio (failed or too slow)")
    error_target = objective_target(results, "max_error_rate")
    if isinstance(error_target, (int, float)):
        ax_err.axhline(error_target * 100, color=ERROR_COLOUR, linestyle=(0, (4, 3)), linewidth=0.9,
                       label=f"error objective ({error_target * 100:g} %)")

    ax_lat.plot(*_steps(x, frame["p95_ms"].astype(float)), drawstyle="steps-post",
                color=LATENCY_COLOUR, linewidth=1.2, label="p95 latency")
    ax_lat.set_ylabel("p95 latency (ms)")
    ax_lat.set_xlabel("seconds from run start")
    ax_lat.set_ylim(bottom=0)
    latency_limit = p95_limit_ms(results)
    if latency_limit is not None:
        ax_lat.axhline(latency_limit, color=LATENCY_COLOUR, linestyle=(0, (4, 3)), linewidth=0.9,
                       label=f"p95 objective ({latency_limit:,.0f} ms)")

    for mark in fault_marks(results):
        if mark.recovered_s is not None:
            ax_err.annotate(
                f"recovered\nRTO {seconds(mark.rto_s or 0.0)}",
                xy=(mark.recovered_s, 0.80), xycoords=("data", "axes fraction"),
                xytext=(4, 0), textcoords="offset points", fontsize=8, color=RECOVERY_COLOUR,
                va="top",
            )
        label = f"{mark.name} (no observed impact)" if mark.rto_s == 0 else mark.name
        ax_err.annotate(
            label, xy=(mark.onset_s, 0.97), xycoords=("data", "axes fraction"),
            xytext=(3, 0), textcoords="offset points", fontsize=8, color=FAULT_COLOUR, va="top",
        )

    labelled: set[str] = set()
    for at_s, label in event_marks or []:
        colour = EVENT_COLOURS.get(label, EVENT_COLOURS["other"])
        for ax in (ax_err, ax_lat):
            ax.axvline(at_s, color=colour, linewidth=1.1, linestyle="-.", zorder=3,
                       label=label if ax is ax_err and label not in labelled else None)
        labelled.add(label)

    stop_s = stop_mark_s(results)
    if stop_s is not None:
        # The moment the drill decided to stop: the rollback follows it (results.json stop.reaction_s).
        for ax in (ax_err, ax_lat):
            ax.axvline(stop_s, color=STOP_COLOUR, linewidth=1.6, linestyle="-.", zorder=4,
                       label="stop condition held" if ax is ax_err else None)
        ax_err.annotate("stop", xy=(stop_s, 0.55), xycoords=("data", "axes fraction"), xytext=(3, 0),
                        textcoords="offset points", fontsize=8, color=STOP_COLOUR, va="top")

    _legend(fig, [ax_err, ax_lat], results)
    ax_err.set_xlim(_x_limits(results, x))
    return _to_svg(fig, "drill-timeline", "Error rate and p95 latency over time")


def tier_share_svg(results: RunResults, timeline: pd.DataFrame) -> str:
    """Share of good responses per tier over time (stacked area), so failover/failback show.

    The grey band on top is the share of the bucket with no good response at all.
    Raises ``ValueError`` when the timeline has no ``tier_<name>`` column.
    """
    columns = tier_columns(timeline)
    if not columns:
        raise ValueError("the timeline has no tier_<name> columns")
    frame = downsample(timeline)
    fig = _figure(11.0, 3.4)
    ax = fig.subplots()
    _shade(ax, results, label_phases=True)
    shares = pd.DataFrame({c: frame[c].astype(float).fillna(0.0).clip(0, 1) * 100 for c in columns})
    shares["no good response"] = (100 - shares.sum(axis=1)).clip(lower=0)
    shares.index = frame["t_s"].astype(float)
    shares = _changed_rows(shares)
    x = pd.Series(shares.index, dtype=float)
    tiers = [tier_name(c) for c in columns]
    colours = dict(zip(tiers + ["no good response"], _tier_colours(tiers) + [NO_GOOD_COLOUR], strict=False))
    shares.columns = tiers + ["no good response"]
    drawn = [c for c in shares.columns if (shares[c] > 0).any()]
    ax.stackplot(x, *[shares[c].to_numpy() for c in drawn], colors=[colours[c] for c in drawn],
                 step="post", linewidth=0)
    from matplotlib.patches import Patch

    # Every tier gets a legend entry, drawn or not: "cpu never served" is a finding too.
    tier_handles = [(Patch(color=colours[tier]), tier) for tier in shares.columns]
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of responses (%)")
    ax.set_xlabel("seconds from run start")
    ax.set_xlim(_x_limits(results, x))
    _legend(fig, [ax], results, tier_handles)
    return _to_svg(fig, "drill-tiers", "Share of good responses per tier over time")


def capacity_steps(results: RunResults, samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Healthy GPU nodes per region as a lossless step trace: index ``t_s`` (seconds from run
    start), one column per region, a row wherever a value changed plus the last row.

    From ``samples`` (``read_capacity``'s frame: ``ts``, ``ok``, ``regions`` JSON) when given:
    a failed poll is a row of NaN (the pool endpoint did not answer, the count is unknown).
    Otherwise from results.json ``capacity.timeline.changes``, held to the end of the last phase.
    Empty when there is nothing to draw.
    """
    origin = run_start_epoch(results)
    if origin is None:
        return pd.DataFrame()
    rows: list[tuple[float, dict[str, int] | None]] = []
    if samples is not None and not samples.empty:
        for ts, ok, regions in zip(samples["ts"], samples["ok"], samples["regions"], strict=False):
            if pd.isna(ts):
                continue
            rows.append((float(ts) - origin, _region_counts(regions) if ok == 1 else None))
    else:
        changes = results.capacity.timeline.changes if results.capacity is not None else []
        for change in changes:
            rows.append((change.ts - origin, dict(change.regions)))
        if rows:
            end_s = max([b.end_s for b in phase_bands(results)] + [rows[-1][0]])
            rows.append((end_s, rows[-1][1]))
    if not any(counts is not None for _, counts in rows):
        return pd.DataFrame()
    # A pool with no node at all reports no region; it still has a (zero) count to draw.
    regions = sorted({region for _, counts in rows for region in counts or {}}) or ["pool"]
    frame = pd.DataFrame(
        [[float("nan")] * len(regions) if counts is None else [float(counts.get(r, 0)) for r in regions]
         for _, counts in rows],
        columns=regions, index=pd.Index([t for t, _ in rows], name="t_s"),
    )
    return _changed_rows(frame.sort_index(kind="stable"))


@dataclass(frozen=True)
class CapacityMark:
    """Where one fault's capacity came back: ``restored_s`` seconds from run start (None when
    not restored or never lost), ``after_s`` = ``capacity_restored_s``, ``region`` the replacement's."""

    name: str
    onset_s: float
    restored_s: float | None
    after_s: float | None
    region: str | None


def capacity_marks(results: RunResults) -> list[CapacityMark]:
    """Each applied fault's capacity restoration instant (onset + ``capacity_restored_s``)."""
    marks = []
    for fault, _, onset in applied_faults(results):
        after_s = fault.capacity_restored_s
        restored = onset + after_s if after_s else None
        region = fault.replacement_region
        marks.append(CapacityMark(fault.name, onset, restored, after_s, region or None))
    return marks


def capacity_svg(results: RunResults, samples: pd.DataFrame | None = None) -> str:
    """Healthy GPU nodes per region over time (stacked steps), the pool's total, the target line,
    phase shading, fault bands and each fault's capacity restoration instant.

    ``samples`` is the raw capacity frame (``harness.rundir.frames.read_capacity``); without
    it the chart is drawn from results.json ``capacity.timeline``. Raises ``ValueError``, saying
    why, when there is nothing to draw (no successful sample, or no phase to place time zero).
    """
    if run_start_epoch(results) is None:
        raise ValueError("no run start to measure time from: the run recorded no phase")
    steps = capacity_steps(results, samples)
    if steps.empty:
        raise ValueError("no successful capacity sample: the pool endpoint never answered")
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    fig = _figure(11.0, 3.6)
    ax = fig.subplots()
    _shade(ax, results, label_phases=True, mark_recovery=False)
    regions = list(steps.columns)
    colours = dict(zip(regions, _cycle(REGION_COLOURS, len(regions)), strict=False))
    x_all = pd.Series(steps.index, dtype=float)
    unanswered = False
    total_label = "healthy GPU nodes (all regions)"
    for segment, end_s in _answered_segments(steps):
        # Each segment holds its last value up to the next row (an unanswered poll or the end).
        x = list(segment.index) + ([end_s] if end_s is not None else [])
        values = pd.concat([segment, segment.iloc[[-1]]]) if end_s is not None else segment
        base = pd.Series(0.0, index=range(len(values)))
        for region in regions:
            top = base + values[region].to_numpy()
            # Translucent, so the phase shading and fault band still read through.
            ax.fill_between(x, base.to_numpy(), top.to_numpy(), step="post", color=colours[region],
                            linewidth=0, alpha=0.6, zorder=2)
            base = top
        ax.plot(x, base.to_numpy(), drawstyle="steps-post", color=CAPACITY_COLOUR, linewidth=1.4, zorder=4,
                label=total_label)
        total_label = "_nolegend_"  # one legend entry however many segments
    for start_s, end_s in _unanswered_spans(steps):
        unanswered = True
        ax.axvspan(start_s, end_s, facecolor="none", edgecolor=UNANSWERED_COLOUR, hatch="xx",
                   linewidth=0, zorder=1)
    target = results.capacity.target if results.capacity is not None else None
    top_value = float(steps.sum(axis=1, min_count=1).max(skipna=True))
    if target is not None:
        ax.axhline(float(target), color=TARGET_COLOUR, linestyle=(0, (5, 3)), linewidth=1.1, zorder=3,
                   label=f"target ({float(target):g} healthy node{'' if float(target) == 1 else 's'})")
        top_value = max(top_value, float(target))
    for mark in capacity_marks(results):
        label = mark.name if mark.after_s != 0 else f"{mark.name} (no capacity loss)"
        ax.annotate(label, xy=(mark.onset_s, 0.97), xycoords=("data", "axes fraction"),
                    xytext=(3, 0), textcoords="offset points", fontsize=8, color=FAULT_COLOUR, va="top")
        if mark.restored_s is None or mark.after_s is None:
            continue
        ax.axvline(mark.restored_s, color=RESTORED_COLOUR, linewidth=1.4, linestyle="-.", zorder=5)
        where = f" · {mark.region}" if mark.region else ""
        ax.annotate(f"capacity restored: t0 + {seconds(mark.after_s)}{where}", xy=(mark.restored_s, 0.88),
                    xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points",
                    fontsize=8, color=RESTORED_COLOUR, va="top")
    # Headroom above the target for the fault and restoration labels, clear of the lines.
    ax.set_ylim(0, top_value * 1.4 + 0.5)
    # Whole nodes only, and no tick in the label headroom above the highest value.
    ax.set_yticks([t for t in MaxNLocator(integer=True).tick_values(0, top_value) if 0 <= t <= top_value])
    ax.set_ylabel("healthy GPU nodes")
    ax.set_xlabel("seconds from run start")
    ax.set_xlim(_x_limits(results, x_all))
    extra: list[tuple[Any, str]] = [(Patch(color=colours[r]), r) for r in regions]
    from matplotlib.lines import Line2D

    if unanswered:
        extra.append((Patch(facecolor="none", edgecolor=UNANSWERED_COLOUR, hatch="xx"),
                      "pool endpoint did not answer"))
    if any(m.restored_s is not None for m in capacity_marks(results)):
        extra.append((Line2D([], [], color=RESTORED_COLOUR, linewidth=1.4, linestyle="-."), "capacity restored"))
    _legend(fig, [ax], results, extra, mark_recovery=False)
    return _to_svg(fig, "drill-capacity", "Healthy GPU nodes per region over time")


def _region_counts(value: Any) -> dict[str, int]:
    """``{"region-a": 1}`` (a dict, or the CSV's JSON text) -> counts; {} when unreadable."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value else {}
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if _is_number(v)}


def _answered_segments(steps: pd.DataFrame) -> list[tuple[pd.DataFrame, float | None]]:
    """Runs of answered rows, each with the time the run ends (the next row's), None at the end."""
    answered = steps.notna().all(axis=1).to_numpy()
    out: list[tuple[pd.DataFrame, float | None]] = []
    start = None
    for i, ok in enumerate(list(answered) + [False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            out.append((steps.iloc[start:i], float(steps.index[i]) if i < len(steps) else None))
            start = None
    return out


def _unanswered_spans(steps: pd.DataFrame) -> list[tuple[float, float]]:
    """(start, end) of each run of failed polls, ending at the next answer (or the last poll)."""
    unanswered = steps.isna().any(axis=1).to_numpy()
    times = [float(t) for t in steps.index]
    spans: list[tuple[float, float]] = []
    i = 0
    while i < len(times):
        if unanswered[i]:
            j = i
            while j < len(times) and unanswered[j]:
                j += 1
            spans.append((times[i], times[j] if j < len(times) else times[-1]))
            i = j
        else:
            i += 1
    return spans


def _cycle(colours: tuple[str, ...], n: int) -> list[str]:
    return [colours[i % len(colours)] for i in range(n)]


def _steps(x: pd.Series, y: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Drop points a steps-post line does not need (same value as the point before)."""
    frame = _changed_rows(pd.DataFrame({"y": y.to_numpy()}, index=x.to_numpy()))
    return pd.Series(frame.index, dtype=float), frame["y"]


def _changed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose values differ from the previous row, plus the last row (a lossless step trace)."""
    if len(frame) < 3:
        return frame
    values = frame.fillna(-1.0e300)  # NaN != NaN would keep every empty bucket
    changed = (values != values.shift()).any(axis=1)
    changed.iloc[-1] = True
    return frame[changed.to_numpy()]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _figure(width_in: float, height_in: float) -> Figure:
    import matplotlib

    # Explicit, and before any figure exists: drill renders headless, never to a display.
    matplotlib.use("Agg")
    # Labels are user text (fault and tier names): "$...$" in them is text, never math to parse.
    matplotlib.rcParams["text.parse_math"] = False
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _shade(ax: Axes, results: RunResults, label_phases: bool, mark_recovery: bool = True) -> None:
    for band in phase_bands(results):
        ax.axvspan(band.start_s, band.end_s, color=PHASE_COLOURS.get(band.label, "#f2f3f4"), zorder=0, linewidth=0)
        if label_phases:
            ax.text((band.start_s + band.end_s) / 2, 1.01, band.label, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=8, color="#566573")
    for mark in fault_marks(results):
        # Never reverted (aborted mid-fault): band to the end of the run.
        end = mark.reverted_s if mark.reverted_s is not None else max(
            [b.end_s for b in phase_bands(results)] + [mark.onset_s])
        ax.axvspan(mark.onset_s, end, facecolor="none", edgecolor=FAULT_COLOUR, hatch="///",
                   alpha=0.25, linewidth=0, zorder=1)
        ax.axvline(mark.onset_s, color=FAULT_COLOUR, linewidth=1.0, zorder=3)
        if mark.reverted_s is not None:
            ax.axvline(mark.reverted_s, color=FAULT_COLOUR, linewidth=1.0, linestyle=":", zorder=3)
        if mark_recovery and mark.recovered_s is not None:
            ax.axvline(mark.recovered_s, color=RECOVERY_COLOUR, linewidth=1.2, linestyle="--", zorder=3)
    for start_s, length_s in health_spans(results):  # the instrument's own trouble (measure/health.py)
        ax.axvspan(start_s, start_s + max(length_s, 0.05), color=HEALTH_COLOUR, alpha=0.35, linewidth=0, zorder=2)
    ax.grid(axis="y", color="#e5e7e9", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _legend(
    fig: Figure,
    axes: list[Axes],
    results: RunResults,
    extra: list[tuple[Any, str]] | None = None,
    mark_recovery: bool = True,
) -> None:
    from matplotlib.lines import Line2D

    handles = [h for h, _ in extra or []]
    labels = [lab for _, lab in extra or []]
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    if health_spans(results):
        from matplotlib.patches import Patch

        handles += [Patch(color=HEALTH_COLOUR, alpha=0.35)]
        labels += ["measurement problem"]
    marks = fault_marks(results)
    if marks:
        handles += [Line2D([], [], color=FAULT_COLOUR, linewidth=1.0)]
        labels += ["fault onset"]
    if any(m.reverted_s is not None for m in marks):
        handles += [Line2D([], [], color=FAULT_COLOUR, linewidth=1.0, linestyle=":")]
        labels += ["fault reverted"]
    if mark_recovery and any(m.recovered_s is not None for m in marks):
        handles += [Line2D([], [], color=RECOVERY_COLOUR, linewidth=1.2, linestyle="--")]
        labels += ["recovery instant"]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 7), fontsize=8, frameon=False)


def _x_limits(results: RunResults, x: pd.Series) -> tuple[float, float]:
    bands = phase_bands(results)
    low = min([0.0] + [b.start_s for b in bands] + ([float(x.min())] if len(x) else []))
    high = max([b.end_s for b in bands] + ([float(x.max())] if len(x) else []) + [low + 1.0])
    return low, high


def _tier_colours(tiers: list[str]) -> list[str]:
    colours, spare = [], iter(OTHER_TIER_COLOURS * (len(tiers) + 1))
    for tier in tiers:
        colours.append(TIER_COLOURS.get(tier) or next(spare))
    return colours


def _to_svg(fig: Figure, salt: str, title: str) -> str:
    """Serialize to an ``<svg>`` element ready to inline in HTML (no XML prolog, fluid width)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({
        "svg.fonttype": "none",  # text stays text: smaller, selectable, searchable
        "svg.hashsalt": salt,  # stable ids, and distinct per chart so two inline SVGs never clash
        "font.family": "sans-serif",
    }):
        # Metadata None drops the RDF block (and its external namespace URLs) from the file.
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    head_end = text.index(">")
    head = text[:head_end]
    head = re.sub(r'\swidth="[^"]*"', ' width="100%"', head, count=1)
    head = re.sub(r'\sheight="[^"]*"', "", head, count=1)
    head += f' role="img" aria-label="{html.escape(title, quote=True)}"'  # a title may hold user text
    # Ids must be unique across the page; matplotlib's per-artist ids (``<artist kind>_<n>``:
    # figure_1, line2d_3, FillBetweenPolyCollection_2, ...) are not salted. Its hashed clip-path
    # and hatch ids carry no ``_<n>`` and are salted by svg.hashsalt already.
    body = re.sub(r'id="([A-Za-z][A-Za-z0-9.]*_\d+)"', lambda m: f'id="{salt}-{m.group(1)}"', text[head_end:])
    return head + body


# --- streamed answers (issue 13): time to first token and completion over time -----------------
TTFT_P50_COLOUR = "#5dade2"
TTFT_P95_COLOUR = "#1a5276"
COMPLETION_COLOUR = "#1e8449"
CUT_COLOUR = "#c0392b"
MID_STREAM_COLOUR = "#7b241c"
STREAM_COLUMNS = ("streams", "streams_completed", "stream_completion", "streams_cut", "streams_failed_mid_stream",
                  "ttft_samples", "ttft_p50_ms", "ttft_p95_ms")
"""The streaming series of measure's timeline (harness/measure/streams.py ``stream_timeline``)."""
_STREAM_COUNTS = ("streams", "streams_completed", "streams_cut", "streams_failed_mid_stream", "ttft_samples")


def has_stream_series(timeline: pd.DataFrame | None) -> bool:
    """True when the timeline carries the streaming series and some bucket holds a stream."""
    return (timeline is not None and not timeline.empty and all(c in timeline.columns for c in STREAM_COLUMNS)
            and float(timeline["streams"].fillna(0).sum()) > 0)


def downsample_streams(timeline: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """The streaming series with consecutive buckets merged so at most ``max_points`` remain:
    counts are summed, the completion share recomputed from the sums (the true share of the merged
    bucket), the TTFT p95 keeps the worst bucket (a spike never disappears by averaging) and the
    p50 is the mean of the buckets' p50 weighted by their TTFT samples."""
    frame = timeline.reset_index(drop=True)
    n = len(frame)
    if n <= max_points:
        return frame
    group = frame.index // math.ceil(n / max_points)
    out = pd.DataFrame({"t_s": frame["t_s"].groupby(group).first()})
    for column in _STREAM_COUNTS:
        out[column] = frame[column].fillna(0).groupby(group).sum()
    out["stream_completion"] = (out["streams_completed"] / out["streams"]).where(out["streams"] > 0)
    out["ttft_p95_ms"] = frame["ttft_p95_ms"].astype(float).groupby(group).max()
    weights = frame["ttft_samples"].fillna(0).astype(float)
    known = frame["ttft_p50_ms"].notna() & (weights > 0)
    total = (frame["ttft_p50_ms"].where(known, 0.0) * weights).groupby(group).sum()
    denominator = weights.where(known, 0.0).groupby(group).sum()
    out["ttft_p50_ms"] = (total / denominator).where(denominator > 0)
    return out.reset_index(drop=True)


def ttft_svg(results: RunResults, timeline: pd.DataFrame, limit_ms: float | None = None) -> str:
    """Time to first token over time: the p50 and p95 of each bucket's streams (the probe's,
    send clock: first token's arrival - send), phases shaded, faults banded as on the timeline,
    the ``ttft_p95_ms`` objective as a dashed threshold when it resolves to ms (``limit_ms``).
    A bucket where no stream got a first token is a gap in the lines. Raises ``ValueError`` when
    the timeline has no streaming series."""
    if not has_stream_series(timeline):
        raise ValueError("no streamed request in the run")
    frame = downsample_streams(timeline)
    fig = _figure(11.0, 3.4)
    ax = fig.subplots()
    _shade(ax, results, label_phases=True)
    x = frame["t_s"].astype(float)
    ax.plot(*_steps(x, frame["ttft_p95_ms"].astype(float)), drawstyle="steps-post", color=TTFT_P95_COLOUR,
            linewidth=1.3, label="TTFT p95 per bucket")
    ax.plot(*_steps(x, frame["ttft_p50_ms"].astype(float)), drawstyle="steps-post", color=TTFT_P50_COLOUR,
            linewidth=1.1, label="TTFT p50 per bucket")
    if limit_ms is not None:
        ax.axhline(limit_ms, color=TTFT_P95_COLOUR, linestyle=(0, (4, 3)), linewidth=0.9,
                   label=f"TTFT p95 objective ({limit_ms:,.0f} ms)")
    ax.set_ylabel("time to first token (ms)")
    ax.set_xlabel("seconds from run start (send clock)")
    ax.set_ylim(bottom=0)
    ax.set_xlim(_x_limits(results, x))
    _legend(fig, [ax], results)
    return _to_svg(fig, "drill-ttft", "Time to first token over time (p50 and p95 per bucket)")


def completion_svg(results: RunResults, timeline: pd.DataFrame, min_completion: float | None = None) -> str:
    """Streams completed over time (top: the share of each bucket's streams that got ``[DONE]``)
    and the streams that did not (bottom: cut streams per bucket — a 2xx answer that ended without
    ``[DONE]`` — with those cut after at least one token drawn darker). The ``min_stream_completion``
    objective is a dashed threshold. Raises ``ValueError`` without streaming series."""
    if not has_stream_series(timeline):
        raise ValueError("no streamed request in the run")
    frame = downsample_streams(timeline)
    fig = _figure(11.0, 4.6)
    ax_share, ax_cut = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    for ax in (ax_share, ax_cut):
        _shade(ax, results, label_phases=ax is ax_share)
    x = frame["t_s"].astype(float)
    ax_share.plot(*_steps(x, frame["stream_completion"].astype(float) * 100), drawstyle="steps-post",
                  color=COMPLETION_COLOUR, linewidth=1.3, label="completed")
    if min_completion is not None:
        ax_share.axhline(min_completion * 100, color=COMPLETION_COLOUR, linestyle=(0, (4, 3)), linewidth=0.9,
                         label=f"objective ≥ {min_completion * 100:g} %")
    ax_share.set_ylabel("completed (%)")
    ax_share.set_ylim(0, 105)
    cut = frame["streams_cut"].astype(float)
    mid = frame["streams_failed_mid_stream"].astype(float)
    total_cut = int(cut.sum())
    steps = _changed_rows(pd.DataFrame({"cut": cut.to_numpy(), "mid": mid.to_numpy()}, index=x.to_numpy()))
    ax_cut.fill_between(steps.index, 0, steps["cut"], step="post", color=CUT_COLOUR, alpha=0.45, linewidth=0,
                        label=f"cut: {total_cut:,}")
    ax_cut.fill_between(steps.index, 0, steps["mid"], step="post", color=MID_STREAM_COLOUR, alpha=0.8,
                        linewidth=0, label=f"failed mid-stream: {int(mid.sum()):,}")
    from matplotlib.ticker import MaxNLocator

    ax_cut.yaxis.set_major_locator(MaxNLocator(integer=True))  # whole streams
    ax_cut.set_ylabel("streams per bucket")
    ax_cut.set_xlabel("seconds from run start (send clock)")
    ax_cut.set_ylim(bottom=0, top=max(1.0, float(max(cut.max(), mid.max())) * 1.15))
    ax_share.set_xlim(_x_limits(results, x))
    _legend(fig, [ax_share, ax_cut], results)
    return _to_svg(fig, "drill-completion", "Share of streams completed and cut streams over time")


# --- the stack's own metrics (issue 15): one chart per recorded Prometheus query -------------------
METRIC_COLOURS = ("#2e86c1", "#28b463", "#e67e22", "#8e44ad", "#16a085", "#d4ac0d", "#a93226", "#5d6d7e")
MAX_METRIC_SERIES = 8  # more lines than this read as noise: the rest are named in the legend's last entry


def metric_series_label(labels: dict[str, str]) -> str:
    """What tells one series of a query from another: its labels but the metric name and job."""
    shown = {k: v for k, v in labels.items() if k not in ("__name__", "job", "instance")}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or str(labels.get("__name__") or "value")


def metric_svg(results: RunResults, entry: MetricQuery) -> str:
    """One recorded query (results.json ``metrics.series[i]``) over the run, on the same time
    axis as the timeline, with the same phase shading, fault bands and markers. Raises
    ``ValueError``, saying why, when there is nothing to draw."""
    origin = run_start_epoch(results)
    if origin is None:
        raise ValueError("no run start to measure time from: the run recorded no phase")
    if entry.error:
        raise ValueError(entry.error)
    series = [s for s in entry.series if any(_is_number(v) for _, v in s.points)]
    if not series:
        raise ValueError("the query returned no data over the run")
    fig = _figure(11.0, 2.6)
    ax = fig.subplots()
    _shade(ax, results, label_phases=True)
    xs: list[float] = []
    for i, s in enumerate(series[:MAX_METRIC_SERIES]):
        points = [(t - origin, v if v is not None and _is_number(v) else math.nan) for t, v in s.points]
        x = [p[0] for p in points]
        xs += x
        ax.plot(x, [p[1] for p in points], drawstyle="steps-post", linewidth=1.4, zorder=4,
                color=METRIC_COLOURS[i % len(METRIC_COLOURS)], label=metric_series_label(s.labels))
    stop_s = stop_mark_s(results)
    if stop_s is not None:  # the same mark as the timeline's: when the drill decided to stop
        ax.axvline(stop_s, color=STOP_COLOUR, linewidth=1.6, linestyle="-.", zorder=4, label="stop condition held")
    extra: list[tuple[Any, str]] = []
    if len(series) > MAX_METRIC_SERIES:
        from matplotlib.patches import Patch

        extra.append((Patch(color="none"), f"+{len(series) - MAX_METRIC_SERIES} more series not drawn"))
    unit = entry.unit or ""
    ax.set_ylabel(unit or "value")
    ax.set_xlabel("seconds from run start")
    # The phases' span, as on the timeline: the recording runs on a moment past the recovery phase.
    ax.set_xlim(_x_limits(results, pd.Series([], dtype=float)) if phase_bands(results) else
                _x_limits(results, pd.Series(xs, dtype=float)))
    _legend(fig, [ax], results, extra)
    return _to_svg(fig, f"drill-metric-{abs(hash(str(entry.query))) % 10**8}",
                   entry.name or entry.query or "metric")


# --- fault lanes (issue 29): one lane per fault beside the error rate ----------------------------
LANE_COLOUR = "#c0392b"
LANE_OFF_COLOUR = "#f5b7b1"
AFTER_COLOUR = "#5d6d7e"


@dataclass(frozen=True)
class Lane:
    """One fault on the time axis (seconds from run start): its steps as ``(start, end, level)``
    with level the magnitude over the fault's peak (1 for a fault without a schedule, 0 for a
    flap's off period), and what it followed."""

    name: str
    label: str
    onset_s: float
    end_s: float
    steps: list[tuple[float, float, float]]
    values: list[float]
    after: str | None
    after_from_s: float | None
    after_fault: str | None = None


def fault_lanes(results: RunResults) -> list[Lane]:
    """Each applied fault's lane, in results order. A fault never reverted (aborted mid-fault)
    runs to the end of the last phase."""
    origin = run_start_epoch(results)
    if origin is None:
        return []
    last = max([b.end_s for b in phase_bands(results)] + [0.0])
    onsets = {f.name: (f.onset_epoch, f.reverted_epoch) for f in results.faults}
    lanes: list[Lane] = []
    for fault, _, onset in applied_faults(results):
        reverted = fault.reverted_epoch
        end = reverted - origin if reverted is not None else max(last, onset)
        timeline = fault.shape.timeline if fault.shape is not None and fault.shape.timeline else None
        steps: list[tuple[float, float, float]] = []
        values: list[float] = []
        if timeline:
            peak = max(v for _, v in timeline) or 1.0
            starts = [at - origin for at, _ in timeline]
            for i, (start, (_, value)) in enumerate(zip(starts, timeline, strict=True)):
                stop = starts[i + 1] if i + 1 < len(starts) else end
                steps.append((start, max(stop, start), value / peak))
                values.append(value)
        else:
            steps.append((onset, end, 1.0))
        after_text, after_from = None, None
        if fault.after is not None:
            lead_onset, lead_revert = onsets.get(fault.after.fault, (None, None))
            instant = lead_onset if fault.after.when == "onset" else lead_revert
            plus = f" + {seconds(fault.after.offset_s)}" if fault.after.offset_s else ""
            after_text = f"after {fault.after.fault} {fault.after.when}{plus}"
            after_from = None if instant is None else instant - origin
        label = fault.name if fault.branch in (None, fault.name) else f"{fault.name}\n(branch {fault.branch})"
        lanes.append(Lane(fault.name, label, onset, end, steps, values, after_text, after_from,
                          fault.after.fault if fault.after is not None else None))
    return lanes


# The repair chain's links in the order a node loss runs them (harness/faults/kubernetes.py), each
# a row of its chain's lane; refusals sit beside the link they stopped.
CHAIN_LINKS = {
    "node_not_ready": "#c0392b", "cordoned": "#c0392b", "taint_added": "#d35400", "evicted": "#7d3c98",
    "eviction_refused": "#7f8c8d", "create_refused": "#7f8c8d", "unschedulable": "#b9770e",
    "scheduled": "#2e86c1", "ready": "#1e8449",
}
OTHER_LINK_COLOUR = "#5d6d7e"


@dataclass(frozen=True)
class ChainLane:
    """A Kubernetes fault's repair chain on the time axis (seconds from run start): every link an
    instant ``(at_s, link, object)`` as its watch event arrived, the link kinds present in chain
    order (the lane's rows), the reschedule time (onset to the last needed replacement Ready) and
    when its fault was reverted (a quota's replacement comes only after it)."""

    fault: str
    onset_s: float
    links: list[tuple[float, str, str]]
    kinds: list[str]
    reschedule_s: float | None
    reverted_s: float | None = None


def chain_lanes(results: RunResults) -> list[ChainLane]:
    """One lane per repair chain of results.json (``repair_chains``) whose fault took effect,
    from the typed results alone: never re-measured."""
    origin = run_start_epoch(results)
    if origin is None:
        return []
    order = list(CHAIN_LINKS)
    reverted = {f.name: f.reverted_epoch for f in results.faults}
    lanes = []
    for chain in results.repair_chains or []:
        onset = chain.onset_epoch
        if onset is None:
            continue
        links = sorted((at - origin, link.link, link.object)
                       for link in chain.links if (at := link.at_epoch) is not None)
        kinds = sorted({kind for _, kind, _ in links},
                       key=lambda k: (order.index(k) if k in order else len(order), k))
        revert = reverted.get(chain.fault)
        lanes.append(ChainLane(chain.fault, onset - origin, links, kinds, chain.reschedule_s,
                               None if revert is None else revert - origin))
    return lanes


def _draw_chain(ax: Axes, results: RunResults, lane: ChainLane) -> None:
    """Rows top to bottom in chain order; each link a marker at its instant, the first of each
    kind labelled with its seconds after the onset; a bar from the onset to the reschedule."""
    for band in phase_bands(results):
        ax.axvspan(band.start_s, band.end_s, color=PHASE_COLOURS.get(band.label, "#f2f3f4"), zorder=0, linewidth=0)
    ax.axvline(lane.onset_s, color=FAULT_COLOUR, linewidth=1.0, zorder=3)
    if lane.reverted_s is not None:
        ax.axvline(lane.reverted_s, color=FAULT_COLOUR, linewidth=1.0, linestyle=":", zorder=3)
    rows = {kind: len(lane.kinds) - 1 - i for i, kind in enumerate(lane.kinds)}
    labelled: set[str] = set()
    for at_s, kind, _ in lane.links:
        colour = CHAIN_LINKS.get(kind, OTHER_LINK_COLOUR)
        ax.plot([at_s], [rows[kind]], marker="o", markersize=4.5, color=colour, linestyle="none", zorder=4)
        if kind not in labelled:
            labelled.add(kind)
            ax.annotate(f"+{at_s - lane.onset_s:.2f} s", xy=(at_s, rows[kind]), xytext=(4, 0),
                        textcoords="offset points", fontsize=6.5, color=colour, va="center")
    if lane.reschedule_s is not None:
        done = lane.onset_s + lane.reschedule_s
        ax.plot([lane.onset_s, done], [-0.75, -0.75], color=CHAIN_LINKS["ready"], linewidth=2.0, zorder=3,
                solid_capstyle="butt")
        ax.annotate(f"rescheduled in {seconds(lane.reschedule_s)}", xy=(done, -0.75), xytext=(4, 0),
                    textcoords="offset points", fontsize=7, color=CHAIN_LINKS["ready"], va="center")
    ax.set_ylim(-1.2, len(lane.kinds) - 0.4)
    ax.set_yticks(list(rows.values()), [kind.replace("_", " ") for kind in rows], fontsize=7)
    ax.yaxis.tick_right()
    ax.tick_params(axis="y", length=0)
    ax.set_ylabel(f"repair chain\n{lane.fault}", rotation=0, ha="right", va="center", fontsize=8)
    ax.grid(axis="y", color="#e5e7e9", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def fault_lanes_svg(results: RunResults, timeline: pd.DataFrame) -> str:
    """The error rate (top) over one lane per fault: each fault's on interval (a flap's off periods
    pale), a schedule's steps as bars whose height is the magnitude over its peak, and an arrow
    from the instant a fault followed (``after``) to its onset; then one lane per Kubernetes
    repair chain (:func:`chain_lanes`). Raises ValueError with nothing to draw."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import ConnectionPatch, Patch

    lanes = fault_lanes(results)
    if not lanes:
        raise ValueError("no fault took effect")
    chains = chain_lanes(results)
    frame = downsample(timeline)
    x = frame["t_s"].astype(float)
    chain_heights = [max(1.0, 0.32 * (len(c.kinds) + 1)) for c in chains]
    fig = _figure(11.0, 2.2 + 0.75 * len(lanes) + 0.75 * sum(chain_heights))
    axes = fig.subplots(1 + len(lanes) + len(chains), 1, sharex=True,
                        gridspec_kw={"height_ratios": [2.2] + [1.0] * len(lanes) + chain_heights})
    ax_err, lane_axes = axes[0], list(axes[1:1 + len(lanes)])
    for chain, ax in zip(chains, axes[1 + len(lanes):], strict=True):
        _draw_chain(ax, results, chain)
    _shade(ax_err, results, label_phases=True, mark_recovery=False)
    ax_err.plot(*_steps(x, frame["error_rate"].astype(float) * 100), drawstyle="steps-post",
                color=ERROR_COLOUR, linewidth=1.2, label="error rate")
    ax_err.set_ylabel("error rate (%)")
    ax_err.set_ylim(0, 105)
    by_name: dict[str, Axes] = {}
    for lane, ax in zip(lanes, lane_axes, strict=True):
        by_name[lane.name] = ax
        for band in phase_bands(results):
            ax.axvspan(band.start_s, band.end_s, color=PHASE_COLOURS.get(band.label, "#f2f3f4"), zorder=0, linewidth=0)
        for start, stop, level in lane.steps:
            if level <= 0:
                ax.broken_barh([(start, stop - start)], (0.0, 0.12), facecolors=LANE_OFF_COLOUR, zorder=2)
            else:
                ax.broken_barh([(start, stop - start)], (0.0, level), facecolors=LANE_COLOUR, alpha=0.75, zorder=2)
        if lane.values:
            ax.text(lane.end_s, 0.5, f" {len(lane.values)} steps, {lane.values[0]:g} first, peak {max(lane.values):g}",
                    fontsize=7, color="#566573", va="center", ha="left", clip_on=False)
        ax.axvline(lane.onset_s, color=FAULT_COLOUR, linewidth=1.0, zorder=3)
        ax.set_ylim(0, 1.05)
        ax.set_yticks([])
        ax.set_ylabel(lane.label, rotation=0, ha="right", va="center", fontsize=8)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    for lane in lanes:
        if lane.after is None or lane.after_from_s is None:
            continue
        source_ax = by_name.get(lane.after_fault or "")
        target_ax = by_name[lane.name]
        if source_ax is not None:
            fig.add_artist(ConnectionPatch(
                xyA=(lane.after_from_s, 0.5), coordsA=source_ax.transData,
                xyB=(lane.onset_s, 0.5), coordsB=target_ax.transData,
                arrowstyle="->", color=AFTER_COLOUR, linewidth=1.1, linestyle="--", zorder=5))
        target_ax.annotate(lane.after, xy=(lane.onset_s, 1.0), xycoords=("data", "axes fraction"),
                           xytext=(3, 0), textcoords="offset points", fontsize=7, color=AFTER_COLOUR, va="top")
    axes[-1].set_xlabel("seconds from run start")
    extra: list[tuple[Any, str]] = [(Patch(color=LANE_COLOUR, alpha=0.75), "fault in force (height: magnitude / peak)")]
    if chains:
        extra.append((Line2D([], [], marker="o", markersize=4.5, color=OTHER_LINK_COLOUR, linestyle="none"),
                      "repair-chain link (its watch event's arrival)"))
    if any(level <= 0 for lane in lanes for _, _, level in lane.steps):
        extra.append((Patch(color=LANE_OFF_COLOUR), "flap off"))
    if any(lane.after is not None for lane in lanes):
        extra.append((Line2D([], [], color=AFTER_COLOUR, linestyle="--"), "started after"))
    _legend(fig, [ax_err], results, extra=extra, mark_recovery=False)
    low, high = _x_limits(results, x)
    # A chain's last links may come after the recovery phase (a quota's replacement waits for the
    # ReplicaSet's backoff once the quota is gone): the axis reaches them, with room for a label.
    late = [at_s for chain in chains for at_s, _, _ in chain.links if at_s > high]
    ax_err.set_xlim(low, max(late) + 0.12 * (max(late) - low) if late else high)
    return _to_svg(fig, "drill-lanes", "Fault lanes and repair chains beside the error rate" if chains
                   else "Fault lanes beside the error rate")
