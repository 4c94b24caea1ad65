"""Trends across runs, from past results.json files alone (``drill history REPORTS_DIR``).

Every ``results.json`` under REPORTS_DIR is one **point** on its scenario's timeline, except the
runs of one ``drill run --repeat`` series (a directory holding ``repeat-summary.json``), which
make one point: the median of the runs, with a bootstrap 95 % confidence interval of the median.

Figures per point (lower is better for all of them):

- ``rto_s``                 the worst fault's RTO (missing when a fault never recovered)
- ``time_to_detect_s``      the worst fault's time to detect
- ``error_rate``            the fault phase's error rate (the CSV gives a single run's Wilson 95 %
                            interval over its requests; regressions use the resolution rule below)
- ``capacity_restored_s``   the worst fault's time to restore the GPU pool, when measured
- ``retry_amplification``   the worst fault's upstream calls per client request (docs/cost.md)
- ``cost_per_1k_requests``  the fault phase's spend per 1,000 client requests, when priced

A point **regresses** on a figure against the previous point of its scenario when it is worse
by more than 20 % *and* by more than the figure's resolution (time figures: the run's
resolution; error rate: 1 percentage point), or worse than the previous point's confidence
interval when that point has one, or when the figure was measured before and is missing now.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.report.formatting import MISSING, is_missing, quantity
from harness.results.model import FaultResult, RunResults
from harness.results.store import atomic_write_text, parse_results
from harness.rundir import RESULTS_FILE

FIGURES = ("rto_s", "time_to_detect_s", "error_rate", "capacity_restored_s", "retry_amplification",
           "cost_per_1k_requests")
LABELS = {"rto_s": "RTO", "time_to_detect_s": "time to detect", "error_rate": "error rate (fault phase)",
          "capacity_restored_s": "capacity restored", "retry_amplification": "retry amplification",
          "cost_per_1k_requests": "cost per 1k requests (fault phase)"}
# Counts, not clocks: a change is a regression beyond these (amplification: 0.05 calls a request).
COUNT_RESOLUTION = {"retry_amplification": 0.05, "cost_per_1k_requests": 0.0}
REGRESSION_RATIO = 0.20
ERROR_RATE_RESOLUTION = 0.01
MAX_RESULTS_FILES = 20000
REPEAT_MARKER = "repeat-summary.json"
TRENDS_NAME = "trends.html"
TEMPLATE = "history.html.j2"


@dataclass
class Point:
    """One run (or one --repeat series) of a scenario."""

    scenario: str
    description: str
    run_id: str
    started: float
    verdict: str
    path: str  # relative to REPORTS_DIR
    runs: int
    values: dict[str, float | None]
    ci: dict[str, tuple[float, float] | None]
    resolution_s: float | None
    regressions: dict[str, str] = field(default_factory=dict)

    @property
    def quarter(self) -> str:
        when = datetime.fromtimestamp(self.started, UTC)
        return f"{when.year}-Q{(when.month - 1) // 3 + 1}"

    @property
    def started_text(self) -> str:
        return datetime.fromtimestamp(self.started, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class History:
    points: list[Point]
    skipped: list[str]

    def by_scenario(self) -> dict[str, list[Point]]:
        out: dict[str, list[Point]] = {}
        for p in sorted(self.points, key=lambda p: (p.scenario, p.started)):
            out.setdefault(p.scenario, []).append(p)
        return out

    @property
    def regressions(self) -> list[tuple[Point, str, str]]:
        return [(p, f, why) for p in sorted(self.points, key=lambda p: p.started) for f, why in p.regressions.items()]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or is_missing(value):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _worst(faults: list[FaultResult], key: str) -> float | None:
    """The largest value of ``key`` over the faults that took effect; None if one of them lacks
    it while others carry it (a fault that never recovered has no RTO: the worst is unknown)."""
    applied = [f for f in faults if f.onset_at is not None and key in f.model_fields_set]
    values = [_number(getattr(f, key)) for f in applied]
    if not applied or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


def run_figures(results: RunResults) -> dict[str, float | None]:
    fault_phase = results.phases.get("fault")
    return {
        "rto_s": _worst(results.faults, "rto_s"),
        "time_to_detect_s": _worst(results.faults, "time_to_detect_s"),
        "error_rate": _number(fault_phase.error_rate) if fault_phase is not None else None,
        "capacity_restored_s": _worst(results.faults, "capacity_restored_s"),
        **_cost_figures(results),
    }


def _cost_figures(results: RunResults) -> dict[str, float | None]:
    cost = results.cost
    worst = cost.worst_amplification if cost is not None else None
    fault_phase = cost.phases.get("fault") if cost is not None else None
    return {
        "retry_amplification": worst.amplification if worst is not None else None,
        "cost_per_1k_requests": fault_phase.cost_per_1k_requests if fault_phase is not None else None,
    }


def _wilson(rate: float, n: float, z: float = 1.96) -> tuple[float, float]:
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _resolution(results: RunResults) -> float | None:
    values = [_number(f.resolution_s) for f in results.faults]
    values.append(_number(results.measurement.resolution_s))
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _single_point(results: RunResults, rel: str) -> Point | None:
    scenario = results.scenario
    started = results.started_epoch
    if started is None:
        return None
    values = run_figures(results)
    ci: dict[str, tuple[float, float] | None] = {f: None for f in FIGURES}
    fault_phase = results.phases.get("fault")
    requests = fault_phase.requests if fault_phase is not None else None
    if values["error_rate"] is not None and requests:
        ci["error_rate"] = _wilson(values["error_rate"], requests)
    return Point(
        scenario=scenario.name or "?", description=scenario.description or "",
        run_id=results.run_id or rel, started=started, verdict=str(results.verdict),
        path=rel, runs=1, values=values, ci=ci, resolution_s=_resolution(results),
    )


def _series_point(members: list[tuple[RunResults, str]], rel: str) -> Point | None:
    from harness.measure.repeats import distribution

    points = [p for p in (_single_point(r, path) for r, path in members) if p is not None]
    if not points:
        return None
    first = min(points, key=lambda p: p.started)
    values: dict[str, float | None] = {}
    ci: dict[str, tuple[float, float] | None] = {}
    for figure in FIGURES:
        d = distribution([p.values[figure] for p in points])
        values[figure] = d["median"] if d["missing"] == 0 else None
        ci[figure] = (d["ci_low"], d["ci_high"]) if d["n"] >= 2 and d["missing"] == 0 else None
    verdicts = {p.verdict for p in points}
    resolutions = [p.resolution_s for p in points if p.resolution_s is not None]
    return Point(
        scenario=first.scenario, description=first.description, run_id=f"{rel} ({len(points)} runs)",
        started=first.started,
        verdict=series_verdict(verdicts),
        path=rel, runs=len(points), values=values, ci=ci, resolution_s=max(resolutions) if resolutions else None,
    )


def series_verdict(verdicts: set[str]) -> str:
    """A ``--repeat`` series as one point: aborted if any run aborted, else failed if any failed,
    else inconclusive if any was (the instrument could not see), else passed."""
    for verdict in ("aborted", "failed", "inconclusive"):
        if verdict in verdicts:
            return verdict
    return "passed"


def passed_text(members: list[Point]) -> str:
    """``3 of 5`` or ``3 of 5 (1 inconclusive)``: inconclusive runs are neither passes nor failures."""
    passed = sum(1 for p in members if p.verdict == "passed")
    inconclusive = sum(1 for p in members if p.verdict == "inconclusive")
    more = f" ({inconclusive} inconclusive)" if inconclusive else ""
    return f"{passed} of {len(members)}{more}"


def collect(reports_dir: Path) -> History:
    """Every point under ``reports_dir``; unreadable results.json files are listed in ``skipped``."""
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        raise ScenarioError(f"{reports_dir}: no such directory; give the folder drill writes runs to (reports/)")
    skipped: list[str] = []
    singles: list[Point] = []
    series: dict[Path, list[tuple[RunResults, str]]] = {}
    files = sorted(reports_dir.rglob(RESULTS_FILE))
    if len(files) > MAX_RESULTS_FILES:
        skipped.append(f"{len(files) - MAX_RESULTS_FILES} results.json files beyond the first {MAX_RESULTS_FILES}")
        files = files[:MAX_RESULTS_FILES]
    for path in files:
        rel = path.parent.relative_to(reports_dir).as_posix()
        try:
            results = parse_results(path.read_text(encoding="utf-8"), path)
        except (OSError, UnicodeDecodeError) as exc:
            skipped.append(f"{rel}/results.json: not readable ({type(exc).__name__})")
            continue
        except ScenarioError as exc:
            skipped.append(f"{rel}/results.json: {str(exc).removeprefix(str(path) + ':').strip()}")
            continue
        if (path.parent.parent / REPEAT_MARKER).is_file():
            series.setdefault(path.parent.parent, []).append((results, rel))
            continue
        point = _single_point(results, rel)
        if point is None:
            skipped.append(f"{rel}/results.json: no start time or scenario")
        else:
            singles.append(point)
    for directory, members in sorted(series.items()):
        point = _series_point(members, directory.relative_to(reports_dir).as_posix())
        if point is not None:
            singles.append(point)
    history = History(singles, skipped)
    flag_regressions(history)
    return history


def _regression(figure: str, prev: Point, cur: Point) -> str | None:
    before, now = prev.values.get(figure), cur.values.get(figure)
    if before is None:
        return None
    if now is None:
        if figure == "capacity_restored_s" or figure == "rto_s":
            return (f"{LABELS[figure]} was {quantity(figure, before)} in {prev.run_id}; "
                    "now not measured (never restored)")
        return None
    if now <= before:
        return None
    interval = prev.ci.get(figure)
    if interval is not None and prev.runs > 1 and now > interval[1]:
        return (f"{LABELS[figure]} {quantity(figure, now)} is above the previous point's 95 % CI "
                f"({quantity(figure, interval[0])} – {quantity(figure, interval[1])})")
    resolution = (ERROR_RATE_RESOLUTION if figure == "error_rate" else COUNT_RESOLUTION[figure]
                  if figure in COUNT_RESOLUTION else max(prev.resolution_s or 0.0, cur.resolution_s or 0.0))
    if now - before > resolution and (before == 0 or (now - before) / before > REGRESSION_RATIO):
        growth = f"+{(now - before) / before * 100:.0f} %" if before else "from 0"
        return (f"{LABELS[figure]} {quantity(figure, before)} → {quantity(figure, now)} ({growth}, "
                f"beyond the {_resolution_text(figure, resolution)} resolution)")
    return None


def _resolution_text(figure: str, resolution: float) -> str:
    if figure in COUNT_RESOLUTION:
        return quantity(figure, resolution)
    return quantity("x_s" if figure != "error_rate" else "error_rate", resolution)


def flag_regressions(history: History) -> None:
    for points in history.by_scenario().values():
        for prev, cur in zip(points, points[1:], strict=False):
            for figure in FIGURES:
                why = _regression(figure, prev, cur)
                if why:
                    cur.regressions[figure] = why


# --- outputs --------------------------------------------------------------------------------------


CSV_COLUMNS = ("scenario", "run_id", "started_at", "quarter", "verdict", "runs",
               "rto_s", "rto_s_ci_low", "rto_s_ci_high", "time_to_detect_s", "error_rate",
               "error_rate_ci_low", "error_rate_ci_high", "capacity_restored_s", "resolution_s",
               "regressions", "path", "retry_amplification", "cost_per_1k_requests")


def _safe_cell(value: Any) -> Any:
    # A spreadsheet runs a cell that starts with = + - @ as a formula; text from a results file
    # must never become one.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(history: History) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in sorted(history.points, key=lambda p: (p.scenario, p.started)):
        rto_ci, err_ci = p.ci.get("rto_s"), p.ci.get("error_rate")
        row = [p.scenario, p.run_id, datetime.fromtimestamp(p.started, UTC).isoformat().replace("+00:00", "Z"),
               p.quarter, p.verdict, p.runs, p.values["rto_s"], rto_ci[0] if rto_ci else None,
               rto_ci[1] if rto_ci else None, p.values["time_to_detect_s"], p.values["error_rate"],
               err_ci[0] if err_ci else None, err_ci[1] if err_ci else None, p.values["capacity_restored_s"],
               p.resolution_s, "; ".join(p.regressions.values()), p.path, p.values["retry_amplification"],
               p.values["cost_per_1k_requests"]]
        writer.writerow(["" if v is None else _safe_cell(v) for v in row])
    return buffer.getvalue()


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def quarter_rows(history: History) -> list[dict[str, Any]]:
    """Per scenario and quarter: runs, passes, median of each figure, change of the median RTO."""
    rows = []
    for scenario, points in history.by_scenario().items():
        quarters: dict[str, list[Point]] = {}
        for p in points:
            quarters.setdefault(p.quarter, []).append(p)
        previous_rto: float | None = None
        for quarter, members in sorted(quarters.items()):
            medians = {f: _median([p.values[f] for p in members]) for f in FIGURES}
            rto = medians["rto_s"]
            change = MISSING
            if rto is not None and previous_rto:
                change = f"{(rto - previous_rto) / previous_rto * 100:+.0f} %"
            rows.append({
                "scenario": scenario, "quarter": quarter, "runs": sum(p.runs for p in members),
                "passed": passed_text(members),
                "figures": [quantity(f, medians[f]) for f in FIGURES],
                "rto_change": change,
                "regressions": sum(len(p.regressions) for p in members),
            })
            previous_rto = rto if rto is not None else previous_rto
    return rows


def trend_svg(scenario: str, points: list[Point]) -> str | None:
    """Four small panels (one per figure) over time; regressions in red, CIs as bars. None when
    no figure has a value to draw."""
    import matplotlib.dates as mdates

    from harness.report.charts import _figure, _to_svg

    drawn = [f for f in FIGURES if any(p.values[f] is not None for p in points)]
    if not drawn:
        return None
    fig = _figure(9.0, 1.9 * math.ceil(len(drawn) / 2) + 0.4)
    axes = fig.subplots(math.ceil(len(drawn) / 2), 2, squeeze=False).ravel()
    for ax, figure in zip(axes, drawn, strict=False):
        xs = [datetime.fromtimestamp(p.started, UTC) for p in points if p.values[figure] is not None]
        ps = [p for p in points if p.values[figure] is not None]
        scale = 100.0 if figure == "error_rate" else 1.0
        ys = [float(p.values[figure] or 0) * scale for p in ps]
        ax.plot(xs, ys, marker="o", markersize=4, color="#2c5d8f", linewidth=1.4)
        for x, p, y in zip(xs, ps, ys, strict=False):
            interval = p.ci.get(figure)
            if interval is not None and p.runs > 1:  # a repeat series' CI of the median
                ax.vlines(x, interval[0] * scale, interval[1] * scale, color="#85929e", linewidth=2.5, alpha=0.7)
            if figure in p.regressions:
                ax.plot([x], [y], marker="o", markersize=9, markerfacecolor="none", markeredgecolor="#c0392b",
                        markeredgewidth=2)
        ax.set_title(LABELS[figure] + (" (%)" if figure == "error_rate" else " (s)"), fontsize=9, loc="left")
        intervals = [p.ci.get(figure) for p in ps if p.runs > 1]
        highs = ys + [float(i[1]) * scale for i in intervals if i is not None]
        ax.set_ylim(bottom=0, top=(max(highs) * 1.15) or 1.0)  # room for the regression ring
        # matplotlib.dates leaves these two constructors unannotated.
        locator = mdates.AutoDateLocator(minticks=2, maxticks=5)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", color="#e5e7e9", linewidth=0.6)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    for ax in axes[len(drawn):]:
        ax.set_visible(False)
    salt = "trend-" + "".join(c if c.isalnum() else "-" for c in scenario)[:40]
    return _to_svg(fig, salt, f"Trends of {scenario}")


def history_context(history: History, reports_dir: Path) -> dict[str, Any]:
    from markupsafe import Markup

    scenarios = []
    for scenario, points in history.by_scenario().items():
        svg = trend_svg(scenario, points)
        scenarios.append({
            "name": scenario,
            "description": points[-1].description,
            "chart": Markup(svg) if svg else None,
            "rows": [{
                "started": p.started_text, "run": p.run_id, "verdict": p.verdict, "runs": p.runs,
                "figures": [_figure_text(p, f) for f in FIGURES],
                "regressions": list(p.regressions.values()),
            } for p in points],
        })
    return {
        "reports_dir": str(reports_dir),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "labels": [LABELS[f] for f in FIGURES],
        "scenarios": scenarios,
        "quarters": quarter_rows(history),
        "regressions": [{"scenario": p.scenario, "run": p.run_id, "started": p.started_text, "why": why}
                        for p, _, why in history.regressions],
        "skipped": history.skipped,
        "points": len(history.points),
    }


def _figure_text(p: Point, figure: str) -> str:
    value = p.values[figure]
    text = quantity(figure, value) if value is not None else MISSING
    interval = p.ci.get(figure)
    if interval is not None and p.runs > 1:
        text += f" [{quantity(figure, interval[0])} – {quantity(figure, interval[1])}]"
    return text


def write_history(
    reports_dir: Path, out: Path | None = None, csv_out: Path | None = None
) -> tuple[History, Path, Path]:
    """Write the trends page and its CSV; returns (history, page, csv). ScenarioError (exit 2)
    when the folder is missing or holds no run."""
    from harness.report.html import render_template

    reports_dir = Path(reports_dir)
    history = collect(reports_dir)
    if not history.points:
        raise ScenarioError(f"{reports_dir}: no drill results.json found under it"
                            + (f" ({len(history.skipped)} unreadable)" if history.skipped else ""))
    page = Path(out) if out else reports_dir / TRENDS_NAME
    table = Path(csv_out) if csv_out else page.with_suffix(".csv")
    for path in (page, table):
        if not path.parent.is_dir():
            raise ScenarioError(f"{path.parent}: no such directory for the output")
    html = render_template(TEMPLATE, **history_context(history, reports_dir), csv_name=table.name)
    atomic_write_text(page, html)
    atomic_write_text(table, to_csv(history))
    return history, page, table


__all__ = ["FIGURES", "History", "Point", "collect", "flag_regressions", "quarter_rows", "to_csv", "write_history"]
