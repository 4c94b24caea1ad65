"""What does the host-stall watchdog cost? Its own CPU, and its effect on the prober, side by side.

    .venv/bin/python bench/watchdog_cost.py [--rate-hz 50] [--duration-s 15] [--rounds 2]

The watchdog (harness/load/watchdog.py) wakes every 10 ms for the whole drill. Two questions:

1. **Its own CPU**, as a share of one core: the watchdog process's user+sys time (``wait4``) over
   its wall time, run alone for ``--duration-s``.
2. **Its effect on the prober**: the real prober (``python -m harness.load.prober``) drives a
   loopback aiohttp target (a child process) at ``--rate-hz`` for ``--duration-s``, once with the
   watchdog running beside it and once without, in alternating order per round. Per mode: the
   prober's CPU time per probe (``wait4``, its start-up measured apart and taken off), its median and p99 probe latency (from probe.csv),
   and how late probes were sent against their schedule (each row's send instant minus
   ``t_first + i / rate``; the median and p99 of that lag).

The last line is ``watchdog_cpu_percent=<..> cpu_per_probe_ratio=<on/off> lag_p99_ratio=<on/off>``
(medians over rounds). Everything goes to 127.0.0.1 only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loopback import free_port, wait_http

from harness.load import LoadPlan, RequestSpec
from harness.load.watchdog import Watchdog


def serve(port: int) -> None:
    from aiohttp import web

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=b'{"ok":true}', headers={"X-Served-By": "bench-1", "X-Tier": "gpu"})

    app = web.Application()
    app.router.add_get("/", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def wait_cpu_s(proc: subprocess.Popen[bytes]) -> float:
    """Reap ``proc`` and return its user+sys CPU seconds."""
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return usage.ru_utime + usage.ru_stime


def watchdog_alone(work: Path, duration_s: float) -> float:
    """The watchdog's CPU as a percentage of one core over ``duration_s``."""
    run_dir = work / "alone"
    run_dir.mkdir()
    dog = Watchdog(run_dir)
    dog.start()
    assert dog._proc is not None
    started = time.monotonic()
    time.sleep(duration_s)
    dog._proc.send_signal(signal.SIGTERM)
    cpu_s = wait_cpu_s(dog._proc)
    return 100.0 * cpu_s / (time.monotonic() - started)


@dataclass
class ProbeRun:
    mode: str
    probes: int
    cpu_us_per_probe: float
    latency_p50_ms: float
    latency_p99_ms: float
    lag_p50_ms: float
    lag_p99_ms: float
    cpu_s: float


def probe_run(mode: str, host: str, work: Path, rate_hz: float, duration_s: float, startup_cpu_s: float = 0.0) -> ProbeRun:
    run_dir = work / f"{mode}-{time.monotonic_ns()}"
    (run_dir / "samples").mkdir(parents=True)
    plan = LoadPlan(host=host, users=0, spawn_rate=1, duration_s=duration_s, request=RequestSpec(path="/"),
                    timeout_s=2, probe_rate_hz=rate_hz)
    dog = Watchdog(run_dir) if mode == "on" else None
    if dog is not None:
        dog.start()
    out = run_dir / "samples" / "probe.csv"
    proc = subprocess.Popen([sys.executable, "-m", "harness.load.prober", "--plan", plan.to_json(),
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu_s = wait_cpu_s(proc)
    if dog is not None:
        dog.stop()
    starts: list[float] = []
    latencies: list[float] = []
    for line in out.read_text().splitlines()[1:]:
        fields = line.split(",")
        starts.append(float(fields[1]))
        latencies.append(float(fields[5]))
    starts.sort()
    interval = 1.0 / rate_hz
    lags = [(s - starts[0] - i * interval) * 1000 for i, s in enumerate(starts)]
    return ProbeRun(mode, len(starts), max(0.0, cpu_s - startup_cpu_s) / max(1, len(starts)) * 1e6,
                    _q(latencies, 0.5), _q(latencies, 0.99), _q(lags, 0.5), _q(lags, 0.99), cpu_s)


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate-hz", type=float, default=50.0)
    parser.add_argument("--duration-s", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    target = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    runs: list[ProbeRun] = []
    try:
        wait_http(host + "/", timeout_s=15)
        with tempfile.TemporaryDirectory(prefix="drill-bench-") as tmp:
            work = Path(tmp)
            cpu_percent = watchdog_alone(work, args.duration_s)
            print(f"watchdog alone: {cpu_percent:.2f} % of one core over {args.duration_s:g} s", flush=True)
            # The prober's start-up (imports, client) is paid once per process: measured on a run
            # of a few probes and taken off, so the figure is the cost per probe.
            startup = min(probe_run("off", host, work, args.rate_hz, 0.1).cpu_s for _ in range(3))
            print(f"prober start-up: {startup * 1000:.0f} ms CPU", flush=True)
            for i in range(args.rounds):
                for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):
                    run = probe_run(mode, host, work, args.rate_hz, args.duration_s, startup)
                    runs.append(run)
                    print(f"round {i + 1} watchdog {run.mode:3}: {run.probes} probes, "
                          f"{run.cpu_us_per_probe:.0f} us CPU/probe, latency p50 {run.latency_p50_ms:.2f} "
                          f"p99 {run.latency_p99_ms:.2f} ms, send lag p50 {run.lag_p50_ms:.2f} "
                          f"p99 {run.lag_p99_ms:.2f} ms", flush=True)
    finally:
        target.terminate()
        target.wait(timeout=10)

    def med(mode: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs if r.mode == mode)

    cpu_ratio = med("on", "cpu_us_per_probe") / med("off", "cpu_us_per_probe")
    lag_ratio = med("on", "lag_p99_ms") / max(med("off", "lag_p99_ms"), 1e-6)
    print(f"watchdog_cpu_percent={cpu_percent:.2f} cpu_per_probe_ratio={cpu_ratio:.3f} "
          f"lag_p99_ratio={lag_ratio:.3f} off_cpu_us={med('off', 'cpu_us_per_probe'):.0f} "
          f"on_cpu_us={med('on', 'cpu_us_per_probe'):.0f} off_lag_p99_ms={med('off', 'lag_p99_ms'):.2f} "
          f"on_lag_p99_ms={med('on', 'lag_p99_ms'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
