"""Run directories without a stack, for tests of measure, results and the report: the recorded
latency run (tests/data/latency-run), the same run with streamed answers, the example results and
a timeline that matches them. They name files of drill's checkout (``REPO/tests/data``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.results import RunResults

import numpy as np
import pandas as pd

from harness.testing.parts import REPO

DATA = REPO / "tests" / "data"
LATENCY_RUN = DATA / "latency-run"
EXAMPLE = DATA / "results-example.json"
BUCKET_S = 0.25


def latency_run(parent: Path, name: str = "run") -> Path:
    """``parent/name``: the journal, scenario and probe samples of a real `drill run
    scenarios/latency.yaml`, with results.json, junit.xml and report.html written from them exactly
    as `drill report` does."""
    from harness.engine.outputs import write_outputs
    from harness.results import compute_results

    run_dir = parent / name
    shutil.copytree(LATENCY_RUN, run_dir)
    results, timeline = compute_results(run_dir)
    write_outputs(run_dir, results, timeline)
    return run_dir


# --- the example results and their timeline ------------------------------------------------------


def example_results() -> dict[str, Any]:
    """tests/data/results-example.json: an outage of the hosted tier with failover to gpu."""
    loaded: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return loaded


def typed(document: dict[str, Any]) -> RunResults:
    """A results.json document as the report takes it: the typed model."""
    from harness.results import RunResults

    return RunResults.from_document(document)


def epoch(value: Any) -> float:
    """An instant of results.json (ISO text or epoch seconds) as epoch seconds."""
    from harness.report.formatting import parse_utc

    seconds = parse_utc(value)
    assert seconds is not None, value
    return seconds


def example_timeline(results: dict[str, Any], bucket_s: float = BUCKET_S, seed: int = 7) -> pd.DataFrame:
    """Buckets matching the example: hosted serves, dies at the first fault's onset, gpu takes
    over after ``failover_s``, errors stop at onset + RTO, hosted is back after revert + failback."""
    rng = np.random.default_rng(seed)
    phases = results["phases"]
    origin = epoch(phases["baseline"]["start"])
    end_s = epoch(phases["recovery"]["end"]) - origin
    fault = results["faults"][0]
    onset_s = epoch(fault["onset_at"]) - origin
    recovered_s = onset_s + fault["rto_s"]
    failover_s = onset_s + fault["failover_s"]
    failback_s = epoch(fault["reverted_at"]) - origin + fault["failback_s"]
    t = np.arange(0.0, end_s, bucket_s)
    requests = rng.poisson(28, len(t)).astype(float)
    error_rate = np.where((t >= onset_s) & (t < recovered_s), np.clip(0.9 - (t - onset_s) / 10, 0.05, 1), 0.0)
    p95_ms = 118 + rng.normal(0, 6, len(t))
    p95_ms = np.where((t >= onset_s) & (t < failover_s), 5000.0, p95_ms)
    p95_ms = np.where((t >= failover_s) & (t < failback_s), 240 + rng.normal(0, 20, len(t)), p95_ms)
    on_gpu = (t >= failover_s) & (t < failback_s)
    hosted = np.where(on_gpu | ((t >= onset_s) & (t < failover_s)), 0.0, 1.0)
    gpu = np.where(on_gpu, 1.0 - error_rate, 0.0)
    # A few requests just over the latency bound while on gpu: bad but not failed.
    bad_ratio = np.where(on_gpu & (t < recovered_s + 2), np.maximum(error_rate, 0.08), error_rate)
    return pd.DataFrame(
        {"t_s": t, "requests": requests, "error_rate": error_rate, "bad_ratio": bad_ratio, "p95_ms": p95_ms,
         "tier:hosted": hosted * (1 - error_rate), "tier:gpu": gpu, "tier:cpu": 0.0}
    )


# --- the recorded run with streamed answers ------------------------------------------------------

CUT_AFTER_TOKENS = 3
SLOW_MS = 900.0
STREAMING_OBJECTIVES = "  ttft_p95_ms: {max: 2x baseline, during: after_failover}\n  min_stream_completion: 0.95\n"


def streaming_run(tmp_path: Path, objectives: str = STREAMING_OBJECTIVES) -> Path:
    """A run directory with streamed requests, built from the recorded latency run: the same
    journal and phases, its probe rows turned into streams (no stack needed).

    Every answered probe is a stream of 8 tokens whose first token arrived after half its
    latency; the slow answers of the incident (latency > 900 ms: the 2 s provider delay, then
    the gateway's failover) are cut after 3 tokens; failed probes got no token. The scenario asks
    for ``"stream": true`` and names ``objectives`` (by default the two streaming objectives)."""
    run_dir = tmp_path / "streaming-run"
    shutil.copytree(LATENCY_RUN, run_dir)
    probe_csv = run_dir / "samples" / "probe.csv"
    probe = pd.read_csv(probe_csv, keep_default_na=False)
    answered = probe["ok"] == 1
    cut = answered & (probe["latency_ms"] > SLOW_MS)
    probe["stream"] = 1
    probe["ttft_ms"] = np.where(answered, (probe["latency_ms"] / 2).round(3), np.nan)
    probe["tokens"] = np.where(cut, CUT_AFTER_TOKENS, np.where(answered, 8, 0))
    probe["max_gap_ms"] = np.where(answered, 2.0, np.nan)
    probe["stream_completed"] = (answered & ~cut).astype(int)
    probe["cut_after_tokens"] = np.where(cut, CUT_AFTER_TOKENS, -1)
    probe.loc[cut, "ok"] = 0
    probe.loc[cut, "error"] = f"stream cut after {CUT_AFTER_TOKENS} tokens"
    probe.to_csv(probe_csv, index=False)
    scenario = run_dir / "scenario.yaml"
    text = scenario.read_text(encoding="utf-8")
    text = text.replace("json: {model: chat, messages:", "json: {model: chat, stream: true, messages:")
    text = text.replace("  failover_to: gpu\n", "  failover_to: gpu\n" + objectives)
    scenario.write_text(text, encoding="utf-8")
    return run_dir


def recorded_probe() -> pd.DataFrame:
    """The recorded probe rows as written (to compute expected figures independently)."""
    return pd.read_csv(LATENCY_RUN / "samples" / "probe.csv", keep_default_na=False)
