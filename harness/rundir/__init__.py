"""The run directory: every file a drill writes there, by name, and the small readers of them.

    reports/<scenario>/<timestamp>-<id>/
        journal.jsonl        every action and observation, fsynced, in order (harness/rundir/journal.py)
        scenario.yaml        the scenario as run
        samples/locust.csv   one row per request of the Locust users   (harness/load/samples.py)
        samples/probe.csv    one row per request of the fixed-rate probe
        samples/capacity.csv one row per poll of the serving pool      (harness/load/capacity.py)
        stack-events.json    the stack's own routing-event log, fetched at the end of a run
        cost-records.json    what the failover cost, as counted by others: the HTTP fault proxy's
                             per-route call log, the cloud's instance record, the prices in force
        health.jsonl         the instrument's own trouble (host stalls, clock steps, write errors)
        stack-logs/          the stack's process / container logs, and the local supervisor's
                             local-stack.state.json (the processes it started, for a later drill)
        locust-workers.json  distributed load: each worker's clock offset against the master
        locust.log, prober.log, watchdog.log   the load generators' and the host-stall watchdog's output
        .reserve             1 MiB held back while the load runs, freed for the rollback on a full disk
        traceback.txt        an unexpected error's traceback (for a bug report)
        results.json         every figure (schema drill.results/v1, harness/results/model.py)
        junit.xml            objectives as JUnit test cases
        report.html          the report

This module is the one place those names are spelled; it imports only the standard library so
the load generators (a child process whose start-up matters) can use it. The readers:
:mod:`~harness.rundir.journal` (the journal's writer and its one reader, typed records whose
events are catalogued in :mod:`~harness.rundir.events`, undo records in
:mod:`~harness.rundir.undo`), :mod:`~harness.rundir.frames` (samples and capacity as pandas
frames), :mod:`~harness.rundir.health`, :mod:`~harness.rundir.clock` (``locust-workers.json``).
Beside the run directory, drill's private state directory (:mod:`~harness.rundir.state`) keeps
the registry of live runs, read for the port-holder lookup by :mod:`~harness.rundir.runs`.

``stack-events.json`` is ``{"url": ..., "fetched_at": epoch s, "events": [{"ts", "event", ...}, ...]}``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError

JOURNAL_FILE = "journal.jsonl"
SCENARIO_FILE = "scenario.yaml"
SAMPLES_DIR = "samples"
LOCUST_SAMPLES_FILE = "locust.csv"
PROBE_SAMPLES_FILE = "probe.csv"
CAPACITY_FILE = "capacity.csv"
QUALITY_FILE = "quality.csv"  # the probe's scored canary answers (harness/load/canaries.py)
QUALITY_INDEX_FILE = "quality-index.json"
STACK_EVENTS_FILE = "stack-events.json"
STACK_LOGS_DIR = "stack-logs"
LOCAL_STACK_STATE_FILE = "local-stack.state.json"  # in STACK_LOGS_DIR (harness.runtime.local)
LOAD_WORKERS_FILE = "locust-workers.json"  # the distributed load's clocks (harness.rundir.clock)
LOCUST_LOG_FILE = "locust.log"
PROBER_LOG_FILE = "prober.log"
TRACEBACK_FILE = "traceback.txt"
RESULTS_FILE = "results.json"
JUNIT_FILE = "junit.xml"
REPORT_FILE = "report.html"
HEALTH_FILE = "health.jsonl"
COST_RECORDS_FILE = "cost-records.json"
RESERVE_FILE = ".reserve"  # held back while the load runs (harness.load.watchdog); never evidence

FILE_ROLES = {
    JOURNAL_FILE: "journal: every action and observation, fsynced, in order",
    RESULTS_FILE: "machine-readable results (schema drill.results/v1)",
    JUNIT_FILE: "objectives as JUnit test cases, for CI",
    REPORT_FILE: "this report",
    f"{SAMPLES_DIR}/{LOCUST_SAMPLES_FILE}": "raw per-request samples from the Locust users",
    f"{SAMPLES_DIR}/{PROBE_SAMPLES_FILE}": "raw per-request samples from the fixed-rate probe stream",
    f"{SAMPLES_DIR}/{CAPACITY_FILE}":
        "raw capacity samples: healthy GPU nodes per region, one row per poll of the pool",
    f"{SAMPLES_DIR}/{QUALITY_FILE}":
        "raw answer quality: one row per scored canary answer of the probe (recall@k, nearest documents)",
    f"{SAMPLES_DIR}/{QUALITY_INDEX_FILE}": "the canary documents' index: who built it, when, its vectors",
    SCENARIO_FILE: "the scenario as run",
    COST_RECORDS_FILE: "raw cost counts: the HTTP fault proxy's call log per route, the cloud's instance "
                       "record (launches, lifetimes) and the prices in force",
    HEALTH_FILE: "the instrument's own trouble: host stalls, clock steps, write errors",
}
"""What each well-known file holds, so a reader of the report can trace a figure to raw data."""


def journal_path(run_dir: Path) -> Path:
    return Path(run_dir) / JOURNAL_FILE


def scenario_path(run_dir: Path) -> Path:
    return Path(run_dir) / SCENARIO_FILE


def samples_dir(run_dir: Path) -> Path:
    return Path(run_dir) / SAMPLES_DIR


def capacity_path(run_dir: Path) -> Path:
    return samples_dir(run_dir) / CAPACITY_FILE


def results_path(run_dir: Path) -> Path:
    return Path(run_dir) / RESULTS_FILE


def report_path(run_dir: Path) -> Path:
    return Path(run_dir) / REPORT_FILE


def junit_path(run_dir: Path) -> Path:
    return Path(run_dir) / JUNIT_FILE


def traceback_path(run_dir: Path) -> Path:
    return Path(run_dir) / TRACEBACK_FILE


def stack_logs_dir(run_dir: Path) -> Path:
    return Path(run_dir) / STACK_LOGS_DIR


def request_sample_files(run_dir: Path) -> list[Path]:
    """The per-request sample files of a run, sorted (``samples/*.csv`` except the capacity
    timeline, which is polls of the pool, and the answer-quality rows, which score requests
    probe.csv already holds)."""
    directory = samples_dir(run_dir)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.csv") if p.name not in (CAPACITY_FILE, QUALITY_FILE))


def write_stack_events(run_dir: Path, url: str, events: list[Any]) -> Path:
    """Write the stack's event log atomically into the run directory."""
    path = Path(run_dir) / STACK_EVENTS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "fetched_at": time.time(), "events": events}, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_stack_events(run_dir: Path) -> list[dict[str, Any]] | None:
    """The events with a numeric ``ts`` and a text ``event`` (others are skipped), or None when
    the run kept no event log. A damaged file is bad input, named with its path."""
    path = Path(run_dir) / STACK_EVENTS_FILE
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError(f"{path}: not a readable stack event log ({exc})") from None
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list):
        raise ScenarioError(f"{path}: expected an object with an 'events' list")
    return [
        e for e in events
        if isinstance(e, dict) and isinstance(e.get("event"), str)
        and isinstance(e.get("ts"), (int, float)) and not isinstance(e.get("ts"), bool) and math.isfinite(e["ts"])
    ]


def write_cost_records(run_dir: Path, document: dict[str, Any]) -> Path:
    """Write the cost records (harness/engine/costs.py) atomically into the run directory."""
    path = Path(run_dir) / COST_RECORDS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_cost_records(run_dir: Path) -> dict[str, Any] | None:
    """The cost records as written, or None when the run kept none. A damaged file is bad input."""
    path = Path(run_dir) / COST_RECORDS_FILE
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError(f"{path}: not readable cost records ({exc})") from None
    if not isinstance(document, dict):
        raise ScenarioError(f"{path}: expected a JSON object")
    return document
