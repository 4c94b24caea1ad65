"""The gateway scorecard: the conformance set (docs/gateways.md) run on each pinned gateway, one
cell per behaviour x gateway, written as a CSV and a Markdown page with each cell's verdict, its
figures and its run's report.

    .venv/bin/python bench/gateway_scorecard.py --lock /tmp/drill-heavy.lock [--only litellm,portkey]
        [--behaviours overloaded,provider-down] [--short] [--out DIR] [--docs] [--refigure]

Each drill runs through the real engine (``run_drill``) on the local runtime's fixed ports, one
after another; with ``--lock FILE`` each drill holds that lock (``flock``) only while it runs, so
other heavy work interleaves (do not also wrap the script in ``heavy``: it would wait on itself).
Cells already in ``DIR/gateway-scorecard.csv`` are kept unless run again, so the set can be run a
few cells at a time: ``--out`` the folder of the earlier run (the page's ``RUN_ROOT``) and
``--behaviours`` the new cells regenerates only those rows, here and in docs/ with ``--docs``. ``--short`` runs 6 s / 10 s / 8 s phases (the test suite's); ``--docs`` writes
the CSV and the page to docs/ as well.

Beside each drill a watcher polls the HTTP fault proxy's control API every 0.25 s and keeps each
fault's ``hits`` (the calls the gateway made to the faulted provider through the proxy). After it,
the gateway's own record (LiteLLM's callbacks, Portkey's console log stream: targets/gateways/
records.py) gives the gateway's failover / failback instants, set beside drill's
(``harness.measure.agreement``), and the calls it says it sent to the primary during the fault.
Traffic goes to 127.0.0.1 only; every drill ends by itself.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.engine import run_drill  # noqa: E402 - after the path is set for a checkout
from harness.measure.agreement import COOLDOWN_END_EVENT, agreement, routing_events  # noqa: E402
from harness.measure.incidents import CAUSE_EVENTS  # noqa: E402
from harness.rundir import read_stack_events  # noqa: E402
from harness.testing.drills import shortened  # noqa: E402
from targets.gateways import records  # noqa: E402

GATEWAYS = REPO / "scenarios" / "gateways"
PROXY_CONTROL = "http://127.0.0.1:19101/__drill/faults"  # the stacks' HTTP fault proxy route
VERSIONS = {"litellm": REPO / ".venv-litellm" / "drill-version", "portkey": REPO / ".gateways" / "portkey" / "drill-version"}
NAMES = {"litellm": "LiteLLM", "portkey": "Portkey"}
# The conformance set: (behaviour, the fault as the page names it). `control` is the 429 storm on
# a config without fallbacks (scenarios/gateways/controls/), expected to exit 1.
CONFORMANCE = [
    ("rate-limited", "429 + Retry-After: 5"),
    ("overloaded", "529 overloaded"),
    ("first-token-delay", "first token held 8 s"),
    ("stream-cut", "stream cut after 3 events"),
    ("stream-stall", "stream stalls 8 s after 3 events"),
    ("malformed", "malformed answer: half, then bytes that are not JSON"),
    ("provider-down", "provider down at TCP level"),
    ("control", "negative control: 429 storm, no fallbacks"),
]
NOT_APPLICABLE = {
    ("portkey", "stream-cut"): "Portkey 1.15.2 cannot stream on Node 20 (every stream: 500 TypeError: immutable)",
    ("portkey", "stream-stall"): "Portkey 1.15.2 cannot stream on Node 20 (every stream: 500 TypeError: immutable)",
}
FIELDS = ["gateway", "version", "behaviour", "fault", "scenario", "phases", "expected_exit", "exit", "verdict",
          "missed", "failover_s", "failback_s", "rto_s", "fault_error_rate", "baseline_p95_ms", "fault_p50_ms",
          "fault_p95_ms", "stream_completion", "short_completed_streams", "fault_client_requests", "faulted_provider_calls",
          "calls_per_client_request", "fault_max_gap_ms", "midstream_failures", "midstream_failure_p50_s",
          "stalls_cut_short", "gateway_primary_calls", "gateway_failover_s", "gateway_failback_s",
          "record_agrees", "record", "cooldown_cycles", "cooldown_incidents", "cooldown_bad_answers",
          "cooldown_impact_s", "bad_answers_per_cooldown", "impact_s_per_cooldown", "report"]


class HitWatcher:
    """Polls the proxy's fault list; keeps the largest ``hits`` (and, for a stall, ``cut_short``:
    stalls the upstream's end released early) seen per fault id."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.cut_short: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HitWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            deadline = time.monotonic() + 600  # bounded: a drill here lasts about a minute
            while not self._stop.wait(0.25) and time.monotonic() < deadline:
                try:
                    for fault in client.get(PROXY_CONTROL).json():
                        self.hits[fault["id"]] = max(self.hits.get(fault["id"], 0), int(fault.get("hits", 0)))
                        if "cut_short" in fault:
                            self.cut_short[fault["id"]] = max(self.cut_short.get(fault["id"], 0),
                                                              int(fault["cut_short"]))
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    continue  # the stack is starting or stopping, or the fault is not on the proxy


@contextmanager
def held(lock: Path | None) -> Iterator[None]:
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def version(gateway: str) -> str:
    try:
        return VERSIONS[gateway].read_text().strip()
    except OSError:
        return "not installed"


def scenario_path(gateway: str, behaviour: str) -> Path:
    if behaviour == "control":
        return GATEWAYS / "controls" / f"{gateway}-rate-limited.local.yaml"
    return GATEWAYS / f"{gateway}-{behaviour}.local.yaml"


def _epoch(value: object) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if isinstance(value, str) else None


def _measured(r: dict[str, Any], name: str) -> Any:
    return next((o.get("measured") for o in r.get("objectives", []) if o["name"] == name), None)


def short_completed(samples: pd.DataFrame | None, phases: dict[str, Any]) -> float | None:
    """Share of the fault phase's streams that ended as complete (``[DONE]``) yet carried fewer
    tokens than the baseline's usual answer: a truncated answer the gateway passed off as whole.
    None without streams."""
    if samples is None or samples.empty or "stream_completed" not in samples:
        return None
    base, fault = phases.get("baseline") or {}, phases.get("fault") or {}
    b0, b1, f0, f1 = (_epoch(base.get("start")), _epoch(base.get("end")), _epoch(fault.get("start")),
                      _epoch(fault.get("end")))
    if None in (b0, b1, f0, f1):
        return None
    streams = samples[(samples["stream"] == 1) & (samples["ok"] == 1) & (samples["stream_completed"] == 1)]
    usual = streams[(streams["start"] >= b0) & (streams["end"] < b1)]["tokens"].median()
    during = streams[(streams["start"] >= f0) & (streams["end"] < f1)]
    if during.empty or pd.isna(usual):
        return None
    return round(float((during["tokens"] < usual).mean()), 4)


def fault_max_gap(samples: pd.DataFrame | None, phases: dict[str, Any]) -> float | None:
    """The longest gap between two tokens any stream begun in the fault phase showed its client,
    ms (``max_gap_ms`` of the samples): what a stall that reached the client looks like. None
    without streams."""
    if samples is None or samples.empty or "max_gap_ms" not in samples:
        return None
    fault = phases.get("fault") or {}
    f0, f1 = _epoch(fault.get("start")), _epoch(fault.get("end"))
    if f0 is None or f1 is None:
        return None
    gaps = pd.to_numeric(samples[(samples["stream"] == 1) & (samples["start"] >= f0) & (samples["start"] < f1)]
                         ["max_gap_ms"], errors="coerce").dropna()
    return round(float(gaps.max()), 1) if not gaps.empty else None


def midstream_failures(samples: pd.DataFrame | None, phases: dict[str, Any]) -> tuple[int | None, float | None]:
    """Streams begun in the fault phase that failed after their first token (a cut, the gateway's
    error event, a reset), and how long after being sent they ended (p50, s): what a client of a
    stall the gateway gives up on sees. (None, None) without streams."""
    if samples is None or samples.empty or "tokens" not in samples:
        return None, None
    fault = phases.get("fault") or {}
    f0, f1 = _epoch(fault.get("start")), _epoch(fault.get("end"))
    if f0 is None or f1 is None:
        return None, None
    failed = samples[(samples["stream"] == 1) & (samples["ok"] == 0) & (pd.to_numeric(samples["tokens"]) > 0)
                     & (samples["start"] >= f0) & (samples["start"] < f1)]
    if failed.empty:
        return 0, None
    return len(failed), round(float((failed["end"] - failed["start"]).median()), 2)


def read_samples(run_dir: Path) -> pd.DataFrame | None:
    paths = sorted((run_dir / "samples").glob("*.csv"))
    if not paths:
        return None
    return pd.concat([pd.read_csv(p, keep_default_na=False) for p in paths])


def cooldown_cost(fault: dict[str, Any], stack_events: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The re-probe cost of the gateway's cooldown cycles in one fault: the cycles its record shows
    during the fault (``cooldown_end`` events of the run's stack events, from the onset to the
    revert), and the incidents results name a cooldown's end as the cause of, with their bad
    answers and lengths summed. All None when the run kept no stack events."""
    if stack_events is None:
        return {"cooldown_cycles": None, "cooldown_incidents": None, "cooldown_bad_answers": None,
                "cooldown_impact_s": None, "bad_answers_per_cooldown": None, "impact_s_per_cooldown": None}
    onset, reverted = _epoch(fault.get("onset_at")), _epoch(fault.get("reverted_at"))
    cycles = sum(1 for e in stack_events if e["event"] == COOLDOWN_END_EVENT and onset is not None
                 and onset <= float(e["ts"]) and (reverted is None or float(e["ts"]) <= reverted))
    caused = [i for i in fault.get("incidents") or []
              if str(i.get("cause") or "").startswith(CAUSE_EVENTS[COOLDOWN_END_EVENT])]
    bad, impact = sum(int(i["bad"]) for i in caused), sum(float(i["length_s"]) for i in caused)
    return {"cooldown_cycles": cycles, "cooldown_incidents": len(caused), "cooldown_bad_answers": bad,
            "cooldown_impact_s": round(impact, 3),
            "bad_answers_per_cooldown": round(bad / cycles, 2) if cycles else None,
            "impact_s_per_cooldown": round(impact / cycles, 3) if cycles else None}


def figures(r: dict[str, Any], hits: int, record: records.GatewayRecord | None,
            samples: pd.DataFrame | None = None, stack_events: list[dict[str, Any]] | None = None,
            cut_short: int | None = None) -> dict[str, Any]:
    """The cell's figures from a run's results document, the proxy's hits (and stalls cut short),
    the gateway's record, the run's samples and its stack events (the gateway's record as served to
    the run)."""
    fault = (r.get("faults") or [{}])[0]
    phase = (r.get("phases") or {}).get("fault") or {}
    base = (r.get("phases") or {}).get("baseline") or {}
    onset, reverted = _epoch(fault.get("onset_at")), _epoch(fault.get("reverted_at"))
    requests = int(phase.get("requests") or 0)
    row: dict[str, Any] = {
        "verdict": r.get("verdict"),
        "missed": ",".join(o["name"] for o in r.get("objectives", []) if not o["passed"]) or "-",
        "failover_s": fault.get("failover_s"),
        "failback_s": fault.get("failback_s"),
        "rto_s": fault.get("rto_s"),
        "fault_error_rate": phase.get("error_rate"),
        "baseline_p95_ms": base.get("p95_ms"),
        "fault_p50_ms": phase.get("p50_ms"),
        "fault_p95_ms": phase.get("p95_ms"),
        "stream_completion": _measured(r, "min_stream_completion"),
        "short_completed_streams": short_completed(samples, r.get("phases") or {}),
        "fault_client_requests": requests,
        "faulted_provider_calls": hits if fault.get("type") != "down" else None,
        "calls_per_client_request": round(hits / requests, 2) if requests and fault.get("type") != "down" else None,
        "fault_max_gap_ms": fault_max_gap(samples, r.get("phases") or {}),
        "midstream_failures": midstream_failures(samples, r.get("phases") or {})[0],
        "midstream_failure_p50_s": midstream_failures(samples, r.get("phases") or {})[1],
        "stalls_cut_short": cut_short if fault.get("type") == "stream_stall" else None,
        "gateway_primary_calls": None, "gateway_failover_s": None, "gateway_failback_s": None,
        "record_agrees": None, "record": None,
    }
    row.update(cooldown_cost(fault, stack_events))
    if record is not None and onset is not None:
        agreed = agreement(routing_events(record.served), onset, None, fault.get("failover_s"),
                           fault.get("failback_s"), float(fault.get("resolution_s") or 0.25), record.source)
        row.update({
            "gateway_primary_calls": record.primary_calls(onset, reverted) if reverted else None,
            "gateway_failover_s": agreed.failover_s,
            "gateway_failback_s": agreed.failback_s,
            "record_agrees": agreed.agrees,
            "record": record.source.split(" ")[0],
        })
    return row


def run_cell(gateway: str, behaviour: str, fault: str, out: Path, short: bool, lock: Path | None) -> dict[str, Any]:
    path = scenario_path(gateway, behaviour)
    expected = 1 if behaviour == "control" else 0
    row: dict[str, Any] = {f: None for f in FIELDS}
    row.update(gateway=gateway, version=version(gateway), behaviour=behaviour, fault=fault,
               scenario=str(path.relative_to(REPO)), expected_exit=expected)
    if (gateway, behaviour) in NOT_APPLICABLE:
        row.update(verdict="n/a", missed=NOT_APPLICABLE[(gateway, behaviour)])
        return row
    runs = out / "runs" / gateway / behaviour
    runs.mkdir(parents=True, exist_ok=True)
    if short:
        text = shortened(path.read_text(encoding="utf-8")).replace("file: ../../../targets/", f"file: {REPO}/targets/")
        text = text.replace("file: ../../targets/", f"file: {REPO}/targets/")
        path = runs / path.name
        path.write_text(text, encoding="utf-8")
    with held(lock), HitWatcher() as watcher:
        result = run_drill(path, out=runs / "run")
    r: dict[str, Any] = result.results.document()
    row.update(figures(r, sum(watcher.hits.values()), records.read(result.run_dir), read_samples(result.run_dir),
                       read_stack_events(result.run_dir), sum(watcher.cut_short.values())))
    row.update(exit=result.exit_code, phases="6/10/8 s" if short else "10/20/15 s",
               report=str((result.run_dir / "report.html").relative_to(out)))
    return row


def _num(value: object, digits: int = 2) -> str:
    if value in (None, ""):
        return "-"
    try:
        return f"{float(str(value)):.{digits}f}"
    except ValueError:
        return str(value)


def cell_text(row: dict[str, Any], link_root: str) -> str:
    if row["verdict"] == "n/a":
        return f"n/a: {row['missed']}"
    mark = {"passed": "PASS", "aborted": "FAIL (aborted by its stop_when)"}.get(str(row["verdict"]), "FAIL")
    if row["behaviour"] == "control":  # a negative control must fail
        mark += " (as a control must)" if str(row["exit"]) == "1" else " (a control that passes: the drill cannot fail)"
    parts = [f"**{mark}**"]
    if row["missed"] not in ("-", None):
        parts.append(f"missed {row['missed']}")
    parts.append(f"failover {_num(row['failover_s'])} s, rto {_num(row['rto_s'], 1)} s")
    if row["failback_s"] not in (None, ""):
        parts.append(f"failback {_num(row['failback_s'])} s")
    parts.append(f"errors {_num(float(row['fault_error_rate'] or 0) * 100, 1)} %")
    parts.append(f"p95 {_num(row['fault_p95_ms'], 0)} ms (baseline {_num(row['baseline_p95_ms'], 0)})")
    if row["stream_completion"] not in (None, ""):
        parts.append(f"streams completed {_num(row['stream_completion'])}")
    if row.get("short_completed_streams") not in (None, "", 0, "0.0", 0.0):
        parts.append(f"**{_num(float(row['short_completed_streams']) * 100, 1)} % of the fault's streams ended"
                     " as complete but short** (truncated answers passed off as whole)")
    if row["behaviour"] == "stream-stall" and row.get("fault_max_gap_ms") not in (None, ""):
        parts.append(f"longest gap between two tokens a client saw {_num(float(row['fault_max_gap_ms']) / 1000)} s")
    if row["behaviour"] == "stream-stall" and row.get("midstream_failure_p50_s") not in (None, ""):
        parts.append(f"{row['midstream_failures']} streams failed after their first token, ending"
                     f" {_num(row['midstream_failure_p50_s'])} s (p50) after they were sent")
    if row.get("stalls_cut_short") not in (None, ""):  # a stall's hits are the stalls begun, not calls
        parts.append(f"stalls begun at the proxy {row['faulted_provider_calls']} for {row['fault_client_requests']}"
                     f" requests, cut short by the provider's end {row['stalls_cut_short']}")
    elif row["calls_per_client_request"] not in (None, ""):
        parts.append(f"calls to the faulted provider per request {_num(row['calls_per_client_request'])}")
    elif row["gateway_primary_calls"] not in (None, ""):
        parts.append(f"calls to the primary during the fault (gateway's record) {row['gateway_primary_calls']}"
                     f" for {row['fault_client_requests']} requests")
    if row.get("cooldown_cycles") not in (None, ""):  # "-" in the figures table for a run that kept no record
        parts.append(cooldown_text(row))
    parts.append(f"[report]({link_root}{row['report']})")
    return ", ".join(parts)


def cooldown_text(row: dict[str, Any]) -> str:
    """``2 cooldown cycles, re-probe cost per cycle 3.0 bad answers / 0.40 s``: what each
    cooldown's end cost users (the incidents results say it caused); for a row with cycles recorded."""
    cycles = int(float(row["cooldown_cycles"]))
    if cycles == 0:
        return "no cooldown cycle in the gateway's record"
    return (f"{cycles} cooldown cycle{'s' if cycles > 1 else ''}, re-probe cost per cycle"
            f" {_num(row['bad_answers_per_cooldown'], 1)} bad answers / {_num(row['impact_s_per_cooldown'])} s"
            f" ({row['cooldown_incidents']} incident(s) caused by a cooldown end)")


def page(rows: list[dict[str, Any]], link_root: str) -> str:
    gateways = sorted({r["gateway"] for r in rows})
    by = {(r["gateway"], r["behaviour"]): r for r in rows}
    lines = ["# Gateway scorecard", "",
             "Generated by `bench/gateway_scorecard.py` from real runs on this machine (docs/gateways.md says",
             "how to reproduce it and what each behaviour means). Each cell: the verdict of the gateway's shipped",
             "drill, the missed objectives, drill's failover instant, the fault phase's error rate and p95",
             "beside the baseline's, and the run's report" + (f" (`{link_root}` is the `--out` folder of the run:"
                                                             " reports are not kept in the repository)." if link_root
                                                             else "."), "",
             "| behaviour | " + " | ".join(f"{NAMES.get(g, g)} {version(g)}" for g in gateways) + " |",
             "|---|" + "---|" * len(gateways)]
    for behaviour, fault in CONFORMANCE:
        cells = [cell_text(by[(g, behaviour)], link_root) if (g, behaviour) in by else "not run" for g in gateways]
        lines.append(f"| {fault} (`{behaviour}`) | " + " | ".join(cells) + " |")
    lines += ["", "## Every figure", "",
              "`short_completed_streams`: share of the fault phase's streams that ended with `[DONE]` but fewer",
              "tokens than the baseline's usual answer (a truncation the gateway hid);",
              "`failback_s`: drill's first answer from the primary again after the revert; `gateway_*`: the same",
              "instants by the gateway's own record (`record`), `record_agrees`: within drill's 0.25 s resolution;",
              "`faulted_provider_calls`: the HTTP fault proxy's hits during the fault (none for a TCP fault, which",
              "bypasses the proxy; for a stall, the stalls begun); `fault_max_gap_ms`: the longest gap between two",
              "tokens of any stream begun in the fault phase, as its client saw it; `midstream_failures`,",
              "`midstream_failure_p50_s`: those streams that failed after their first token, and when they ended",
              "(p50, s after sending); `stalls_cut_short`: the stalls",
              "the provider's end released before their length (docs/http-faults.md); `gateway_primary_calls`: the calls the gateway's record shows to the primary",
              "during the fault; `cooldown_cycles`: the cooldown ends in the gateway's record during the fault (a call",
              "to the primary after a quiet of 1 s or more that followed a failed call, targets/gateways/records.py);",
              "`cooldown_incidents`, `cooldown_bad_answers`, `cooldown_impact_s`: the incidents results name a",
              "cooldown's end as the cause of, their bad answers and lengths summed; `*_per_cooldown`: the same per",
              "cycle (the re-probe cost). Empty for a run made before the gateway's record was served to the run.", ""]
    shown = [f for f in FIELDS if f not in ("version", "fault", "scenario", "report")]
    lines.append("| " + " | ".join(shown) + " |")
    lines.append("|" + "---|" * len(shown))
    for behaviour, _ in CONFORMANCE:
        for g in gateways:
            if (g, behaviour) in by and by[(g, behaviour)]["verdict"] != "n/a":
                lines.append("| " + " | ".join(_num(by[(g, behaviour)][f], 3) if f.endswith(("_s", "_ms", "_rate"))
                                               else str(by[(g, behaviour)][f] if by[(g, behaviour)][f] not in (None, "")
                                                        else "-") for f in shown) + " |")
    return "\n".join(lines) + "\n"


def load_rows(csv_path: Path) -> list[dict[str, Any]]:
    if not csv_path.is_file():
        return []
    with open(csv_path, newline="", encoding="utf-8") as handle:
        # A CSV an older version of this script wrote lacks the newer columns.
        return [{f: None for f in FIELDS} | dict(row) for row in csv.DictReader(handle)]


def write(rows: list[dict[str, Any]], folder: Path, link_root: str) -> None:
    order = {b: i for i, (b, _) in enumerate(CONFORMANCE)}
    rows = sorted(rows, key=lambda r: (r["gateway"], order.get(r["behaviour"], 99)))
    with open(folder / "gateway-scorecard.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (folder / "gateway-scorecard.md").write_text(page(rows, link_root), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", default="litellm,portkey", help="gateways to run (comma-separated)")
    parser.add_argument("--behaviours", default=",".join(b for b, _ in CONFORMANCE),
                        help="behaviours of the conformance set to run (comma-separated)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs, the CSV and the page")
    parser.add_argument("--short", action="store_true", help="6 s / 10 s / 8 s phases instead of 10 / 20 / 15")
    parser.add_argument("--lock", type=Path, default=None, help="hold this flock file during each drill")
    parser.add_argument("--docs", action="store_true", help="also write docs/gateway-scorecard.{csv,md}")
    parser.add_argument("--refigure", action="store_true",
                        help="recompute the figures of the cells already run from their run folders")
    parser.add_argument("--merge", type=Path, action="append", default=[],
                        help="take the cells of another run's folder too (its gateway-scorecard.csv)")
    args = parser.parse_args()
    out = (args.out or Path(tempfile.mkdtemp(prefix="gateway-scorecard-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    faults = dict(CONFORMANCE)
    wanted = args.behaviours.split(",")
    unknown = [b for b in wanted if b not in faults]
    if unknown:
        parser.error(f"unknown behaviour(s) {', '.join(unknown)}; expected some of {', '.join(faults)}")
    rows = {(r["gateway"], r["behaviour"]): r for r in load_rows(out / "gateway-scorecard.csv")}
    for folder in args.merge:
        for r in load_rows(folder / "gateway-scorecard.csv"):
            if r.get("report"):
                r["report"] = os.path.relpath(folder.resolve() / r["report"], out)
            rows[(r["gateway"], r["behaviour"])] = r
    if args.refigure:
        for row in rows.values():
            run_dir = (out / str(row.get("report") or "")).parent
            if row.get("report") and (run_dir / "results.json").is_file():
                document = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
                cut = row.get("stalls_cut_short")
                row.update(figures(document, int(row.get("faulted_provider_calls") or 0), records.read(run_dir),
                                   read_samples(run_dir), read_stack_events(run_dir),
                                   int(cut) if cut not in (None, "") else None))
    write(list(rows.values()), out, "")
    for gateway in filter(None, args.only.split(",")):
        for behaviour in wanted:
            row = run_cell(gateway, behaviour, faults[behaviour], out, args.short, args.lock)
            # Cells another run of this script wrote meanwhile are kept (it may share the folder).
            rows = {(r["gateway"], r["behaviour"]): r for r in load_rows(out / "gateway-scorecard.csv")} | rows
            rows[(gateway, behaviour)] = row
            print(f"{gateway} {behaviour}: " + cell_text(row, ""), flush=True)
            write(list(rows.values()), out, "")
    if args.docs:
        write(list(rows.values()), REPO / "docs", "RUN_ROOT/")
    print(f"scorecard: {out / 'gateway-scorecard.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
