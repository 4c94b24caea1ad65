"""The provider drills at full length, each scenario and its negative control, on both runtimes.

    .venv/bin/python bench/provider_drills.py [--runtimes local,compose] [--out DIR]

Runs, one after another through the real engine (``run_drill``), the shipped scenarios
``provider-rate-limited``, ``provider-overloaded`` and ``stream-cut`` (``.local.yaml`` on the local
runtime, ``.yaml`` on compose) and their controls in ``scenarios/controls/`` (local), and prints one
row per drill: exit code, verdict, the objectives it missed, the fault's RTO, the fault phase's
streams (completed share, cut, failed before the first token) and TTFT p95 in the baseline and
the fault phase. A drill passes this bench when its exit code is the one its file expects
(0, or 1 for a control). The last line is ``drills=<n> as_expected=<n>``.

Each drill takes about 50 s (10 s baseline, 20 s fault, 15 s recovery, stack start and stop);
compose needs Docker (scripts/docker-setup); the compose project ``drill-staging`` is taken down at
the end unless it was up before. The stacks use their fixed ports on 127.0.0.1, so nothing else
may hold them; traffic goes to 127.0.0.1 only, and every drill ends by itself.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.engine import run_drill  # noqa: E402 - after the path is set for a checkout
from harness.runtime.compose import ComposeRuntime  # noqa: E402

SCENARIOS = REPO / "scenarios"
COMPOSE_FILE = REPO / "compose" / "staging.yaml"
COMPOSE_PROJECT = "drill-staging"  # the project the shipped compose scenarios name
NAMES = ("provider-rate-limited", "provider-overloaded", "stream-cut")


def drills(runtimes: list[str]) -> list[tuple[str, Path, int]]:
    """(label, scenario file, the exit code it must give)."""
    out: list[tuple[str, Path, int]] = []
    for name in NAMES:
        if "local" in runtimes:
            out.append((f"{name} (local)", SCENARIOS / f"{name}.local.yaml", 0))
        if "compose" in runtimes:
            out.append((f"{name} (compose)", SCENARIOS / f"{name}.yaml", 0))
        if "local" in runtimes:
            out.append((f"control {name} (local)", SCENARIOS / "controls" / f"{name}.local.yaml", 1))
    return out


def figure(value: Any, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def row(label: str, expected: int, exit_code: int, r: dict[str, Any]) -> str:
    missed = ",".join(o["name"] for o in r.get("objectives", []) if not o["passed"]) or "-"
    faults = r.get("faults") or [{}]
    fault_phase = (r.get("phases", {}).get("fault") or {}).get("streaming") or {}
    base_phase = (r.get("phases", {}).get("baseline") or {}).get("streaming") or {}
    mark = "ok" if exit_code == expected else "UNEXPECTED"
    return (f"{label:38} exit={exit_code} ({mark:10}) {r.get('verdict', '?'):8} missed={missed:40} "
            f"rto_s={figure(faults[0].get('rto_s'), '{:.2f}'):6} "
            f"completed={figure(fault_phase.get('completion_rate'), '{:.3f}'):6} "
            f"cut={figure(fault_phase.get('cut')):4} before_first={figure(fault_phase.get('failed_before_first_token')):4} "
            f"ttft_p95_ms base={figure(base_phase.get('ttft_p95_ms'), '{:.1f}')} "
            f"fault={figure(fault_phase.get('ttft_p95_ms'), '{:.1f}')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtimes", default="local,compose", help="comma-separated: local, compose")
    parser.add_argument("--out", type=Path, default=None, help="where the run directories go (default: a temp dir)")
    args = parser.parse_args()
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    out = args.out or Path(tempfile.mkdtemp(prefix="drill-provider-bench-"))
    as_expected = 0
    plan = drills(runtimes)
    # A compose drill leaves its stack up by design; the bench takes down what it brought up.
    compose = ComposeRuntime(COMPOSE_FILE, COMPOSE_PROJECT, out / "compose-logs") if "compose" in runtimes else None
    compose_was_up = compose is not None and bool(compose.containers())
    try:
        for index, (label, scenario, expected) in enumerate(plan):
            result = run_drill(scenario, out=out / f"{index:02d}-{scenario.stem}")
            line = row(label, expected, result.exit_code, result.results or {})
            print(line, flush=True)
            as_expected += result.exit_code == expected
    finally:
        if compose is not None and not compose_was_up:
            compose.down()
    print(f"runs in {out}")
    print(f"drills={len(plan)} as_expected={as_expected}")
    return 0 if as_expected == len(plan) else 1


if __name__ == "__main__":
    sys.exit(main())
