"""How long does the report of a big run take, as a ratio to just reading its samples?

    .venv/bin/python bench/report_render.py [--samples 1000000] [--rounds 3]

The run directory is the real latency run's journal and scenario (tests/data/latency-run) with
``--samples`` synthetic requests over its 45 s of phases (a fixed-rate probe stream at 20 Hz plus
closed-loop users making up the rest; the hosted tier slows by 2 s at the fault's onset and the
gateway fails over to gpu 1.8 s later). Timed, each the median over ``--rounds``:

- read:    ``harness.rundir.frames.read_samples`` alone (the floor: parsing the CSVs)
- report:  what ``drill report RUN_DIR`` does: ``compute_results`` + ``write_outputs`` (results.json,
           junit.xml and report.html with its charts, story, impact counts and runbook view)
- story:   the report's story alone (impact counts, runbook view, event timeline) on loaded samples

The last line is ``ratio=<report/read> report_s=<..> read_s=<..> story_s=<..> samples=<..>``.
Files only: no stack, no network.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.load.samples import COLUMNS  # noqa: E402
from harness.report.story import build_story  # noqa: E402
from harness.results import compute_results, write_outputs  # noqa: E402
from harness.rundir.events import FaultApplied, PhaseStart  # noqa: E402
from harness.rundir.frames import read_samples  # noqa: E402
from harness.rundir.journal import read_journal  # noqa: E402


def make_run(target: Path, total: int) -> Path:
    shutil.copytree(REPO / "tests" / "data" / "latency-run", target)
    journal = list(read_journal(target / "journal.jsonl"))
    baseline = next(r.ts for r in journal if isinstance(r.event, PhaseStart) and r.event.phase == "baseline")
    onset = next(r.event.onset_at for r in journal if isinstance(r.event, FaultApplied))
    onset_s = pd.Timestamp(onset).timestamp() if isinstance(onset, str) else float(onset)
    span_s = 45.0
    rng = np.random.default_rng(1)
    probe_n = int(span_s * 20)
    starts = np.concatenate([baseline + np.arange(probe_n) / 20.0,
                             baseline + np.sort(rng.uniform(0, span_s, total - probe_n))])
    source = np.array(["probe"] * probe_n + ["locust"] * (total - probe_n), dtype=object)
    slow = (starts >= onset_s) & (starts < onset_s + 1.8)
    latency_ms = np.where(slow, 1015.0, rng.gamma(4.0, 4.0, len(starts)))
    on_gpu = (starts >= onset_s + 1.8) & (starts < onset_s + 20.0)
    frame = pd.DataFrame({
        "source": source, "start": starts, "end": starts + latency_ms / 1000.0, "status": 200, "ok": 1,
        "latency_ms": latency_ms, "bytes": 297,
        "served_by": np.where(on_gpu, "gpu-a1", "hosted-model"), "tier": np.where(on_gpu, "gpu", "hosted"),
        "region": np.where(on_gpu, "region-a", "external"), "degraded": 0, "error": "",
        # not streamed: the stream columns' defaults (harness/load/samples.py NON_STREAM_COLUMNS)
        "stream": 0, "ttft_ms": np.nan, "tokens": 0, "max_gap_ms": np.nan, "stream_completed": 0,
        "cut_after_tokens": -1,
        "intended": np.where(source == "probe", starts, np.nan),  # probes on schedule
    })[list(COLUMNS)]
    samples = target / "samples"
    frame[frame["source"] == "probe"].to_csv(samples / "probe.csv", index=False, float_format="%.6f")
    frame[frame["source"] == "locust"].to_csv(samples / "locust.csv", index=False, float_format="%.6f")
    return target


def timed(fn: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drill-bench-report-") as tmp:
        run_dir = make_run(Path(tmp) / "run", args.samples)
        read_s = timed(lambda: read_samples(run_dir), args.rounds)

        def report() -> None:
            results, timeline = compute_results(run_dir)
            write_outputs(run_dir, results, timeline)

        report_s = timed(report, args.rounds)
        results = json.loads((run_dir / "results.json").read_text())
        samples = read_samples(run_dir)
        story_s = timed(lambda: build_story(results, run_dir, samples), args.rounds)
        size_mib = (run_dir / "report.html").stat().st_size / 2**20
        print(f"samples={len(samples):,} read={read_s:.2f}s report={report_s:.2f}s story={story_s:.2f}s "
              f"report.html={size_mib:.2f} MiB")
        print(f"ratio={report_s / read_s:.2f} report_s={report_s:.2f} read_s={read_s:.2f} story_s={story_s:.2f} "
              f"samples={len(samples)}")


if __name__ == "__main__":
    main()
