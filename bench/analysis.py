"""How fast is the analysis of a big run, and how much memory does it take? samples -> results.json.

    .venv/bin/python bench/analysis.py [--sizes 1000000,10000000] [--rounds 3]

For each size N a run directory is built from the real latency run's journal and scenario
(tests/data/latency-run) with N synthetic requests over its 45 s of phases: a 20 Hz open-loop
probe stream plus closed-loop users making up the rest, written as the load generators write
them (``samples/probe.csv`` and ``samples/locust.csv``, rows in the order requests ended). The
incident is known: from the fault's onset the hosted tier answers 503 for ``OUTAGE_S`` (3.0 s),
then the gateway serves from the gpu tier until the fault is reverted. So the measured RTO must
be 3.0 s within the resolution (0.25 s), and the bench fails if it is not.

Timed, each in a FRESH child process (so one size's heap does not inflate the next one's peak),
with the child's peak RSS from ``getrusage(RUSAGE_SELF).ru_maxrss``:

- read:    ``harness.rundir.frames.read_samples`` alone: the floor, just parsing the CSVs
- analyse: what ``drill report`` does before rendering: ``compute_results`` (read + every figure
           of results.json and the bucket timeline) + ``write_results`` (results.json)

Goals: 1 M samples in <= 3 s, 10 M in <= 30 s, within 4 GiB. The peak includes the Python
interpreter, pandas, numpy and drill (82 MiB before any sample is read). Generating the CSVs is
not timed. The machine's load average is printed with the figures (a shared 2-core VM).

The last line is ``s_1m=<> s_10m=<> peak_gib_10m=<> read_ratio_1m=<>`` (``read_ratio`` =
analyse time / read time). Files only: no stack, no network.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.load.samples import COLUMNS  # noqa: E402
from harness.rundir.events import FaultApplied, FaultReverted, PhaseStart  # noqa: E402
from harness.rundir.journal import read_journal  # noqa: E402

OUTAGE_S = 3.0
SPAN_S = 45.0
PROBE_RATE_HZ = 20.0
CHUNK_ROWS = 1_000_000
"""Rows generated and written at a time, so the generator's own memory stays small."""


def _journal_times(run_dir: Path) -> tuple[float, float, float]:
    journal = list(read_journal(run_dir / "journal.jsonl"))
    baseline = next(r.ts for r in journal if isinstance(r.event, PhaseStart) and r.event.phase == "baseline")
    applied = next(r.event for r in journal if isinstance(r.event, FaultApplied))
    reverted = next(r.event for r in journal if isinstance(r.event, FaultReverted))
    return float(baseline), applied.onset_at, float(reverted.reverted_at or 0.0)


def _frame(starts: np.ndarray, source: str, onset_s: float, revert_s: float, rng: np.random.Generator) -> pd.DataFrame:
    """Requests starting at ``starts``: hosted, then 503 for OUTAGE_S after the onset, then gpu."""
    n = len(starts)
    outage = (starts >= onset_s) & (starts < onset_s + OUTAGE_S)
    on_gpu = (starts >= onset_s + OUTAGE_S) & (starts < revert_s)
    latency_ms = np.where(outage, rng.gamma(2.0, 1.0, n), rng.gamma(4.0, 4.0, n)).round(3)
    ends = starts + latency_ms / 1000.0
    frame = pd.DataFrame({
        "source": source, "start": starts, "end": ends,
        "status": np.where(outage, 503, 200), "ok": np.where(outage, 0, 1),
        "latency_ms": latency_ms, "bytes": np.where(outage, 0, 297),
        "served_by": np.where(outage, "", np.where(on_gpu, "gpu-a1", "hosted-model")),
        "tier": np.where(outage, "", np.where(on_gpu, "gpu", "hosted")),
        "region": np.where(outage, "", np.where(on_gpu, "region-a", "external")),
        "degraded": 0, "error": np.where(outage, "HTTP 503", ""),
        # not streamed: the stream columns' defaults (harness/load/samples.py NON_STREAM_COLUMNS)
        "stream": 0, "ttft_ms": np.nan, "tokens": 0, "max_gap_ms": np.nan, "stream_completed": 0,
        "cut_after_tokens": -1,
        # probes on schedule (harness/load/prober.py); Locust users have none
        "intended": starts if source == "probe" else np.nan,
    })[list(COLUMNS)]
    # The load generators write a row when its request ends.
    return frame.sort_values("end", kind="stable")


def make_run(target: Path, total: int) -> Path:
    """A run directory with ``total`` samples and the known incident (see the module docstring)."""
    shutil.copytree(REPO / "tests" / "data" / "latency-run", target)
    baseline_s, onset_s, revert_s = _journal_times(target)
    rng = np.random.default_rng(1)
    samples = target / "samples"
    probe_n = int(SPAN_S * PROBE_RATE_HZ)
    probe_starts = baseline_s + np.arange(probe_n) / PROBE_RATE_HZ
    _frame(probe_starts, "probe", onset_s, revert_s, rng).to_csv(samples / "probe.csv", index=False, float_format="%.6f")
    locust_n = total - probe_n
    # Users' start times, uniformly spread over the span, written one time slice at a time.
    slices = max(1, -(-locust_n // CHUNK_ROWS))
    locust_path = samples / "locust.csv"
    locust_path.unlink(missing_ok=True)
    for i in range(slices):
        n = locust_n // slices + (1 if i < locust_n % slices else 0)
        lo = baseline_s + SPAN_S * i / slices
        starts = np.sort(rng.uniform(lo, lo + SPAN_S / slices, n))
        frame = _frame(starts, "locust", onset_s, revert_s, rng)
        frame.to_csv(locust_path, mode="a", header=i == 0, index=False, float_format="%.6f")
    return target


def child(kind: str, run_dir: Path) -> None:
    """Run one timed step in this (fresh) process and print its figures as one JSON line."""
    from harness.report.results import write_results
    from harness.results import compute_results
    from harness.rundir.frames import read_samples

    start = time.perf_counter()
    if kind == "read":
        samples = read_samples(run_dir)
        rows = len(samples)
        extra: dict[str, object] = {}
    else:
        results = compute_results(run_dir)[0].document()
        write_results(run_dir, results)
        rows = results["measurement"]["samples"]
        fault = results["faults"][0]
        extra = {"rto_s": fault["rto_s"], "resolution_s": fault["resolution_s"], "verdict": results["verdict"]}
    elapsed_s = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"s": elapsed_s, "peak_gib": peak_kib / 2**20, "rows": rows, **extra}))


def timed_child(kind: str, run_dir: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(run_dir)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="sample counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="child runs per step and size (median)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    sizes = [int(x) for x in args.sizes.split(",")]
    if any(n < 10_000 or n > 50_000_000 for n in sizes) or not 1 <= args.rounds <= 10:
        parser.error("sizes in [10000, 50000000], rounds in [1, 10]")
    figures: dict[int, dict[str, float]] = {}
    ok = True
    print(f"cores={os.cpu_count()} load_average={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'samples':>11} {'csv_MiB':>8} {'read_s':>7} {'analyse_s':>9} {'ratio':>6} "
          f"{'read_GiB':>8} {'analyse_GiB':>11} {'rto_s':>6}")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="drill-bench-analysis-") as tmp:
            run_dir = make_run(Path(tmp) / "run", n)
            csv_mib = sum(p.stat().st_size for p in (run_dir / "samples").glob("*.csv")) / 2**20
            reads = [timed_child("read", run_dir) for _ in range(args.rounds)]
            analyses = [timed_child("analyse", run_dir) for _ in range(args.rounds)]
        read_s = statistics.median(r["s"] for r in reads)
        analyse_s = statistics.median(r["s"] for r in analyses)
        peak_gib = max(r["peak_gib"] for r in analyses)
        rto_s = analyses[0]["rto_s"]
        if rto_s is None or abs(rto_s - OUTAGE_S) > analyses[0]["resolution_s"] or analyses[0]["rows"] != n:
            print(f"error: {n} samples gave rto_s={rto_s} over {analyses[0]['rows']} rows; "
                  f"the known incident is {OUTAGE_S} s over {n}", file=sys.stderr)
            ok = False
        figures[n] = {"s": analyse_s, "peak_gib": peak_gib, "ratio": analyse_s / read_s}
        print(f"{n:>11,} {csv_mib:>8.0f} {read_s:>7.2f} {analyse_s:>9.2f} {analyse_s / read_s:>6.2f} "
              f"{max(r['peak_gib'] for r in reads):>8.2f} {peak_gib:>11.2f} {rto_s:>6}", flush=True)
    print(f"load_average_after={' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    def fig(n: int, key: str, fmt: str) -> str:
        return format(figures[n][key], fmt) if n in figures else "n/a"

    print(f"s_1m={fig(1_000_000, 's', '.2f')} s_10m={fig(10_000_000, 's', '.2f')} "
          f"peak_gib_10m={fig(10_000_000, 'peak_gib', '.2f')} read_ratio_1m={fig(1_000_000, 'ratio', '.2f')}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
