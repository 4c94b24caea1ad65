"""Does Locust's distributed mode scale the harness's load? 1 worker vs 2 workers, same users.

    .venv/bin/python bench/locust_workers.py [--users 20] [--duration-s 10] [--rounds 2] [--target-procs 2]

Drives a loopback aiohttp target (``--target-procs`` processes sharing the port with
SO_REUSEPORT, so the target is not the one-core bottleneck) with ``LoadRunner`` in distributed
mode (``workers=1`` then ``workers=2``, alternating which goes first each round; the prober
off). rps = rows of ``samples/locust.csv`` (merged from the workers by the master) / duration.
Also checks that every worker's rows are present and prints each worker's measured clock
offset and uncertainty.

The last line is ``ratio_2_over_1=<..> rps_1=<..> rps_2=<..> cores=<n>`` (medians over rounds).
A ratio near 2 needs two free cores for the workers *besides* the target and the master; on a
shared 2-core machine the target and the workers compete, so expect less. 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from loopback import free_port, wait_http

from harness.load import LoadPlan, LoadRunner, RequestSpec
from harness.rundir.clock import load_clock


def serve(port: int) -> None:
    """The target: GET / answers a tiny JSON body with the routing headers (one process)."""
    from aiohttp import web

    body = b'{"ok":true}'
    headers = {"Content-Type": "application/json", "X-Served-By": "bench-1", "X-Tier": "gpu"}

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, reuse_port=True)


def run_once(host: str, users: int, workers: int, duration_s: float, work: Path) -> tuple[float, Counter[str], str]:
    plan = LoadPlan(host=host, users=users, spawn_rate=users, duration_s=duration_s,
                    request=RequestSpec(method="GET", path="/"), timeout_s=5.0, probe_rate_hz=0, workers=workers)
    runner = LoadRunner(plan, work, run_time_margin_s=0)
    with runner:
        deadline = time.monotonic() + duration_s + 60
        while runner.is_running and time.monotonic() < deadline:  # ends by its own --run-time
            time.sleep(0.1)
    with open(runner.locust_samples, newline="") as f:
        per_worker = Counter(row["worker"] for row in csv.DictReader(f))
    clock = load_clock(work)
    clocks = "" if clock is None else " ".join(
        f"{name}:offset={float(str(w.get('offset_s'))) * 1e3:+.3f}ms±{float(str(w.get('uncertainty_s'))) * 1e3:.3f}ms"
        for name, w in sorted(clock.workers.items())
    )
    return sum(per_worker.values()) / duration_s, per_worker, clocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--target-procs", type=int, default=2)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0

    port = free_port()
    host = f"http://127.0.0.1:{port}"
    targets = [
        subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(args.target_procs)
    ]
    rps: dict[int, list[float]] = {1: [], 2: []}
    try:
        wait_http(host + "/", timeout_s=15)
        with tempfile.TemporaryDirectory(prefix="drill-bench-workers-") as tmp:
            for i in range(args.rounds):
                for workers in (1, 2) if i % 2 == 0 else (2, 1):
                    value, per_worker, clocks = run_once(host, args.users, workers, args.duration_s,
                                                         Path(tmp) / f"round-{i}-w{workers}")
                    missing = {f"w{n}" for n in range(1, workers + 1)} - set(per_worker)
                    if missing:
                        raise SystemExit(f"no samples from worker(s) {sorted(missing)}")
                    rps[workers].append(value)
                    rows = " ".join(f"{k}={v}" for k, v in sorted(per_worker.items()))
                    print(f"round={i} workers={workers} rps={value:.1f} rows: {rows} clocks: {clocks}")
    finally:
        for target in targets:
            target.terminate()
        for target in targets:
            target.wait(timeout=10)
    rps_1, rps_2 = statistics.median(rps[1]), statistics.median(rps[2])
    print(f"users={args.users} duration_s={args.duration_s:g} rounds={args.rounds} target_procs={args.target_procs}")
    print(f"ratio_2_over_1={rps_2 / rps_1:.2f} rps_1={rps_1:.1f} rps_2={rps_2:.1f} cores={os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
