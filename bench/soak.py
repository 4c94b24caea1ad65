"""Does a long drill finish, and does the harness's memory stay flat? A soak on the local stack.

    flock /tmp/drill-integration.lock .venv/bin/python bench/soak.py --minutes 30 [--users 8]
                                                                     [--interval-s 10]

Writes a scenario like the default drill (scenarios/latency.yaml: the local reference stack, its
gateway under ``--users`` closed-loop Locust users with no think time plus the 20 Hz probe) but
``--minutes`` long: a 10 s baseline, a fault phase in which the hosted provider is slowed by 2 s
for 20 s at the start of every minute, and a 15 s recovery. It runs ``drill run`` on it and
every ``--interval-s`` reads /proc for the RSS of the harness's processes (drill, Locust, the
probe, Toxiproxy; grouped as in bench/footprint.py). Then it times ``drill report RUN_DIR`` (a
fresh process: read the samples, recompute, render) and measures the run directory's size.

Memory growth = the harness's RSS at the last sample taken while the load ran over its RSS at
the first sample after the first quarter of the run (start-up and warm-up excluded); the goal
is < 10 %. The last line is ``minutes=<> drill_exit=<> samples=<> run_dir_mib=<> report_s=<>
harness_rss_growth_pct=<>``. Everything goes to 127.0.0.1 only; the run is bounded by its
scenario (plus 10 minutes of margin, after which drill is stopped).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from footprint import HARNESS, Footprint, sample  # noqa: E402

BASELINE_S = 10
RECOVERY_S = 15
FAULT_EVERY_S = 60
FAULT_FOR_S = 20


def soak_scenario(minutes: float, users: int) -> dict[str, object]:
    """The default drill stretched to ``minutes``: one 20 s provider slowdown per minute."""
    base = yaml.safe_load((REPO / "scenarios/latency.yaml").read_text())
    fault_phase_s = int(minutes * 60) - BASELINE_S - RECOVERY_S
    base["name"] = f"soak-{minutes:g}m"
    base["description"] = f"bench/soak.py: the default drill for {minutes:g} minutes, a slowdown every minute"
    base["stack"]["file"] = str(REPO / "targets/local-stack.yaml")
    base["load"]["users"] = users
    base["load"]["spawn_rate"] = users
    base["phases"] = {"baseline": f"{BASELINE_S}s", "fault": f"{fault_phase_s}s", "recovery": f"{RECOVERY_S}s"}
    template = base["faults"][0]
    base["faults"] = [
        {**template, "target": dict(template["target"]), "name": f"provider-slow-{i + 1}", "at": f"{at_s}s", "duration": f"{FAULT_FOR_S}s"}
        for i, at_s in enumerate(range(0, fault_phase_s - FAULT_FOR_S + 1, FAULT_EVERY_S))
    ]
    return base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--interval-s", type=float, default=10.0)
    args = parser.parse_args()
    if not 1 <= args.minutes <= 240 or not 1 <= args.users <= 256 or not 1 <= args.interval_s <= 60:
        parser.error("--minutes in [1, 240], --users in [1, 256], --interval-s in [1, 60]")
    drill = Path(sys.executable).parent / "drill"
    print(f"cores={os.cpu_count()} load_average={' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="drill-bench-soak-") as tmp:
        scenario = Path(tmp) / "soak.yaml"
        scenario.write_text(yaml.safe_dump(soak_scenario(args.minutes, args.users), sort_keys=False))
        run_dir = Path(tmp) / "run"
        footprint = Footprint()
        series: list[tuple[float, float, dict[str, float]]] = []
        started = time.monotonic()
        deadline = started + args.minutes * 60 + 600
        with open(Path(tmp) / "drill.log", "wb") as log:
            proc = subprocess.Popen([str(drill), "run", str(scenario), "--out", str(run_dir)],
                                    cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None and time.monotonic() < deadline:
            sample(proc.pid, footprint)
            live = footprint.last_rss_by_group()
            series.append((time.monotonic() - started, sum(live.get(g, 0.0) for g in HARNESS), live))
            try:
                proc.wait(timeout=args.interval_s)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
        wall_s = time.monotonic() - started
        if proc.returncode not in (0, 1):
            print((Path(tmp) / "drill.log").read_text()[-3000:], file=sys.stderr)
        report_started = time.monotonic()
        report = subprocess.run([str(drill), "report", str(run_dir)], cwd=REPO, capture_output=True, timeout=600)
        report_s = time.monotonic() - report_started
        run_dir_mib = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) / 2**20
        samples = 0
        for path in (run_dir / "samples").glob("*.csv"):
            if path.name != "capacity.csv":
                with open(path, newline="") as f:
                    samples += sum(1 for _ in csv.reader(f)) - 1

    # While the load ran: samples in which Locust was alive.
    loaded = [(t, rss) for t, rss, live in series if live.get("locust", 0.0) > 0]
    print(f"drill run ({args.minutes:g} min, {args.users} users): exit {proc.returncode}, {wall_s:.0f} s wall; "
          f"drill report: exit {report.returncode}, {report_s:.1f} s; run dir {run_dir_mib:.1f} MiB, {samples:,} samples")
    print(f"{'t_s':>6} {'harness_MiB':>11}  " + " ".join(f"{g:>9}" for g in HARNESS))
    for t, rss, live in series:
        print(f"{t:>6.0f} {rss:>11.0f}  " + " ".join(f"{live.get(g, 0.0):>9.0f}" for g in HARNESS))
    growth_pct = float("nan")
    if len(loaded) >= 3:
        reference = next((rss for t, rss in loaded if t >= loaded[-1][0] / 4), loaded[0][1])
        growth_pct = (loaded[-1][1] / reference - 1) * 100
    print(f"load_average_after={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"minutes={args.minutes:g} drill_exit={proc.returncode} samples={samples} run_dir_mib={run_dir_mib:.1f} "
          f"report_s={report_s:.1f} harness_rss_growth_pct={growth_pct:.1f}")
    return 0 if proc.returncode in (0, 1) and report.returncode in (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
