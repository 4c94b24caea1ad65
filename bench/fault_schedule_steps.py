"""A 20-step latency ramp through drill's own schedule code: each step's onset bracket, and whether
each step is in force when its bracket closes (docs/performance.md "Fault schedules").

    heavy .venv/bin/python bench/fault_schedule_steps.py [--ramps 5] [--steps 20] [--step-ms 10]

A local ``toxiproxy-server`` in front of a loopback ``python -m http.server`` (children, free
ports). Each ramp is a ``latency`` fault with ``schedule: {ramp: {from: 0, to: (steps-1) x
step-ms, steps}}`` driven by :class:`harness.engine.schedule.FaultSchedule` exactly as the engine
drives it (apply at step 0, ``advance`` for each later step, ``revert``), journaled to a scratch
run directory. Per step: the bracket drill states (the update call, ``2u``) read back from the
journal's ``fault.step`` records; then one request on a fresh connection through the proxy: the
step is **in force** when that answer is at least the step's latency late (and, for steps after
the first, it is not the next step's). Compare with the toxic rows of "Fault onset" (a toxic's
stated window: the API call, p99 4.81-13.35 ms on this machine).

The last line is ``step_bracket_p50_ms=<> step_bracket_p99_ms=<> in_force=<n>/<N>``. Everything
goes to 127.0.0.1; every loop is bounded by its count. Hold the heavy lock (it starts Toxiproxy).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from loopback import free_port, wait_http  # noqa: E402

from harness.engine.schedule import FaultSchedule, ScheduledFault  # noqa: E402
from harness.faults.network import network_fault  # noqa: E402
from harness.rundir import JOURNAL_FILE  # noqa: E402
from harness.rundir.events import FaultStep  # noqa: E402
from harness.rundir.journal import Journal, read_journal  # noqa: E402
from harness.scenario.fault_specs import LatencySpec, parse_fault_spec  # noqa: E402
from harness.toxiproxy import ToxiproxyClient  # noqa: E402


def toxiproxy_binary() -> str:
    for candidate in (REPO / ".venv/bin/toxiproxy-server",):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("toxiproxy-server")
    if found is None:
        raise SystemExit("toxiproxy-server not found: run scripts/bootstrap")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ramps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--step-ms", type=int, default=10)
    args = parser.parse_args()
    api_port, proxy_port, upstream_port = free_port(), free_port(), free_port()
    children: list[subprocess.Popen[bytes]] = []
    brackets_ms: list[float] = []
    in_force = total = 0
    with tempfile.TemporaryDirectory() as scratch:
        try:
            children.append(subprocess.Popen([toxiproxy_binary(), "-host", "127.0.0.1", "-port", str(api_port)],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            children.append(subprocess.Popen([sys.executable, "-m", "http.server", str(upstream_port), "--bind",
                                              "127.0.0.1", "--directory", scratch],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_http(f"http://127.0.0.1:{api_port}/version", 10)
            wait_http(f"http://127.0.0.1:{upstream_port}/", 10)
            with ToxiproxyClient(f"http://127.0.0.1:{api_port}") as client:
                client.create_proxy("hosted", f"127.0.0.1:{proxy_port}", f"127.0.0.1:{upstream_port}")
                top = (args.steps - 1) * args.step_ms
                for ramp in range(args.ramps):
                    run_dir = Path(scratch) / f"run-{ramp}"
                    run_dir.mkdir()
                    spec = parse_fault_spec({"name": "ramp", "type": "latency", "target": {"proxy": "hosted"},
                                             "schedule": {"ramp": {"from": 0, "to": top, "steps": args.steps}}})
                    assert isinstance(spec, LatencySpec)
                    with Journal(run_dir / JOURNAL_FILE) as journal:
                        schedule = FaultSchedule(journal, lambda _: None, run_dir)
                        a = ScheduledFault(spec=spec, fault=network_fault(spec, client), fault_id="0-ramp")
                        schedule.faults.append(a)
                        schedule.plan(time.time(), float(args.steps))
                        try:
                            for index, (planned_at, value) in enumerate(a.steps):
                                if index == 0:
                                    schedule.apply(a)
                                else:
                                    schedule.advance(a, planned_at)
                                total += 1
                                # A fresh connection: the answer carries this step's latency.
                                with httpx.Client(trust_env=False, timeout=5) as http:
                                    sent = time.perf_counter()
                                    http.get(f"http://127.0.0.1:{proxy_port}/")
                                    took_ms = (time.perf_counter() - sent) * 1000
                                next_ms = value + args.step_ms
                                if value * 0.99 <= took_ms < next_ms + 50:
                                    in_force += 1
                        finally:
                            schedule.revert(a, why="end")
                    steps = [r.event for r in read_journal(run_dir / JOURNAL_FILE) if isinstance(r.event, FaultStep)]
                    brackets_ms += [2 * s.onset_uncertainty_s * 1000 for s in steps]
                    assert client.toxics("hosted") == [], "a ramp left its toxic behind"
        finally:
            for child in children:
                child.terminate()
                child.wait(timeout=10)
    b = np.array(brackets_ms)
    print(f"{args.ramps} ramps x {args.steps} steps; step bracket (the update call, 2u) "
          f"p50 {np.percentile(b, 50):.2f} / p99 {np.percentile(b, 99):.2f} / max {b.max():.2f} ms")
    print(f"step_bracket_p50_ms={np.percentile(b, 50):.2f} step_bracket_p99_ms={np.percentile(b, 99):.2f} "
          f"in_force={in_force}/{total}")
    return 0 if in_force == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
