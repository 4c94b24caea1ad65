"""What one dependency check costs the drill's drive loop (docs/performance.md "Fault schedules"):
the engine calls it once a second on the loop that also applies schedule steps and reverts faults,
so while it runs no step can be applied.

    heavy .venv/bin/python bench/drive_loop_checks.py [--checks 20] [--busy 0]

Starts the reference local stack (targets/local-stack.yaml, every port moved to a free one, its
run directory a scratch folder), then times ``check_dependencies`` exactly as the drive loop
calls it (Toxiproxy's version, then ``stack.not_running()``), ``--checks`` times, 0.5 s apart;
with ``--busy N``, N busy loops (child processes, ended after the checks, at most 120 s) load the
cores the way drills side by side do. Stops the stack. Everything goes to 127.0.0.1.

The last line is ``check_p50_ms=<> check_p99_ms=<> check_max_ms=<> checks=<n> busy=<n>``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.engine import dependencies  # noqa: E402
from harness.engine.parts import Parts  # noqa: E402
from harness.rundir import JOURNAL_FILE  # noqa: E402
from harness.rundir.journal import Journal  # noqa: E402
from harness.runtime import open_stack  # noqa: E402
from harness.scenario import load_scenario  # noqa: E402
from harness.testing.drills import rebased  # noqa: E402
from harness.toxiproxy import ToxiproxyClient  # noqa: E402

BUSY_LIMIT_S = 120.0


def spin(until: float) -> None:
    x = 0
    while time.time() < until:
        x += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--busy", type=int, default=0)
    args = parser.parse_args()
    # A SIGTERM (e.g. from `timeout`) must still stop the stack: the finally below runs on SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="drill-bench-") as scratch:
        folder = Path(scratch)
        scenario, _ = rebased(REPO / "scenarios/provider-brownout.local.yaml", folder)
        loaded = load_scenario(scenario)
        run_dir = folder / "run"
        run_dir.mkdir()
        stack = open_stack(loaded.spec.stack, run_dir, "local")
        busy: list[multiprocessing.Process] = []
        try:
            stack.start()
            assert stack.toxiproxy_url is not None
            with Journal(run_dir / JOURNAL_FILE) as journal, ToxiproxyClient(stack.toxiproxy_url) as toxiproxy:
                parts = Parts(journal=journal)
                parts.stack, parts.stack_started, parts.toxiproxy = stack, True, toxiproxy
                down = set(dependencies.members_not_running(parts))
                until = time.time() + BUSY_LIMIT_S
                busy = [multiprocessing.Process(target=spin, args=(until,), daemon=True) for _ in range(args.busy)]
                for p in busy:
                    p.start()
                took_ms: list[float] = []
                for _ in range(args.checks):
                    t0 = time.perf_counter()
                    dependencies.check_dependencies(parts, down, set())
                    took_ms.append((time.perf_counter() - t0) * 1000)
                    time.sleep(0.5)
        finally:
            for p in busy:
                p.terminate()
                p.join(5)
            stack.stop()
    ms = np.array(took_ms)
    print(f"check_p50_ms={np.percentile(ms, 50):.1f} check_p99_ms={np.percentile(ms, 99):.1f} "
          f"check_max_ms={ms.max():.1f} checks={len(ms)} busy={args.busy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
